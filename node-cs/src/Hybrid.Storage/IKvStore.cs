namespace Hybrid.Storage;

/// <summary>
/// The node's storage: tenants → tables → byte keys → versioned byte values, larger than memory, with the
/// durability promise of <see cref="StoreOptions.Durability"/>. Thread-safe; request-path work goes through
/// per-thread <see cref="IKvSession"/>s. Open one with <c>FasterKvStore.Open(options)</c>. Nothing here exposes FASTER.
/// </summary>
public interface IKvStore : IDisposable
{
    /// <summary>The options the store was opened with.</summary>
    StoreOptions Options { get; }

    /// <summary>A new session for one worker thread. Dispose it when the worker stops.</summary>
    IKvSession NewSession();

    /// <summary>A new scanner for migration scans (its own session; one thread at a time).</summary>
    ISlotScanner NewScanner();

    /// <summary>
    /// Splits the log into <paramref name="partitions"/> address ranges of about equal size (on page boundaries), from
    /// <paramref name="from"/> (0 = the log's begin) to the current tail, to be scanned in parallel with
    /// <see cref="ISlotScanner.ScanChunk"/>. See <see cref="ISlotScanner"/> for what is guaranteed. Empty ranges are
    /// left out, so fewer partitions may come back.
    /// </summary>
    ScanCursor[] PlanScan(int partitions, long from = 0);

    /// <summary>
    /// Highest version issued by a write here or raised to by <see cref="RaiseVersionFloor"/> or a pulled record:
    /// the "version floor" a migration source reports at prepare. Every later write gets a larger version.
    /// </summary>
    ulong MaxVersion { get; }

    /// <summary>
    /// Identifies this opening of the store: a random non-zero value drawn when the store is opened, different (with
    /// overwhelming probability) after every restart. Log addresses (<see cref="ScanCursor"/>s, <see cref="PlanScan"/>'s
    /// ends) mean something only within one incarnation: recovery replays the operation log, so after a restart the
    /// same records lie at other (usually lower) addresses, and a cursor planned before it names nothing.
    /// </summary>
    long Incarnation { get; }

    /// <summary>
    /// Makes every later write on this node get a version &gt; <paramref name="floor"/> (never lowers it). A migration
    /// target calls this with the source's <see cref="MaxVersion"/> before serving the range. In Async/Sync modes the
    /// raise is logged without waiting: it becomes durable with the next group commit, before any write logged after
    /// it. A caller that needs it across a crash before that commit must raise it again at recovery (a migration
    /// target does: it asks the source).
    /// </summary>
    void RaiseVersionFloor(ulong floor);

    /// <summary>
    /// Deletes every record (live or tombstone) whose slot is in [<paramref name="slotLo"/>, <paramref name="slotHi"/>]
    /// (a migration source giving up a range). Blocks until done (disk reads included); returns how many were removed.
    /// Call it only for ranges this node no longer serves. In Async/Sync modes the drop is durable when it returns.
    /// </summary>
    long DropSlots(int slotLo, int slotHi);

    /// <summary>Approximate bytes (keys + values + per-record overhead) stored by a tenant's live records. Cheap.</summary>
    long TenantBytes(uint tenant);

    /// <summary>
    /// Approximate number of a tenant's live records on this node (exact while no write runs; during a migration a
    /// range's records count at both its source and its target until the source drops them). Cheap.
    /// </summary>
    long TenantRecords(uint tenant);

    /// <summary>Size counters for metrics.</summary>
    StoreMetrics GetMetrics();

    /// <summary>True when the write with commit sequence <paramref name="sequence"/> (see <see cref="IKvSession.LastWriteSequence"/>) is durable. Always true in Memory mode.</summary>
    bool IsDurable(long sequence);

    /// <summary>Completes when <see cref="IsDurable"/>(<paramref name="sequence"/>) is true. Does not block the caller.</summary>
    ValueTask WaitDurableAsync(long sequence, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes a checkpoint now (Async/Sync modes) and truncates the operation log before it. Returns the operation-log
    /// position it covers: every write whose sequence is at most that value is in the checkpoint. In Memory mode: 0.
    /// </summary>
    ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default);
}
