using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// The RESP slot map of a node in a cluster: which node serves each of the 16384 slots, replaced as a whole when the
/// cluster layer learns of an ownership change (<see cref="Update"/>). Readers (every worker, per key in cluster
/// mode) see one immutable snapshot, without locks; a key of a slot served elsewhere gets <c>-MOVED</c>, which is
/// how <c>redis-cli -c</c> and cluster-aware clients follow a migration.
/// </summary>
public sealed class ClusterSlotMap : IRespSlotMap
{
    private Snapshot _snapshot;

    /// <summary>Creates the map of node <paramref name="myNodeId"/> (40 hex characters, as Redis Cluster prints ids).</summary>
    public ClusterSlotMap(string myNodeId, IReadOnlyList<RespSlotRange> ranges)
    {
        MyNodeId = myNodeId;
        _snapshot = Snapshot.Of(myNodeId, ranges);
    }

    /// <inheritdoc />
    public string MyNodeId { get; }

    /// <inheritdoc />
    public bool OwnsAllSlots => Volatile.Read(ref _snapshot).OwnsAll;

    /// <inheritdoc />
    public IReadOnlyList<RespSlotRange> Ranges => Volatile.Read(ref _snapshot).Ranges;

    /// <inheritdoc />
    public string? RedirectFor(int slot) => Volatile.Read(ref _snapshot).Redirects[slot];

    /// <summary>
    /// Replaces the whole map. Ranges may not overlap; slots no range names are treated as served here (a node never
    /// redirects into the void). Safe to call while workers read.
    /// </summary>
    public void Update(IReadOnlyList<RespSlotRange> ranges) => Volatile.Write(ref _snapshot, Snapshot.Of(MyNodeId, ranges));

    private sealed class Snapshot(RespSlotRange[] ranges, string?[] redirects, bool ownsAll)
    {
        public RespSlotRange[] Ranges { get; } = ranges;

        public string?[] Redirects { get; } = redirects;

        public bool OwnsAll { get; } = ownsAll;

        public static Snapshot Of(string myNodeId, IReadOnlyList<RespSlotRange> ranges)
        {
            var sorted = ranges.OrderBy(r => r.Start).ToArray();
            var redirects = new string?[Slot.Count];
            var owner = new bool[Slot.Count];
            foreach (var r in sorted)
            {
                if (r.Start < 0 || r.End >= Slot.Count || r.Start > r.End)
                    throw new ArgumentOutOfRangeException(nameof(ranges), $"slot range {r.Start}-{r.End} is outside 0-{Slot.Count - 1}");
                string? target = r.NodeId == myNodeId ? null : $"{r.Host}:{r.Port}";
                for (int s = r.Start; s <= r.End; s++)
                {
                    if (owner[s])
                        throw new ArgumentException($"slot {s} is in two ranges", nameof(ranges));
                    owner[s] = true;
                    redirects[s] = target;
                }
            }
            return new Snapshot(sorted, redirects, Array.TrueForAll(redirects, r => r is null));
        }
    }
}
