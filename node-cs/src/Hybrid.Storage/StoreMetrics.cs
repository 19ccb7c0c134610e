namespace Hybrid.Storage;

/// <summary>A snapshot of the store's sizes for metrics and quotas. Cheap to take (reads counters only).</summary>
/// <param name="MemoryBytes">Bytes of the hybrid log held in memory (bounded by the memory budget) plus the index.</param>
/// <param name="LogBytes">Bytes of the hybrid log from its begin to its tail (memory and disk together).</param>
/// <param name="OperationLogBytes">Bytes of the operation log not yet truncated by a checkpoint (0 in Memory mode).</param>
/// <param name="CommittedSequence">Operation log position known durable (0 in Memory mode).</param>
/// <param name="MaxVersion">Highest version issued or raised to (<see cref="IKvStore.MaxVersion"/>).</param>
/// <param name="LastCheckpointSequence">Operation log position covered by the last completed checkpoint.</param>
public readonly record struct StoreMetrics(
    long MemoryBytes,
    long LogBytes,
    long OperationLogBytes,
    long CommittedSequence,
    ulong MaxVersion,
    long LastCheckpointSequence);
