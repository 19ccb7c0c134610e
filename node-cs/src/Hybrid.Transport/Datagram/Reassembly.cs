using System.Buffers;

namespace Hybrid.Transport.Datagram;

/// <summary>
/// Collects the fragments of one message (a request at the server, a reply at the client). Fragments may
/// arrive in any order and any number of times; a retransmission only fills the holes, so a large message
/// completes even when every round loses some frames. The bitmap is allocated once per session.
/// </summary>
internal sealed class Reassembly(int maxMessageBytes, int fragmentPayload)
{
    private readonly ulong[] _seen = new ulong[(MaxFragments(maxMessageBytes, fragmentPayload) + 63) / 64];
    private byte[]? _buffer;
    private int _length;
    private int _count;
    private int _received;

    /// <summary>Sequence number of the message being collected (valid while <see cref="Active"/>).</summary>
    public uint Seq { get; private set; }

    /// <summary>True while a message is partly received.</summary>
    public bool Active => _buffer is not null;

    /// <summary>Fragments a message of <paramref name="length"/> bytes needs (at least one, for empty messages).</summary>
    public static int FragmentsFor(int length, int fragmentPayload) => Math.Max(1, (length + fragmentPayload - 1) / fragmentPayload);

    private static int MaxFragments(int maxMessageBytes, int fragmentPayload) => FragmentsFor(maxMessageBytes, fragmentPayload);

    /// <summary>
    /// Adds one fragment of message <paramref name="seq"/>. Returns true when that completed the message, whose
    /// pooled buffer then moves to <paramref name="message"/>. Inconsistent fragments are ignored (false).
    /// </summary>
    public bool Add(uint seq, in DatagramFrame frame, out TransportMessage message)
    {
        message = default;
        int length = frame.MessageLength;
        int count = frame.FragmentCount;
        int index = frame.FragmentIndex;
        if (length < 0 || length > maxMessageBytes || count != FragmentsFor(length, fragmentPayload) || index >= count)
            return false;
        int expected = index == count - 1 ? length - index * fragmentPayload : fragmentPayload;
        var payload = frame.Payload;
        if (payload.Length < expected)
            return false;
        if (_buffer is null || Seq != seq)
            Start(seq, length, count);
        else if (_length != length)
            return false;
        ref ulong word = ref _seen[index >> 6];
        ulong bit = 1UL << (index & 63);
        if ((word & bit) != 0)
            return false;
        word |= bit;
        payload[..expected].CopyTo(_buffer.AsSpan(index * fragmentPayload));
        if (++_received < _count)
            return false;
        message = new TransportMessage(_buffer!, _length);
        _buffer = null;
        return true;
    }

    private void Start(uint seq, int length, int count)
    {
        Reset();
        Seq = seq;
        _buffer = TransportMessage.Rent(length);
        _length = length;
        _count = count;
        _received = 0;
        Array.Clear(_seen, 0, (count + 63) / 64);
    }

    /// <summary>Drops a partial message (its buffer goes back to the pool).</summary>
    public void Reset()
    {
        if (_buffer is not null)
            ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = null;
    }
}
