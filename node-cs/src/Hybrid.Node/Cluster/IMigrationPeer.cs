using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// "Call the migration source": what a <see cref="MigrationTarget"/> asks of the node it pulls from. Every call is a
/// pure request → response (the source keeps no per-migration state: cursors are stateless), so a call may be
/// retried or resumed elsewhere after a crash. <see cref="InProcessPeer"/> calls a <see cref="MigrationSource"/>
/// directly; a network implementation sends the same requests as transport ops.
/// </summary>
public interface IMigrationPeer
{
    /// <summary>The source's version floor (<see cref="IKvStore.MaxVersion"/>), reported at Prepare.</summary>
    ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Plans a background pull of the source's log from <paramref name="from"/> (0 = its begin) to its tail in up to
    /// <paramref name="partitions"/> partitions, with the source store's incarnation the cursors belong to.
    /// </summary>
    ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default);

    /// <summary>
    /// One background-pull chunk of <paramref name="range"/> from <paramref name="cursor"/> (planned in the source's
    /// <paramref name="incarnation"/>) into <paramref name="into"/> (cleared first); returns the next cursor. Throws
    /// <see cref="SourceRestartedException"/>, having scanned nothing, when the source is in another incarnation.
    /// </summary>
    ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default);

    /// <summary>
    /// The background pull of one partition of <paramref name="range"/> from <paramref name="from"/> (planned in the
    /// source's <paramref name="incarnation"/>) to its end as a stream of chunks (blocking reads, for a pull thread;
    /// a read throws <see cref="SourceRestartedException"/> when the source is in another incarnation). By default one
    /// <see cref="PullAsync"/> per chunk with the next in flight; <see cref="NetworkPeer"/> streams instead (<c>PeerOp.PullStream</c>).
    /// </summary>
    IPullStream OpenPulls(SlotRange range, long incarnation, ScanCursor from, CancellationToken cancellationToken = default) =>
        new PrefetchingPullStream(this, range, incarnation, from, cancellationToken);

    /// <summary>A priority pull: the live records of up to <see cref="MigrationSource.MaxPriorityKeys"/> keys into <paramref name="into"/> (cleared first); absent keys are left out.</summary>
    ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="PriorityPullAsync"/> that blocks the calling (priority-pull) thread. By default the asynchronous call
    /// waited for; <see cref="NetworkPeer"/> sends and receives on the calling thread, so the reply wakes that thread
    /// directly instead of a pool thread that would then wake it.
    /// </summary>
    void PriorityPull(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
        PriorityPullAsync(keys, into, cancellationToken).AsTask().GetAwaiter().GetResult();

    /// <summary>DropSource: the source deletes every record of <paramref name="range"/>; returns how many it removed.</summary>
    ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default);
}

/// <summary>
/// An in-process <see cref="IMigrationPeer"/>: direct calls to a <see cref="MigrationSource"/>, run on the thread pool
/// (the source's scans block on disk, and a pull overlaps the target's apply of the previous chunk as it would over
/// the network).
/// </summary>
/// <remarks>
/// A failure of the source's call reaches the caller as a <see cref="PeerException"/> (as it would over the network),
/// except <see cref="SourceRestartedException"/> and cancellations.
/// </remarks>
public sealed class InProcessPeer(MigrationSource source) : IMigrationPeer
{
    /// <inheritdoc />
    public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(source.VersionFloor);

    /// <inheritdoc />
    public ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => Remote(() => source.PlanPulls(partitions, from)), cancellationToken));

    /// <inheritdoc />
    public ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => Remote(() => source.Pull(range, incarnation, cursor, into)), cancellationToken));

    /// <inheritdoc />
    public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => Remote(() =>
        {
            source.PriorityPull(keys.Span, into);
            return true;
        }), cancellationToken));

    /// <inheritdoc />
    public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => Remote(() => source.Drop(range)), cancellationToken));

    /// <summary>Runs a call of the source; its failure becomes a <see cref="PeerException"/>, as <see cref="PeerServer"/> reports it.</summary>
    private static T Remote<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (Exception e) when (e is not (SourceRestartedException or OperationCanceledException))
        {
            throw new PeerException(e.GetType().Name + ": " + e.Message);
        }
    }
}

/// <summary>A background-pull plan: the partitions' cursors and the source store's incarnation they belong to (<see cref="IKvStore.Incarnation"/>).</summary>
/// <param name="Incarnation">The source store's incarnation when it planned.</param>
/// <param name="Partitions">The partitions, in log order.</param>
public readonly record struct PullPlan(long Incarnation, ScanCursor[] Partitions);

/// <summary>
/// The source's store is not the one a pull's cursor was planned in: it restarted (recovery rebuilt its log at other
/// addresses), so every cursor and log end planned before means nothing now. The pull job starts over from the log's begin.
/// </summary>
public sealed class SourceRestartedException(long incarnation)
    : Exception($"the migration source restarted (store incarnation now {incarnation:x}): its log addresses changed")
{
    /// <summary>The source store's incarnation now.</summary>
    public long Incarnation { get; } = incarnation;
}
