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

    /// <summary>Plans a background pull of the source's log from <paramref name="from"/> (0 = its begin) to its tail in up to <paramref name="partitions"/> partitions.</summary>
    ValueTask<ScanCursor[]> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default);

    /// <summary>One background-pull chunk of <paramref name="range"/> from <paramref name="cursor"/> into <paramref name="into"/> (cleared first); returns the next cursor.</summary>
    ValueTask<ScanCursor> PullAsync(SlotRange range, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default);

    /// <summary>
    /// The background pull of one partition of <paramref name="range"/> from <paramref name="from"/> to its end as a
    /// stream of chunks (blocking reads, for a pull thread). By default one <see cref="PullAsync"/> per chunk with the
    /// next in flight; <see cref="NetworkPeer"/> streams instead (<c>PeerOp.PullStream</c>).
    /// </summary>
    IPullStream OpenPulls(SlotRange range, ScanCursor from, CancellationToken cancellationToken = default) =>
        new PrefetchingPullStream(this, range, from, cancellationToken);

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
public sealed class InProcessPeer(MigrationSource source) : IMigrationPeer
{
    /// <inheritdoc />
    public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(source.VersionFloor);

    /// <inheritdoc />
    public ValueTask<ScanCursor[]> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => source.PlanPulls(partitions, from), cancellationToken));

    /// <inheritdoc />
    public ValueTask<ScanCursor> PullAsync(SlotRange range, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => source.Pull(range, cursor, into), cancellationToken));

    /// <inheritdoc />
    public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => source.PriorityPull(keys.Span, into), cancellationToken));

    /// <inheritdoc />
    public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) =>
        new(Task.Run(() => source.Drop(range), cancellationToken));
}
