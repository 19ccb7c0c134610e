namespace Hybrid.Storage;

/// <summary>
/// A stateless position in a slot scan: the log address to continue from (<see cref="Next"/>) and the exclusive
/// end of this partition (<see cref="End"/>). The store keeps no state per scan: a caller may persist a cursor,
/// resume it on another thread or scanner, or drop it.
/// </summary>
/// <param name="Next">Log address of the next record to examine.</param>
/// <param name="End">Exclusive end address of the partition, fixed when the scan was planned.</param>
public readonly record struct ScanCursor(long Next, long End)
{
    /// <summary>True when the partition has been scanned completely.</summary>
    public bool IsDone => Next >= End;
}
