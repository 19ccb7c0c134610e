using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>An inclusive range of slots [<see cref="Lo"/>, <see cref="Hi"/>]: the unit a migration moves.</summary>
/// <param name="Lo">First slot (0..16383).</param>
/// <param name="Hi">Last slot, at least <paramref name="Lo"/>.</param>
public readonly record struct SlotRange(int Lo, int Hi)
{
    /// <summary>True when <paramref name="slot"/> lies in the range.</summary>
    public bool Contains(int slot) => slot >= Lo && slot <= Hi;

    /// <summary>True when the slot of <paramref name="key"/> lies in the range.</summary>
    public bool ContainsKey(ReadOnlySpan<byte> key) => Contains(Slot.Of(key));
}
