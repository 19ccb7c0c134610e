namespace Hybrid.Storage;

/// <summary>
/// Walks the records of a slot range for a migration (Rocksteady background pulls). A scanner owns its own store
/// session; use one per thread. It may block on disk reads: run it on a background thread, not on a worker.
/// </summary>
/// <remarks>
/// Guarantees, for the partitions returned by one <see cref="IKvStore.PlanScan"/> (together they cover the whole log
/// as it was at planning time, address range [begin, tail)):
/// <list type="number">
/// <item>Each key of the slot range that has a live record at planning time and is not written (or dropped) until the
/// scan finishes is returned exactly once across all chunks and partitions, with its current value and version.</item>
/// <item>Every record returned was the key's latest record at the moment it was returned (never an old version
/// of a record that was superseded before the scan reached it), and tombstones are never returned.</item>
/// <item>A key written during the scan may be returned more than once (each time with a newer version) or not at
/// all: a write made after planning places the key's latest record beyond every partition's end. A scan planned
/// afterwards (or <see cref="IKvStore.PlanScan"/> with <c>from</c> = the old end) covers such writes with the same
/// guarantees. In a Rocksteady migration the source takes no writes in the range once ownership moved, so one scan
/// planned after the view change returns every record exactly once.</item>
/// <item>Chunk boundaries lose nothing: a cursor is the address right after the last record examined.</item>
/// </list>
/// </remarks>
public interface ISlotScanner : IDisposable
{
    /// <summary>
    /// Examines records from <paramref name="cursor"/> until <paramref name="maxRecords"/> records were returned,
    /// about <paramref name="maxBytes"/> bytes were returned, or the partition ends; hands each live record whose
    /// slot is in [<paramref name="slotLo"/>, <paramref name="slotHi"/>] (inclusive) to <paramref name="sink"/>.
    /// Returns the cursor to pass next time (<see cref="ScanCursor.IsDone"/> when finished).
    /// </summary>
    ScanCursor ScanChunk(ScanCursor cursor, int slotLo, int slotHi, int maxRecords, int maxBytes, IScanSink sink);
}
