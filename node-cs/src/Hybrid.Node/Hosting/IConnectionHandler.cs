using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Hosting;

/// <summary>
/// A protocol front end whose connections run on the node's workers: the native protocol and RESP both implement
/// it. Register one per port with <see cref="HybridNode.AddListener"/> (before <see cref="HybridNode.StartAsync"/>),
/// or, inside this assembly, in the partial method <c>HybridNode.RegisterFrontEnds</c>.
/// </summary>
/// <remarks>
/// The node owns sockets, buffers, workers, stealing, durability waits and sends; a handler only turns received
/// bytes into storage calls and reply bytes. Everything a handler is given is valid only during the call.
/// </remarks>
public interface IConnectionHandler
{
    /// <summary>Short protocol name for metrics and logs ("native", "resp").</summary>
    string Name { get; }

    /// <summary>
    /// A connection was accepted. Called once, on a worker thread, before any <see cref="IConnectionState.Process"/>.
    /// Returns the connection's protocol state (allocated once per connection, not per request).
    /// </summary>
    IConnectionState Open(ConnectionContext connection);
}

/// <summary>
/// Per-connection protocol state. Only one thread touches it at a time (the worker running the connection, which
/// may be a sibling that stole it), so it needs no locks.
/// </summary>
public interface IConnectionState : IDisposable
{
    /// <summary>
    /// Consumes as many complete requests from <paramref name="input"/> as it can, runs them with
    /// <see cref="IWorkerContext.Session"/> and appends the replies to <paramref name="output"/>.
    /// <paramref name="consumed"/> = bytes fully handled (the rest is kept and offered again with more data).
    /// </summary>
    /// <param name="worker">The worker running this call: its storage session, view and quotas.</param>
    /// <param name="connection">The connection (tenant, session id, durability needs).</param>
    /// <param name="input">Received bytes not consumed yet.</param>
    /// <param name="output">Reply bytes to send; the node sends them after this call (one send for all).</param>
    /// <param name="consumed">Bytes of <paramref name="input"/> consumed.</param>
    ProcessOutcome Process(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> input, FrameBuffer output, out int consumed);

    /// <summary>
    /// A storage operation this connection started with a context from <see cref="IWorkerContext.PendingContext"/>
    /// finished. Return true when the connection should run again: it has no pending operation left, or (only on a
    /// connection whose <see cref="ConnectionContext.ResumesWhilePending"/> is set) replies became ready to send. The
    /// node then sends <paramref name="output"/> and calls <see cref="Process"/> again with the remaining input.
    /// WARNING: runs inside <see cref="IKvSession.CompletePending"/>: do not start storage operations here, and
    /// copy <paramref name="value"/> (valid only during the call).
    /// </summary>
    bool OnCompleted(IWorkerContext worker, ConnectionContext connection, uint token, in StoreResult result, ReadOnlySpan<byte> value, FrameBuffer output);

    /// <summary>
    /// The peer closed its sending side (or the connection broke) while <paramref name="unconsumed"/> bytes were
    /// left: the handler may append a last error reply to <paramref name="output"/> (e.g. a truncated frame).
    /// </summary>
    void OnEndOfInput(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> unconsumed, FrameBuffer output);

    /// <summary>
    /// True while an operation this state started is pending: the connection then stays with the worker that started it
    /// (its completions find it there) and does not close until the operation finished.
    /// </summary>
    bool HasPendingOperations { get; }

    /// <summary>
    /// True when this front end may run while its operations are pending: its output then holds only replies that may
    /// go now, and <see cref="Process"/> keeps every key's order against the pending operations itself.
    /// </summary>
    bool RunsBetweenCompletions { get; }
}

/// <summary>What the node does with a connection after <see cref="IConnectionState.Process"/>.</summary>
public enum ProcessOutcome
{
    /// <summary>Send the replies and receive more.</summary>
    Continue,

    /// <summary>
    /// A storage operation went pending (<see cref="StoreStatus.Pending"/>): the node keeps the connection on this
    /// worker, sends nothing and offers no input until <see cref="IConnectionState.OnCompleted"/> returns true.
    /// </summary>
    Parked,

    /// <summary>Send the replies, then close the connection (bad input, failed AUTH, QUIT).</summary>
    Close,
}
