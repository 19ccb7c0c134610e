namespace Hybrid.Transport.Datagram;

/// <summary>
/// Two in-memory frame links joined back to back, with a seeded drop rate on each send: lets the datagram
/// RPC's loss, retransmission and de-duplication paths be tested in-process, without DPDK.
/// </summary>
internal sealed class LoopbackFrameLink : IFrameLink
{
    private readonly Queue<byte[]> _inbox = new();
    private readonly Random _random;
    private readonly double _dropRate;
    private readonly byte _macByte;
    private LoopbackFrameLink? _peer;

    private LoopbackFrameLink(int frameBytes, double dropRate, int seed, byte macByte)
    {
        FrameBytes = frameBytes;
        _dropRate = dropRate;
        _random = new Random(seed);
        _macByte = macByte;
    }

    /// <summary>Creates two links that deliver to each other.</summary>
    public static (LoopbackFrameLink A, LoopbackFrameLink B) CreatePair(int frameBytes, double dropRate, int seed)
    {
        var a = new LoopbackFrameLink(frameBytes, dropRate, seed, 0xA);
        var b = new LoopbackFrameLink(frameBytes, dropRate, seed + 1, 0xB);
        a._peer = b;
        b._peer = a;
        return (a, b);
    }

    public int FrameBytes { get; }

    /// <summary>Frames dropped on purpose so far.</summary>
    public int Dropped { get; private set; }

    public void GetMac(Span<byte> mac)
    {
        mac.Clear();
        mac[0] = 0x02;
        mac[5] = _macByte;
    }

    public int Send(ReadOnlySpan<byte> frames, ReadOnlySpan<int> lengths, int stride)
    {
        for (int i = 0; i < lengths.Length; i++)
        {
            if (_random.NextDouble() < _dropRate)
            {
                Dropped++;
                continue;
            }
            var copy = frames.Slice(i * stride, lengths[i]).ToArray();
            lock (_peer!._inbox)
                _peer._inbox.Enqueue(copy);
        }
        return lengths.Length;
    }

    public int Receive(Span<byte> frames, Span<int> lengths, int stride)
    {
        int n = 0;
        lock (_inbox)
        {
            while (n < lengths.Length && _inbox.TryDequeue(out var frame))
            {
                frame.CopyTo(frames[(n * stride)..]);
                lengths[n++] = frame.Length;
            }
        }
        return n;
    }

    public void Dispose()
    {
    }
}
