namespace Hybrid.Protocol;

/// <summary>
/// Node-to-node (peer) protocol operations: what a migration target asks of its source, what a migration coordinator
/// asks of the nodes it drives, and what tools ask of a node's cluster layer. They travel on the node's separate peer
/// port (docs/protocol.md §11), never on the client port: the values 0x30/0x31 are the ones <see cref="OpCode"/>
/// reserves for migration pulls, the others follow them. Values are wire values: never renumber, only append.
/// </summary>
/// <remarks>
/// A connection opens with the handshake (<see cref="Authenticate"/>). Then a peer frame is
/// <c>[u32 length][u8 op][payload]</c> (length = bytes after itself), little-endian; the reply is
/// <c>[u32 length][u8 status][payload]</c> where status is <see cref="PeerFrame.Ok"/> or <see cref="PeerFrame.Failed"/>
/// (payload = UTF-8 message). One request at a time per connection; a caller opens one connection per concurrent pull.
/// </remarks>
public enum PeerOp : byte
{
    /// <summary>
    /// Background pull: <c>i32 lo, i32 hi, i64 incarnation, i64 next, i64 end</c> → <c>i64 incarnation, i64 next, i64 end, i32 count, records</c>.
    /// The cursor is valid only in the source store's incarnation it was planned in (<see cref="PlanPulls"/>); when the
    /// source's incarnation is another one (it restarted), nothing is scanned and the reply carries the incarnation
    /// now, the cursor as sent and no records: the target starts its pulls over.
    /// </summary>
    Pull = 0x30,
    /// <summary>Priority pull: <c>i32 n, n × (u32 tenant, u32 table, i32 keyLength, key)</c> → <c>i32 count, records</c>.</summary>
    PriorityPull = 0x31,
    /// <summary>Plans a background pull: <c>i32 partitions, i64 from</c> → <c>i64 incarnation, i32 n, n × (i64 next, i64 end)</c> (incarnation: the source store's, a random value drawn at each opening).</summary>
    PlanPulls = 0x32,
    /// <summary>DropSource: <c>i32 lo, i32 hi</c> → <c>i64 records removed</c>.</summary>
    Drop = 0x33,
    /// <summary>The node's version floor: (empty) → <c>u64</c>.</summary>
    VersionFloor = 0x34,
    /// <summary>A decision's BumpView for this node: <c>i32 view</c> → (empty). A view never goes back.</summary>
    AdvanceView = 0x35,
    /// <summary>The view each worker (core) executes in: (empty) → <c>i32 n, n × i32</c>.</summary>
    CoreViews = 0x36,
    /// <summary>Cluster control (start a migration, status): UTF-8 JSON request → UTF-8 JSON reply.</summary>
    Control = 0x37,
    /// <summary>
    /// Background pull as a stream: <c>i32 lo, i32 hi, i64 incarnation, i64 next, i64 end</c> → one reply frame per
    /// chunk, each <c>i64 incarnation, i64 next, i64 end, i32 count, records</c>, until a chunk whose cursor is done (or a
    /// failed frame, or a frame naming another incarnation, as for <see cref="Pull"/>, which is the last).
    /// </summary>
    PullStream = 0x38,
    /// <summary>
    /// The client's half of the handshake every connection opens with (docs/protocol.md §11.1): <c>u16 version,
    /// 32-byte nonce, 32-byte HMAC-SHA256</c> → the server's 32-byte proof. No other op is served before it succeeds.
    /// </summary>
    Authenticate = 0x39,
}

/// <summary>Constants of the peer frame (<see cref="PeerOp"/>).</summary>
public static class PeerFrame
{
    /// <summary>Bytes before the payload: length (4) + op or status (1).</summary>
    public const int HeaderBytes = 5;

    /// <summary>Largest payload either side accepts (a pull chunk is about 20 KB; priority pulls of large values more).</summary>
    public const int MaxPayloadBytes = 64 << 20;

    /// <summary>Reply status: the operation ran; its result follows.</summary>
    public const byte Ok = 0;

    /// <summary>Reply status: the operation failed; a UTF-8 message follows.</summary>
    public const byte Failed = 1;

    /// <summary>The server's first frame on a connection: <c>u16 version, 32-byte nonce</c> (<see cref="PeerOp.Authenticate"/>).</summary>
    public const byte Hello = 2;
}
