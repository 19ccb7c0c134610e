using Hybrid.Storage;

namespace Hybrid.Node.Hosting;

/// <summary>
/// The slots a node owns in one view, as a 16384-bit set (2 KiB), published together with that view so a worker
/// checks a batch against the ownership of exactly the view it executes in (the model's <c>b.rng \in Owned(n, v)</c>).
/// Immutable. <see cref="All"/> is a single node's (every slot, no per-key check at all).
/// </summary>
public sealed class OwnedSlots
{
    private readonly ulong[]? _bits;

    private OwnedSlots(ulong[]? bits, string description)
    {
        _bits = bits;
        Description = description;
    }

    /// <summary>Every slot: a node outside a cluster. Workers skip the per-key slot test.</summary>
    public static OwnedSlots All { get; } = new(null, "all");

    /// <summary>No slot: a cluster member before it adopts the view its metadata records.</summary>
    public static OwnedSlots None { get; } = new(new ulong[Slot.Count / 64], "none");

    /// <summary>True when every slot is owned (<see cref="All"/>).</summary>
    public bool IsAll => _bits is null;

    /// <summary>The ranges, as given (for logs and errors).</summary>
    public string Description { get; }

    /// <summary>The set of slots in <paramref name="ranges"/> (inclusive bounds, each within 0..16383).</summary>
    public static OwnedSlots Of(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var bits = new ulong[Slot.Count / 64];
        var parts = new List<string>();
        foreach (var (lo, hi) in ranges)
        {
            if (lo < 0 || hi >= Slot.Count || lo > hi)
                throw new ArgumentOutOfRangeException(nameof(ranges), $"slot range {lo}-{hi} is outside 0-{Slot.Count - 1}");
            for (int s = lo; s <= hi; s++)
                bits[s >> 6] |= 1UL << (s & 63);
            parts.Add(lo == hi ? $"{lo}" : $"{lo}-{hi}");
        }
        return new OwnedSlots(bits, parts.Count == 0 ? "none" : string.Join(",", parts));
    }

    /// <summary>True when <paramref name="slot"/> (0..16383) is owned.</summary>
    public bool Contains(int slot) => _bits is null || (_bits[slot >> 6] & (1UL << (slot & 63))) != 0;

    /// <summary>True when the slot of <paramref name="key"/> is owned (no hashing at all for <see cref="All"/>).</summary>
    public bool ContainsKey(ReadOnlySpan<byte> key) => _bits is null || Contains(Slot.Of(key));

    /// <inheritdoc />
    public override string ToString() => Description;
}
