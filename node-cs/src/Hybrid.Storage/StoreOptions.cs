namespace Hybrid.Storage;

/// <summary>
/// Settings of one store. Defaults suit a node; tests shrink <see cref="MemoryBudgetBytes"/>,
/// <see cref="PageSizeBytes"/> and <see cref="IndexBuckets"/> so records really go to disk.
/// <see cref="Validate"/> states the rules that must hold.
/// </summary>
public sealed record StoreOptions
{
    /// <summary>Directory for the hybrid log, the operation log and checkpoints. Created if missing.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The crash promise; see <see cref="DurabilityMode"/>.</summary>
    public DurabilityMode Durability { get; init; } = DurabilityMode.Async;

    /// <summary>
    /// Bytes of the hybrid log kept in memory (rounded down to a power of two, at least two pages).
    /// Older records spill to the data directory and are read back asynchronously.
    /// </summary>
    public long MemoryBudgetBytes { get; init; } = 256L << 20;

    /// <summary>Hybrid log page size (power of two). A record (key + value + ~40 bytes) must fit in one page.</summary>
    public int PageSizeBytes { get; init; } = 4 << 20;

    /// <summary>Hash index buckets (power of two, 64 bytes each, 7 entries per bucket).</summary>
    public long IndexBuckets { get; init; } = 1L << 20;

    /// <summary>Largest key (the user's key bytes, without tenant and table) accepted; longer keys get <see cref="StoreStatus.KeyTooLarge"/>.</summary>
    public int MaxKeyBytes { get; init; } = 4096;

    /// <summary>Largest value accepted; larger values get <see cref="StoreStatus.ValueTooLarge"/>.</summary>
    public int MaxValueBytes { get; init; } = 1 << 20;

    /// <summary><see cref="DurabilityMode.Async"/> only: how often the operation log is committed (the crash-loss window).</summary>
    public TimeSpan CommitInterval { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>Interval between automatic checkpoints in Async/Sync modes; <see cref="TimeSpan.Zero"/> disables them.</summary>
    public TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Most sessions open at once (workers + scanners + internal); sizes the per-tenant counters.</summary>
    public int MaxSessions { get; init; } = 64;

    /// <summary>
    /// Flushes a directory's entries to disk (the node passes libhyb_transport's <c>FileDurability.TrySyncDirectory</c>;
    /// .NET cannot open a directory). The store calls it for every new file it relies on: after each operation-log
    /// commit (FASTER writes each commit's metadata into a new file, and the log into new 256 MB segment files; a write
    /// counts as durable only after this), for a checkpoint's new folders and log segments before
    /// <c>checkpoint.json</c> names it, and after renaming <c>checkpoint.json</c>. Null: nothing is flushed, so a
    /// machine crash (not a process crash) may lose acknowledged writes of Sync mode and the last checkpoint.
    /// </summary>
    public Action<string>? SyncDirectory { get; init; }

    /// <summary>
    /// Called once, on the store's commit thread, when the operation log can no longer be committed (a full disk, an
    /// I/O error): no write becomes durable after it, so the owner should stop (acknowledged writes are on disk).
    /// Null: the commit thread's exception ends the process, as an unhandled exception does.
    /// </summary>
    public Action<Exception>? OnCommitFailure { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first rule broken.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
            throw new ArgumentException("DataDirectory is required", nameof(DataDirectory));
        if (PageSizeBytes < 512 || (PageSizeBytes & (PageSizeBytes - 1)) != 0)
            throw new ArgumentException("PageSizeBytes must be a power of two >= 512", nameof(PageSizeBytes));
        if (MemoryBudgetBytes < 2L * PageSizeBytes)
            throw new ArgumentException($"MemoryBudgetBytes must hold at least two pages: {2L * PageSizeBytes} bytes or more, not {MemoryBudgetBytes}", nameof(MemoryBudgetBytes));
        if (IndexBuckets < 64 || (IndexBuckets & (IndexBuckets - 1)) != 0)
            throw new ArgumentException("IndexBuckets must be a power of two >= 64", nameof(IndexBuckets));
        if (MaxKeyBytes < 1 || MaxValueBytes < 0)
            throw new ArgumentException("MaxKeyBytes must be >= 1 and MaxValueBytes >= 0");
        if (MaxKeyBytes + MaxValueBytes + RecordOverheadBytes > PageSizeBytes)
            throw new ArgumentException("a record of MaxKeyBytes + MaxValueBytes must fit in one page", nameof(PageSizeBytes));
        if (MaxSessions < 1)
            throw new ArgumentException("MaxSessions must be >= 1", nameof(MaxSessions));
        if (Durability == DurabilityMode.Async && CommitInterval <= TimeSpan.Zero)
            throw new ArgumentException("CommitInterval must be positive", nameof(CommitInterval));
    }

    /// <summary>Upper bound of the bytes a record needs besides key and value (header, tenant, table, version, lengths, alignment).</summary>
    public const int RecordOverheadBytes = 64;
}
