using System.Buffers.Binary;
using System.Net.Sockets;
using Hybrid.Protocol;

namespace Hybrid.Node.Cluster;

/// <summary>
/// A reusable peer frame (<see cref="PeerOp"/>): built with the Write methods after <see cref="Begin"/>, sent whole
/// with one send, and received whole into the same kind of buffer. One per connection side, reused for every call,
/// so a steady stream of pulls allocates nothing once the buffer has grown to the largest chunk.
/// </summary>
public sealed class PeerMessage
{
    private byte[] _bytes = new byte[32 * 1024];
    private int _length;

    /// <summary>The op (request) or status (reply) byte of the frame last begun or received.</summary>
    public byte Code => _bytes[4];

    /// <summary>The payload of the frame last received (or written so far).</summary>
    public ReadOnlySpan<byte> Payload => _bytes.AsSpan(PeerFrame.HeaderBytes, _length - PeerFrame.HeaderBytes);

    /// <summary>Starts a frame with op or status <paramref name="code"/>.</summary>
    public PeerMessage Begin(byte code)
    {
        _bytes[4] = code;
        _length = PeerFrame.HeaderBytes;
        return this;
    }

    /// <summary>Appends a little-endian u16.</summary>
    public PeerMessage U16(ushort value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Room(2), value);
        _length += 2;
        return this;
    }

    /// <summary>Appends a little-endian i32.</summary>
    public PeerMessage I32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Room(4), value);
        _length += 4;
        return this;
    }

    /// <summary>Appends a little-endian i64.</summary>
    public PeerMessage I64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(Room(8), value);
        _length += 8;
        return this;
    }

    /// <summary>Appends raw bytes.</summary>
    public PeerMessage Bytes(ReadOnlySpan<byte> value)
    {
        value.CopyTo(Room(value.Length));
        _length += value.Length;
        return this;
    }

    /// <summary>Sends the frame built since <see cref="Begin"/> (one send).</summary>
    public void Send(Socket socket)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_bytes, (uint)(_length - 4));
        int sent = 0;
        while (sent < _length)
            sent += socket.Send(_bytes, sent, _length - sent, SocketFlags.None);
    }

    /// <summary>Sends the frame built since <see cref="Begin"/> without blocking a thread.</summary>
    public async ValueTask SendAsync(Socket socket, CancellationToken cancellationToken)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_bytes, (uint)(_length - 4));
        int sent = 0;
        while (sent < _length)
            sent += await socket.SendAsync(_bytes.AsMemory(sent, _length - sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Receives one whole frame (blocking); false when the peer closed the connection before a new frame. A frame whose
    /// payload is over <paramref name="maxPayload"/> bytes is an <see cref="IOException"/>, read no further.
    /// </summary>
    public bool Receive(Socket socket, int maxPayload = PeerFrame.MaxPayloadBytes)
    {
        if (!Fill(socket, 0, PeerFrame.HeaderBytes))
            return false;
        int total = CheckedLength(maxPayload);
        if (!Fill(socket, PeerFrame.HeaderBytes, total))
            throw new IOException("peer closed the connection inside a frame");
        return true;
    }

    /// <summary>Receives one whole frame without blocking a thread; throws when the connection closed.</summary>
    public async ValueTask ReceiveAsync(Socket socket, CancellationToken cancellationToken)
    {
        await FillAsync(socket, 0, PeerFrame.HeaderBytes, cancellationToken).ConfigureAwait(false);
        await FillAsync(socket, PeerFrame.HeaderBytes, CheckedLength(PeerFrame.MaxPayloadBytes), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Throws the remote failure carried by a reply whose status is <see cref="PeerFrame.Failed"/>.</summary>
    public PeerMessage ThrowIfFailed()
    {
        if (Code != PeerFrame.Ok)
            throw new PeerException(System.Text.Encoding.UTF8.GetString(Payload));
        return this;
    }

    private int CheckedLength(int maxPayload)
    {
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_bytes);
        if (length < 1 || length > (uint)maxPayload + 1)
            throw new IOException($"peer frame of {length} bytes");
        int total = (int)length + 4;
        if (total > _bytes.Length)
            Array.Resize(ref _bytes, Math.Max(total, _bytes.Length * 2));
        _length = total;
        return total;
    }

    private bool Fill(Socket socket, int from, int to)
    {
        while (from < to)
        {
            int n = socket.Receive(_bytes, from, to - from, SocketFlags.None);
            if (n == 0)
                return false;
            from += n;
        }
        return true;
    }

    private async ValueTask FillAsync(Socket socket, int from, int to, CancellationToken cancellationToken)
    {
        while (from < to)
        {
            int n = await socket.ReceiveAsync(_bytes.AsMemory(from, to - from), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new IOException("peer closed the connection");
            from += n;
        }
    }

    private Span<byte> Room(int bytes)
    {
        if (_length + bytes > _bytes.Length)
            Array.Resize(ref _bytes, Math.Max(_bytes.Length * 2, _length + bytes));
        return _bytes.AsSpan(_length, bytes);
    }
}

/// <summary>Reads a peer payload field by field (little-endian).</summary>
public ref struct PeerReader(ReadOnlySpan<byte> payload)
{
    private ReadOnlySpan<byte> _rest = payload;

    /// <summary>The bytes not read yet.</summary>
    public readonly ReadOnlySpan<byte> Rest => _rest;

    /// <summary>Reads an i32.</summary>
    public int I32()
    {
        int v = BinaryPrimitives.ReadInt32LittleEndian(_rest);
        _rest = _rest[4..];
        return v;
    }

    /// <summary>Reads an i64.</summary>
    public long I64()
    {
        long v = BinaryPrimitives.ReadInt64LittleEndian(_rest);
        _rest = _rest[8..];
        return v;
    }

    /// <summary>Reads <paramref name="length"/> raw bytes.</summary>
    public ReadOnlySpan<byte> Bytes(int length)
    {
        ReadOnlySpan<byte> v = _rest[..length];
        _rest = _rest[length..];
        return v;
    }
}

/// <summary>A peer answered a request with a failure (its message is the remote error).</summary>
public sealed class PeerException(string message) : Exception(message);
