namespace Hybrid.Protocol;

/// <summary>
/// Size limits a node enforces on incoming frames. Anything above answers <see cref="Status.TooLarge"/> and
/// closes the connection. The defaults suit 100-byte values and batches of a few hundred requests.
/// </summary>
/// <param name="MaxFrameBytes">Largest frame, header included.</param>
/// <param name="MaxKeyBytes">Largest key (at most 65535, the width of the key-length field).</param>
/// <param name="MaxValueBytes">Largest value.</param>
/// <param name="MaxRequestsPerBatch">Most requests in one frame (MultiGet keys count one each).</param>
public sealed record ProtocolLimits(int MaxFrameBytes, int MaxKeyBytes, int MaxValueBytes, int MaxRequestsPerBatch)
{
    /// <summary>4 MiB frames, 16 KiB keys, 1 MiB values, 8192 requests per batch.</summary>
    public static ProtocolLimits Default { get; } = new(4 << 20, 16 << 10, 1 << 20, 8192);

    /// <summary>
    /// Reply bytes one batch (native) or one command (RESP) may produce: reads past it answer TooLarge (a RESP MGET an
    /// error), and a connection whose unsent replies reach it reads no further request until they are sent. 64 MiB.
    /// </summary>
    public int MaxReplyBytes { get; init; } = 64 << 20;

    /// <summary>Largest frame a connection may send before it authenticated (Hello and Auth are small): 4 KiB.</summary>
    public const int MaxUnauthenticatedFrameBytes = 4096;

    /// <summary>Throws when the limits are inconsistent with the wire format.</summary>
    public void Validate()
    {
        if (MaxFrameBytes < FrameHeader.Size + ResultHeader.Size || MaxFrameBytes > int.MaxValue / 2)
            throw new ArgumentOutOfRangeException(nameof(MaxFrameBytes), MaxFrameBytes, "frame limit out of range");
        if (MaxKeyBytes is < 1 or > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(MaxKeyBytes), MaxKeyBytes, "key limit must be 1..65535");
        if (MaxValueBytes < 0 || MaxValueBytes > MaxFrameBytes)
            throw new ArgumentOutOfRangeException(nameof(MaxValueBytes), MaxValueBytes, "value limit must fit a frame");
        if (MaxReplyBytes < MaxValueBytes + FrameHeader.Size + ResultHeader.Size)
            throw new ArgumentOutOfRangeException(nameof(MaxReplyBytes), MaxReplyBytes, "reply limit must hold the largest value");
        if (MaxRequestsPerBatch is < 1 or > ushort.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(MaxRequestsPerBatch), MaxRequestsPerBatch, "batch count must be 1..65535");
    }
}
