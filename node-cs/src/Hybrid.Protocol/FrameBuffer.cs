using System.Buffers;

namespace Hybrid.Protocol;

/// <summary>
/// A growable byte buffer rented from <see cref="ArrayPool{T}"/> that frames are written into: requests by
/// the client, replies by the node. Reused across batches, so the steady state allocates nothing.
/// Not thread-safe: one owner at a time.
/// </summary>
public sealed class FrameBuffer : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int _length;

    /// <summary>Creates a buffer with at least <paramref name="initialCapacity"/> bytes.</summary>
    public FrameBuffer(int initialCapacity = 16 * 1024) => _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);

    /// <summary>Bytes written so far.</summary>
    public int Length => _length;

    /// <summary>The underlying array (valid until the next write that grows the buffer).</summary>
    public byte[] Array => _buffer;

    /// <summary>The written bytes.</summary>
    public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

    /// <summary>The written bytes as memory (for socket sends).</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    /// <summary>Forgets the content, keeps the array.</summary>
    public void Clear() => _length = 0;

    /// <summary>Drops the first <paramref name="count"/> bytes (already sent), moving the rest to the front.</summary>
    public void Consume(int count)
    {
        if (count >= _length)
        {
            _length = 0;
            return;
        }
        _buffer.AsSpan(count, _length - count).CopyTo(_buffer);
        _length -= count;
    }

    /// <summary>Cuts the buffer back to <paramref name="length"/> bytes (undoes a partly written frame).</summary>
    public void Truncate(int length) => _length = Math.Min(_length, length);

    /// <summary>Reserves <paramref name="size"/> bytes at the end and returns them; they count as written.</summary>
    public Span<byte> Append(int size)
    {
        Ensure(size);
        var span = _buffer.AsSpan(_length, size);
        _length += size;
        return span;
    }

    /// <summary>Starts a frame: reserves the header and returns the frame's start offset.</summary>
    public int BeginFrame()
    {
        int start = _length;
        Append(FrameHeader.Size);
        return start;
    }

    /// <summary>Completes the frame begun at <paramref name="start"/>: computes the payload CRC and writes the header.</summary>
    public void EndFrame(int start, FrameKind kind, ushort count, uint batchSeq, ulong sessionId, ulong view)
    {
        int length = _length - start;
        uint crc = Crc32C.Compute(_buffer.AsSpan(start + FrameHeader.Size, length - FrameHeader.Size));
        new FrameHeader(length, kind, count, crc, batchSeq, sessionId, view).Write(_buffer.AsSpan(start));
    }

    /// <summary>Appends one request (see <see cref="RequestHeader"/>).</summary>
    public void AppendRequest(OpCode op, ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion = 0)
    {
        var span = Append(RequestHeader.EncodedLength(op, key.Length, value.Length));
        RequestHeader.Write(span, op, table, key, value, expectedVersion);
    }

    /// <summary>Appends one result with its value.</summary>
    public void AppendResult(Status status, ulong version, ReadOnlySpan<byte> value)
    {
        var span = Append(ResultHeader.Size + value.Length);
        ResultHeader.Write(span, status, value.Length, version);
        value.CopyTo(span[ResultHeader.Size..]);
    }

    /// <summary>Appends a result header and returns the <paramref name="valueLength"/> bytes for its value.</summary>
    public Span<byte> ReserveResult(Status status, ulong version, int valueLength)
    {
        var span = Append(ResultHeader.Size + valueLength);
        ResultHeader.Write(span, status, valueLength, version);
        return span[ResultHeader.Size..];
    }

    /// <summary>Rewrites the header of a result written at <paramref name="offset"/> (for results whose size is known late).</summary>
    public void PatchResult(int offset, Status status, int valueLength, ulong version) =>
        ResultHeader.Write(_buffer.AsSpan(offset), status, valueLength, version);

    /// <inheritdoc />
    public void Advance(int count)
    {
        if ((uint)count > (uint)(_buffer.Length - _length))
            throw new ArgumentOutOfRangeException(nameof(count));
        _length += count;
    }

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(Math.Max(sizeHint, 256));
        return _buffer.AsMemory(_length);
    }

    /// <inheritdoc />
    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(Math.Max(sizeHint, 256));
        return _buffer.AsSpan(_length);
    }

    private void Ensure(int size)
    {
        if (_buffer.Length - _length >= size)
            return;
        long needed = (long)_length + size;
        if (needed > System.Array.MaxLength)
            throw new InvalidOperationException($"a frame buffer cannot grow past {System.Array.MaxLength} bytes");
        // Doubling in 64 bits: in 32 it overflowed past 1 GiB, and every later append copied the whole buffer.
        var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(System.Array.MaxLength, Math.Max((long)_buffer.Length * 2, needed)));
        _buffer.AsSpan(0, _length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    /// <summary>Returns the array to the pool.</summary>
    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _length = 0;
        if (buffer.Length > 0)
            ArrayPool<byte>.Shared.Return(buffer);
    }
}
