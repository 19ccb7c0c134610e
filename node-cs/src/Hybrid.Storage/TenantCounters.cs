using System.Collections.Concurrent;

namespace Hybrid.Storage;

/// <summary>
/// Per-tenant stored bytes and live records without a shared hot counter: each tenant has one cache-line-padded cell
/// per session slot; a session adds only to its own cell (plain writes, no interlocked op), readers sum the cells. A
/// sum read while writers run is approximate; cells never lose an update.
/// </summary>
internal sealed class TenantCounters
{
    private const int Stride = 8; // 8 longs = 64 bytes: one cache line per session cell (bytes, then records)
    private readonly ConcurrentDictionary<uint, long[]> _cells = new();
    private readonly int _slots;

    public TenantCounters(int slots) => _slots = slots;

    /// <summary>The cell array of a tenant (created once per tenant). A session caches it.</summary>
    public long[] CellsOf(uint tenant)
        => _cells.TryGetValue(tenant, out var cells) ? cells : _cells.GetOrAdd(tenant, static (_, n) => new long[n], _slots * Stride);

    /// <summary>Adds to the cell of session slot <paramref name="slot"/>: <paramref name="bytes"/> and <paramref name="records"/>.</summary>
    public static void Add(long[] cells, int slot, long bytes, long records)
    {
        ref long cell = ref cells[slot * Stride];
        Volatile.Write(ref cell, cell + bytes);
        if (records != 0)
        {
            ref long count = ref cells[(slot * Stride) + 1];
            Volatile.Write(ref count, count + records);
        }
    }

    /// <summary>Forgets all counts (recovery recomputes them; no session may be writing).</summary>
    public void Clear() => _cells.Clear();

    /// <summary>The tenant's live bytes (<paramref name="field"/> 0) or live records (1), summed over the cells.</summary>
    public long Total(uint tenant, int field = 0)
    {
        if (!_cells.TryGetValue(tenant, out var cells))
            return 0;
        long sum = 0;
        for (int i = field; i < cells.Length; i += Stride)
            sum += Volatile.Read(ref cells[i]);
        return sum;
    }
}
