using Hybrid.Node.Tenants;
using Hybrid.Storage;

namespace Hybrid.Node.Hosting;

/// <summary>
/// What a front end may use on the worker that runs its call. One per worker thread; valid only during the call
/// (a stolen connection sees the thief's context).
/// </summary>
public interface IWorkerContext
{
    /// <summary>Index of the worker (0..workers-1).</summary>
    int WorkerIndex { get; }

    /// <summary>The worker's own storage session. WARNING: never keep it beyond the call, never use it from another thread.</summary>
    IKvSession Session { get; }

    /// <summary>The store (durability checks, tenant bytes).</summary>
    IKvStore Store { get; }

    /// <summary>The tenants (for HELLO/AUTH).</summary>
    TenantRegistry Tenants { get; }

    /// <summary>The view this worker is in: read from <see cref="NodeView"/> at its last epoch refresh (per batch check).</summary>
    ulong View { get; }

    /// <summary>
    /// The slots the node owns in <see cref="View"/> (published with it): a batch with a key outside them is refused
    /// as a whole with NotOwner. <see cref="OwnedSlots.All"/> outside a cluster.
    /// </summary>
    OwnedSlots OwnedSlots { get; }

    /// <summary>This worker's side of tenant extensions: its coroutine scheduler and the node's extension host.</summary>
    Extensions.WorkerExtensions Extensions { get; }

    /// <summary>True when only this host can reach the node (<see cref="HybridNodeOptions.IsLoopbackOnly"/>), so the <c>default</c> tenant may skip AUTH.</summary>
    bool AllowsUnauthenticatedDefault { get; }

    /// <summary>
    /// Charges <paramref name="operations"/> ops to the tenant's ops/s token bucket (this worker's share). False when
    /// the quota is spent: answer QuotaExceeded and run nothing.
    /// </summary>
    bool TryChargeOps(TenantInfo tenant, int operations);

    /// <summary>
    /// Charges <paramref name="bytes"/> of new data to the tenant's memory quota. False when storing them would exceed
    /// it (checked against the tenant's stored bytes read at the last refresh plus this worker's writes since).
    /// </summary>
    bool TryChargeBytes(TenantInfo tenant, long bytes);

    /// <summary>Counts <paramref name="count"/> operations of kind <paramref name="op"/> for metrics (per worker, merged on scrape).</summary>
    void CountOps(TenantInfo tenant, OpKind op, int count = 1);

    /// <summary>Records one batch's service time (from <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> at its start) in the latency histogram.</summary>
    void RecordBatch(long startTimestamp);

    /// <summary>Counts a batch refused as a whole (bad frame, view change, failed AUTH) by status, for metrics.</summary>
    void CountRejection(Hybrid.Protocol.Status status);

    /// <summary>
    /// A storage context for an operation that may go pending: its completion comes back to
    /// <see cref="IConnectionState.OnCompleted"/> of <paramref name="connection"/> with <paramref name="token"/>.
    /// Cheap; allocates nothing after the first use on a worker.
    /// </summary>
    ulong PendingContext(ConnectionContext connection, uint token);
}

/// <summary>Operation kinds for metrics (the label <c>op</c>).</summary>
public enum OpKind
{
    /// <summary>Get, GET.</summary>
    Get,
    /// <summary>Put, SET.</summary>
    Put,
    /// <summary>Delete, DEL.</summary>
    Delete,
    /// <summary>CondPut.</summary>
    CondPut,
    /// <summary>One key of a MultiGet / MGET.</summary>
    MultiGet,
    /// <summary>Noop, PING.</summary>
    Noop,
    /// <summary>Hello, Auth, and other session commands.</summary>
    Session,
    /// <summary>Anything else (RESP commands such as INCR, APPEND).</summary>
    Other,
}
