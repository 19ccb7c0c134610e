using System.Collections.Concurrent;

namespace Hybrid.Storage;

/// <summary>
/// Per-tenant stored bytes without a shared hot counter: each tenant has one cache-line-padded cell per session
/// slot; a session adds only to its own cell (plain writes, no interlocked op), readers sum the cells. A sum read
/// while writers run is approximate; cells never lose an update.
/// </summary>
internal sealed class TenantCounters
{
    private const int Stride = 8; // 8 longs = 64 bytes: one cache line per session cell
    private readonly ConcurrentDictionary<uint, long[]> _cells = new();
    private readonly int _slots;

    public TenantCounters(int slots) => _slots = slots;

    /// <summary>The cell array of a tenant (created once per tenant). A session caches it.</summary>
    public long[] CellsOf(uint tenant)
        => _cells.TryGetValue(tenant, out var cells) ? cells : _cells.GetOrAdd(tenant, static (_, n) => new long[n], _slots * Stride);

    /// <summary>Adds <paramref name="delta"/> to the cell of session slot <paramref name="slot"/>.</summary>
    public static void Add(long[] cells, int slot, long delta)
    {
        ref long cell = ref cells[slot * Stride];
        Volatile.Write(ref cell, cell + delta);
    }

    /// <summary>Forgets all counts (recovery recomputes them; no session may be writing).</summary>
    public void Clear() => _cells.Clear();

    public long Total(uint tenant)
    {
        if (!_cells.TryGetValue(tenant, out var cells))
            return 0;
        long sum = 0;
        for (int i = 0; i < cells.Length; i += Stride)
            sum += Volatile.Read(ref cells[i]);
        return sum;
    }
}
