using System.Net;
using Hybrid.Node.Tenants;

namespace Hybrid.Node.Hosting;

/// <summary>
/// The node-side facts about one connection that front ends read and set: its tenant after HELLO/AUTH, its session
/// id, and the durability its replies wait for. Touched by one thread at a time (like <see cref="IConnectionState"/>).
/// </summary>
public sealed class ConnectionContext
{
    internal ConnectionContext(ulong sessionId, EndPoint? remote, string listener)
    {
        SessionId = sessionId;
        RemoteEndPoint = remote;
        Listener = listener;
        OpenedTicks = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>When the connection was admitted (<see cref="System.Diagnostics.Stopwatch"/> ticks; the handshake timeout).</summary>
    internal long OpenedTicks { get; }

    /// <summary>1 once the handshake timeout closed it (so it is counted and aborted once).</summary>
    internal int HandshakeExpired;

    /// <summary>The node's connection object behind this context.</summary>
    internal Dispatch.Connection? Connection { get; set; }

    /// <summary>The node-unique id of this connection's session (sent to native clients in the Hello reply).</summary>
    public ulong SessionId { get; }

    /// <summary>The peer's address.</summary>
    public EndPoint? RemoteEndPoint { get; }

    /// <summary>Name of the listener (front end) that accepted the connection.</summary>
    public string Listener { get; }

    /// <summary>
    /// The tenant this session belongs to, or null before HELLO/AUTH succeeded. Every storage call of the connection
    /// must pass this tenant's id: that is the whole of tenant isolation.
    /// </summary>
    public TenantInfo? Tenant { get; set; }

    /// <summary>
    /// Commit sequence the pending replies must wait for (<see cref="Storage.IKvSession.LastWriteSequence"/> after a
    /// write). In Sync durability the node sends nothing of this connection until the store says it is durable.
    /// Front ends set it after each batch that wrote; the node resets it to 0 once it sent the replies.
    /// </summary>
    public long RequiredDurableSequence { get; set; }

    /// <summary>
    /// The connection runs between the completions of its pending operations (sends the replies that are ready, reads
    /// and runs new requests) while staying on the worker that holds them: both the connection (its kind of I/O) and
    /// its front end (<see cref="IConnectionState.RunsBetweenCompletions"/>) can. Otherwise it runs again only when
    /// nothing is pending.
    /// </summary>
    internal bool ResumesWhilePending { get; set; }

    /// <summary>
    /// Replies may go out in another order than their requests came (a byte stream, where the client matches them by
    /// batch number); false on message transports, whose request/reply contract answers in order.
    /// </summary>
    internal bool MayReorderReplies { get; set; }
}
