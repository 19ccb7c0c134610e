namespace Hybrid.Transport.Datagram;

/// <summary>
/// Moves raw Ethernet frames and nothing more: the DPDK port in production, an in-memory lossy pair in tests.
/// Frames travel in flat buffers (frame i at i × stride) so a burst costs one call and no allocation.
/// Calls are serialised by the caller (the <see cref="DatagramEngine"/> lock).
/// </summary>
internal interface IFrameLink : IDisposable
{
    /// <summary>Largest frame the link carries, Ethernet header included.</summary>
    int FrameBytes { get; }

    /// <summary>Writes the link's 6-byte MAC address.</summary>
    void GetMac(Span<byte> mac);

    /// <summary>Offers <paramref name="lengths"/>.Length frames; returns how many leading ones were taken (the rest did not fit).</summary>
    int Send(ReadOnlySpan<byte> frames, ReadOnlySpan<int> lengths, int stride);

    /// <summary>Copies up to <paramref name="lengths"/>.Length waiting frames out without blocking; returns the count.</summary>
    int Receive(Span<byte> frames, Span<int> lengths, int stride);
}
