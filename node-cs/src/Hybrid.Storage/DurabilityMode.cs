namespace Hybrid.Storage;

/// <summary>
/// What a node promises about acknowledged writes when it crashes (process killed, machine reset).
/// Chosen once per node in <see cref="StoreOptions.Durability"/>. The exact promise is in this project's README.
/// </summary>
public enum DurabilityMode
{
    /// <summary>
    /// A cache: nothing is persisted. The hybrid log may still spill to the data directory when data exceeds the
    /// memory budget, but a restart (clean or not) always starts empty and deletes what is in the directory.
    /// </summary>
    Memory = 0,

    /// <summary>
    /// Every write is appended to an operation log that a background committer makes durable every
    /// <see cref="StoreOptions.CommitInterval"/>. A crash loses at most the writes of the last uncommitted window
    /// (acknowledged writes included); a clean close loses nothing. Periodic checkpoints bound recovery time.
    /// </summary>
    Async = 1,

    /// <summary>
    /// Like <see cref="Async"/>, but the committer commits as soon as there is anything to commit (group commit),
    /// and a caller must not acknowledge a write before <see cref="IKvStore.IsDurable"/> is true for the write's
    /// sequence (<see cref="IKvSession.LastWriteSequence"/>). Then every acknowledged write survives a crash.
    /// </summary>
    Sync = 2,
}
