using System.Buffers.Binary;

namespace Hybrid.Protocol;

/// <summary>
/// Walks the requests of one frame payload without allocating. Every length is checked against the
/// payload and the limits before a span is cut, so a hostile frame can only produce an error status.
/// </summary>
public ref struct RequestReader
{
    private readonly ReadOnlySpan<byte> _payload;
    private readonly ProtocolLimits _limits;
    private int _position;
    private int _remaining;

    /// <summary>Starts reading <paramref name="count"/> requests from <paramref name="payload"/>.</summary>
    public RequestReader(ReadOnlySpan<byte> payload, int count, ProtocolLimits limits)
    {
        _payload = payload;
        _limits = limits;
        _remaining = count;
        _position = 0;
    }

    /// <summary>Requests not read yet.</summary>
    public readonly int Remaining => _remaining;

    /// <summary>True when every request was read and no byte is left over.</summary>
    public readonly bool AtEnd => _remaining == 0 && _position == _payload.Length;

    /// <summary>
    /// Reads the next request. Returns <see cref="Status.Ok"/>, or <see cref="Status.Malformed"/> (truncated,
    /// unknown opcode, non-zero reserved bytes, or nothing left), or <see cref="Status.TooLarge"/> (key or value
    /// above the limits). After an error the reader must not be used again.
    /// </summary>
    public Status TryRead(out Request request)
    {
        request = default;
        if (_remaining == 0)
            return Status.Malformed;
        var rest = _payload[_position..];
        if (rest.Length < RequestHeader.Size)
            return Status.Malformed;
        byte op = rest[0];
        if (!OpCodes.IsKnown(op) || rest[1] != 0 || BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]) != 0)
            return Status.Malformed;
        ushort table = BinaryPrimitives.ReadUInt16LittleEndian(rest[2..]);
        int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]);
        uint valueLength = BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]);
        if (keyLength > _limits.MaxKeyBytes)
            return Status.TooLarge;
        var opCode = (OpCode)op;
        // MultiGet carries packed keys in its value: bound it by the frame, each key by MaxKeyBytes later.
        if (valueLength > (uint)_limits.MaxValueBytes && opCode != OpCode.MultiGet)
            return Status.TooLarge;
        int at = RequestHeader.Size;
        ulong expected = 0;
        if (OpCodes.HasExpectedVersion(opCode))
        {
            if (rest.Length < at + 8)
                return Status.Malformed;
            expected = BinaryPrimitives.ReadUInt64LittleEndian(rest[at..]);
            at += 8;
        }
        if ((long)rest.Length - at < (long)keyLength + valueLength)
            return Status.Malformed;
        int keyOffset = _position + at;
        var key = rest.Slice(at, keyLength);
        var value = rest.Slice(at + keyLength, (int)valueLength);
        _position += at + keyLength + (int)valueLength;
        _remaining--;
        request = new Request(opCode, table, expected, key, value, keyOffset);
        return Status.Ok;
    }
}

/// <summary>Walks the keys packed in a MultiGet value: repeated (u16 length, key bytes).</summary>
public ref struct PackedKeyReader
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Starts reading packed keys.</summary>
    public PackedKeyReader(ReadOnlySpan<byte> packed) => _rest = packed;

    /// <summary>True when every byte was consumed.</summary>
    public readonly bool AtEnd => _rest.IsEmpty;

    /// <summary>Reads the next key; Malformed when truncated, TooLarge above <paramref name="maxKeyBytes"/>.</summary>
    public Status TryRead(int maxKeyBytes, out ReadOnlySpan<byte> key)
    {
        key = default;
        if (_rest.Length < 2)
            return Status.Malformed;
        int length = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
        if (length > maxKeyBytes)
            return Status.TooLarge;
        if (_rest.Length - 2 < length)
            return Status.Malformed;
        key = _rest.Slice(2, length);
        _rest = _rest[(2 + length)..];
        return Status.Ok;
    }

    /// <summary>Bytes one packed key takes.</summary>
    public static int EncodedLength(int keyLength) => 2 + keyLength;

    /// <summary>Writes one packed key; returns the bytes written.</summary>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> key)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination, checked((ushort)key.Length));
        key.CopyTo(destination[2..]);
        return 2 + key.Length;
    }
}

/// <summary>Walks the results of a reply payload (or of a MultiGet result's value) without allocating.</summary>
public ref struct ResultReader
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Starts reading results.</summary>
    public ResultReader(ReadOnlySpan<byte> payload) => _rest = payload;

    /// <summary>True when every byte was consumed.</summary>
    public readonly bool AtEnd => _rest.IsEmpty;

    /// <summary>Reads the next result; false when the payload is truncated or exhausted.</summary>
    public bool TryRead(out Result result)
    {
        result = default;
        if (_rest.Length < ResultHeader.Size)
            return false;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_rest[4..]);
        if (length > (uint)(_rest.Length - ResultHeader.Size))
            return false;
        result = new Result((Status)_rest[0], BinaryPrimitives.ReadUInt64LittleEndian(_rest[8..]), _rest.Slice(ResultHeader.Size, (int)length));
        _rest = _rest[(ResultHeader.Size + (int)length)..];
        return true;
    }
}
