namespace Hybrid.Protocol;

/// <summary>
/// Options a client may ask for in its Hello request: the request's value, empty (no options) or one byte of these
/// bits (docs/protocol.md §5). Any other bit, or a longer value, makes the Hello Malformed.
/// </summary>
public static class HelloOptions
{
    /// <summary>
    /// The node may answer the session's batches in completion order instead of request order: a batch waiting for a
    /// disk read or a migration's pull no longer holds back the replies of the batches sent after it. The client
    /// matches replies to batches by <see cref="FrameHeader.BatchSeq"/>.
    /// </summary>
    public const byte OutOfOrderReplies = 1;

    /// <summary>Every bit defined.</summary>
    public const byte All = OutOfOrderReplies;
}
