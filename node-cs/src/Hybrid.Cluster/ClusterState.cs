using System.Collections.Immutable;
using System.Text.Json.Serialization;

namespace Hybrid.Cluster;

/// <summary>An inclusive range of Redis-cluster slots (0..16383) that one range id stands for.</summary>
/// <param name="First">The first slot.</param>
/// <param name="Last">The last slot (inclusive).</param>
public sealed record SlotRange(
    [property: JsonPropertyName("first")] int First,
    [property: JsonPropertyName("last")] int Last)
{
    /// <summary>Number of slots in the Redis Cluster keyspace.</summary>
    public const int SlotCount = 16384;

    /// <summary>Whether <paramref name="slot"/> lies in this range.</summary>
    public bool Contains(int slot) => slot >= First && slot <= Last;
}

/// <summary>An ownership change in progress (<c>handoff[r]</c>): the source's view <c>V</c> no longer holds the range.</summary>
public sealed record Handoff(
    [property: JsonPropertyName("src")] string Src,
    [property: JsonPropertyName("tgt")] string Tgt,
    [property: JsonPropertyName("v")] int V);

/// <summary>Migration phases (<c>Phases</c> in Migration.tla), in the order a migration passes them.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MigrationPhase>))]
public enum MigrationPhase
{
    /// <summary>Revoked at the source; waiting for the source's cores to leave the old view.</summary>
    Locking,

    /// <summary>The source reported its version floor.</summary>
    Prepared,

    /// <summary>Ownership moved; the target pulls the records.</summary>
    Pulling,

    /// <summary>Every record has been pulled.</summary>
    Pulled,

    /// <summary>The target's checkpoint covers the range.</summary>
    Durable,

    /// <summary>The source dropped its copy.</summary>
    Dropped,
}

/// <summary>A migration in flight (<c>mig[r]</c>).</summary>
public sealed record RangeMigration(
    [property: JsonPropertyName("src")] string Src,
    [property: JsonPropertyName("tgt")] string Tgt,
    [property: JsonPropertyName("phase")] MigrationPhase Phase,
    [property: JsonPropertyName("srcFloor")] long SrcFloor);

/// <summary>
/// The dependency recorded at transfer (<c>lineage[r]</c>): until removed, the range is recoverable from
/// the source's log plus the target's log from <c>TargetLogPosition</c> on.
/// </summary>
public sealed record Lineage(
    [property: JsonPropertyName("src")] string Src,
    [property: JsonPropertyName("tgt")] string Tgt,
    [property: JsonPropertyName("targetLogPosition")] long TargetLogPosition = 0);

/// <summary>
/// The cluster state document: the metadata variables of spec/MODEL.md (<c>owner</c>, <c>view</c>,
/// <c>hist</c>, <c>handoff</c>, <c>mig</c>, <c>lineage</c>, with the same names in JSON) plus the slot
/// ranges each range id stands for. Stored as one JSON value under one key, so every decision of the F#
/// core (which may change owner, views, history, handoff, migration and lineage together) is published by
/// one compare-and-swap. An absent optional (no handoff, no migration, no lineage) is an absent map entry.
/// </summary>
public sealed record ClusterState
{
    /// <summary>The document with no range and no node.</summary>
    public static ClusterState Empty { get; } = new();

    /// <summary>Slots of each range id.</summary>
    [JsonPropertyName("ranges")]
    public ImmutableSortedDictionary<string, SlotRange> Ranges { get; init; } = ImmutableSortedDictionary<string, SlotRange>.Empty;

    /// <summary>Owner node of each range (<c>owner</c>).</summary>
    [JsonPropertyName("owner")]
    public ImmutableSortedDictionary<string, string> Owner { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>Each node's newest view number (<c>view</c>); views start at 1.</summary>
    [JsonPropertyName("view")]
    public ImmutableSortedDictionary<string, int> View { get; init; } = ImmutableSortedDictionary<string, int>.Empty;

    /// <summary>
    /// <c>hist[n]</c>: element i (from 0) is the set of ranges node n owns in view i + 1, so its length is
    /// <c>view[n]</c>.
    /// </summary>
    [JsonPropertyName("hist")]
    public ImmutableSortedDictionary<string, ImmutableList<ImmutableSortedSet<string>>> Hist { get; init; } =
        ImmutableSortedDictionary<string, ImmutableList<ImmutableSortedSet<string>>>.Empty;

    /// <summary>Ownership changes in progress by range (<c>handoff</c>).</summary>
    [JsonPropertyName("handoff")]
    public ImmutableSortedDictionary<string, Handoff> Handoff { get; init; } = ImmutableSortedDictionary<string, Handoff>.Empty;

    /// <summary>Migrations in flight by range (<c>mig</c>).</summary>
    [JsonPropertyName("mig")]
    public ImmutableSortedDictionary<string, RangeMigration> Mig { get; init; } = ImmutableSortedDictionary<string, RangeMigration>.Empty;

    /// <summary>Lineage entries by range (<c>lineage</c>).</summary>
    [JsonPropertyName("lineage")]
    public ImmutableSortedDictionary<string, Lineage> Lineage { get; init; } = ImmutableSortedDictionary<string, Lineage>.Empty;

    /// <summary>
    /// MODEL.md's Init: every node at view 1 owning exactly the ranges <paramref name="owner"/> gives it,
    /// nothing in progress.
    /// </summary>
    public static ClusterState Initial(
        IReadOnlyDictionary<string, SlotRange> ranges, IReadOnlyDictionary<string, string> owner, IEnumerable<string> nodes)
    {
        var nodeSet = nodes.ToImmutableSortedSet();
        foreach (var (range, node) in owner)
        {
            if (!ranges.ContainsKey(range) || !nodeSet.Contains(node))
            {
                throw new ArgumentException($"owner maps unknown range or node: {range} -> {node}", nameof(owner));
            }
        }

        return new ClusterState
        {
            Ranges = ranges.ToImmutableSortedDictionary(),
            Owner = owner.ToImmutableSortedDictionary(),
            View = nodeSet.ToImmutableSortedDictionary(n => n, _ => 1),
            Hist = nodeSet.ToImmutableSortedDictionary(
                n => n,
                n => ImmutableList.Create(owner.Where(o => o.Value == n).Select(o => o.Key).ToImmutableSortedSet())),
        };
    }

    /// <summary>The ranges node <paramref name="node"/> owns in view <paramref name="view"/> (<c>Owned(n, v)</c>).</summary>
    public ImmutableSortedSet<string> Owned(string node, int view) =>
        Hist.TryGetValue(node, out var history) && view >= 1 && view <= history.Count
            ? history[view - 1]
            : ImmutableSortedSet<string>.Empty;

    /// <summary>The range id holding <paramref name="slot"/>, or null when no range covers it.</summary>
    public string? RangeOfSlot(int slot) =>
        Ranges.FirstOrDefault(r => r.Value.Contains(slot)).Key;
}
