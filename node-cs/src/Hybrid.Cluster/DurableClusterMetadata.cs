using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;

namespace Hybrid.Cluster;

/// <summary>The cluster's fixed configuration and every decision accepted so far, in order (<c>&lt;root&gt;/core</c>).</summary>
public sealed record DecisionLog
{
    /// <summary>Node names.</summary>
    [JsonPropertyName("nodes")]
    public ImmutableArray<string> Nodes { get; init; } = [];

    /// <summary>Core names (every node has these).</summary>
    [JsonPropertyName("cores")]
    public ImmutableArray<string> Cores { get; init; } = [];

    /// <summary>The slots of each range.</summary>
    [JsonPropertyName("ranges")]
    public ImmutableSortedDictionary<string, SlotRange> Ranges { get; init; } = ImmutableSortedDictionary<string, SlotRange>.Empty;

    /// <summary>The first owner of each range.</summary>
    [JsonPropertyName("initialOwner")]
    public ImmutableSortedDictionary<string, string> InitialOwner { get; init; } = ImmutableSortedDictionary<string, string>.Empty;

    /// <summary>The accepted decisions, oldest first.</summary>
    [JsonPropertyName("decisions")]
    public ImmutableList<ClusterDecision> Decisions { get; init; } = [];
}

/// <summary>
/// <see cref="IClusterMetadata"/> kept in an <see cref="IMetadataStore"/> (the file store by default, etcd for real
/// clusters), shared by every node process and tool. The durable truth is the <see cref="DecisionLog"/>: the
/// cluster's configuration plus every accepted decision; the current <see cref="ClusterCore"/> is rebuilt by replaying
/// it through the F# core (incrementally: only decisions not seen yet). Each new decision is appended by one
/// transaction that compares the log's revision, and the same transaction rewrites the <see cref="ClusterState"/>
/// document (<c>&lt;root&gt;/state</c>) that clients and <c>hybrid cluster status</c> read.
/// </summary>
public sealed class DurableClusterMetadata : IClusterMetadata
{
    private static readonly JsonSerializerOptions s_json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
    private readonly IMetadataStore _store;
    private readonly Lock _lock = new();
    private (ClusterCore Core, DecisionLog Log, long Revision)? _cached;

    /// <summary>Uses the cluster under <paramref name="root"/> in <paramref name="store"/> (which the caller keeps owning).</summary>
    public DurableClusterMetadata(IMetadataStore store, string root = "/hybrid")
    {
        _store = store;
        LogKey = root + "/core";
        Typed = new ClusterMetadata(store, root);
    }

    /// <summary>The key of the decision log.</summary>
    public string LogKey { get; }

    /// <summary>The typed layer on the same store and root (state document, node registrations).</summary>
    public ClusterMetadata Typed { get; }

    /// <summary>
    /// Creates the cluster if it does not exist yet: <paramref name="nodes"/> with <paramref name="cores"/> each,
    /// <paramref name="ranges"/> first owned as <paramref name="owner"/> says. False when a cluster already exists there.
    /// </summary>
    public async Task<bool> InitializeAsync(IReadOnlyList<string> nodes, IReadOnlyList<string> cores,
        IReadOnlyDictionary<string, SlotRange> ranges, IReadOnlyDictionary<string, string> owner, CancellationToken cancellationToken = default)
    {
        var log = new DecisionLog
        {
            Nodes = [.. nodes],
            Cores = [.. cores],
            Ranges = ranges.ToImmutableSortedDictionary(),
            InitialOwner = owner.ToImmutableSortedDictionary(),
        };
        ClusterCore core = Create(log);
        TxnResult result = await _store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put(LogKey, MetadataRevision.Absent, JsonSerializer.SerializeToUtf8Bytes(log, s_json)),
            MetadataOp.Put(Typed.StateKey, MetadataRevision.Any, JsonSerializer.SerializeToUtf8Bytes(StateOf(core, log), s_json)),
        ], cancellationToken).ConfigureAwait(false);
        return result.Succeeded;
    }

    /// <summary>
    /// <paramref name="count"/> ranges "r1".."rN" of equal size covering every slot, in slot order (the unit
    /// <c>hybrid migrate --slots</c> moves). <paramref name="count"/> must divide 16384.
    /// </summary>
    public static IReadOnlyDictionary<string, SlotRange> EvenRanges(int count)
    {
        if (count < 1 || SlotRange.SlotCount % count != 0)
            throw new ArgumentOutOfRangeException(nameof(count), count, "the number of ranges must divide 16384");
        int size = SlotRange.SlotCount / count;
        return Enumerable.Range(0, count).ToDictionary(i => $"r{i + 1}", i => new SlotRange(i * size, (i * size) + size - 1));
    }

    /// <summary>The decision log as stored now (null when the cluster was never initialized).</summary>
    public DecisionLog Log => Load().Log;

    /// <summary>The ranges of the cluster in the node's slot type.</summary>
    public IReadOnlyDictionary<string, Node.Cluster.SlotRange> Ranges =>
        Log.Ranges.ToDictionary(r => r.Key, r => new Node.Cluster.SlotRange(r.Value.First, r.Value.Last));

    /// <inheritdoc />
    public ClusterCore Current => Load().Core;

    /// <inheritdoc />
    public bool TryReplace(ClusterCore expected, IReadOnlyList<ClusterDecision> decisions, ClusterCore next)
    {
        var (core, log, revision) = Load();
        if (!ReferenceEquals(core, expected))
            return false;
        DecisionLog appended = log with { Decisions = log.Decisions.AddRange(decisions) };
        TxnResult result = _store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put(LogKey, revision, JsonSerializer.SerializeToUtf8Bytes(appended, s_json)),
            MetadataOp.Put(Typed.StateKey, MetadataRevision.Any, JsonSerializer.SerializeToUtf8Bytes(StateOf(next, appended), s_json)),
        ]).GetAwaiter().GetResult();
        if (!result.Succeeded)
            return false;
        lock (_lock)
            _cached = (next, appended, result.Revision);
        return true;
    }

    /// <summary>Reads the log and brings the cached core up to it, replaying only decisions not applied yet.</summary>
    private (ClusterCore Core, DecisionLog Log, long Revision) Load()
    {
        MetadataEntry entry = _store.GetAsync(LogKey).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException($"no cluster at {LogKey}: run 'hybrid cluster start' (or initialize it) first");
        lock (_lock)
        {
            if (_cached is { } c && c.Revision == entry.Revision)
                return c;
            DecisionLog log = JsonSerializer.Deserialize<DecisionLog>(entry.Value.Span, s_json) ?? throw new InvalidDataException("null decision log");
            ClusterCore core;
            int from;
            if (_cached is { } old && old.Log.Decisions.Count <= log.Decisions.Count
                && old.Log.Decisions.SequenceEqual(log.Decisions.Take(old.Log.Decisions.Count)))
            {
                (core, from) = (old.Core, old.Log.Decisions.Count);
            }
            else
            {
                (core, from) = (Create(log), 0);
            }
            for (int i = from; i < log.Decisions.Count; i++)
            {
                DecisionResult r = log.Decisions[i].ApplyTo(core);
                if (!r.Accepted)
                    throw new InvalidDataException($"stored decision {i} ({log.Decisions[i]}) is refused on replay: {r.Reason}");
                core = r.Core;
            }
            _cached = (core, log, entry.Revision);
            return _cached.Value;
        }
    }

    private static ClusterCore Create(DecisionLog log) => ClusterCore.Create([.. log.Nodes], [.. log.Cores], log.InitialOwner);

    /// <summary>The state document of <paramref name="core"/>: owners, views, histories from the core; who moves what from the log.</summary>
    public static ClusterState StateOf(ClusterCore core, DecisionLog log)
    {
        var handoff = ImmutableSortedDictionary.CreateBuilder<string, Handoff>();
        var mig = ImmutableSortedDictionary.CreateBuilder<string, RangeMigration>();
        var lineage = ImmutableSortedDictionary.CreateBuilder<string, Lineage>();
        var begun = new Dictionary<string, (string Src, string Tgt, long Floor)>();
        ClusterCore replay = Create(log);
        foreach (ClusterDecision d in log.Decisions)
        {
            if (d.Kind == nameof(ClusterCore.BeginMigration))
                begun[d.Range!] = (replay.Owner(d.Range!), d.Node!, 0);
            else if (d.Kind == nameof(ClusterCore.Prepare) && begun.TryGetValue(d.Range!, out var b))
                begun[d.Range!] = b with { Floor = d.Number };
            replay = d.ApplyTo(replay).Core;
        }
        foreach (string r in log.Ranges.Keys)
        {
            string phase = core.Phase(r);
            if (phase.Length == 0 || !begun.TryGetValue(r, out var m))
                continue;
            var p = Enum.Parse<MigrationPhase>(phase);
            mig[r] = new RangeMigration(m.Src, m.Tgt, p, m.Floor);
            if (p is MigrationPhase.Locking or MigrationPhase.Prepared)
                handoff[r] = new Handoff(m.Src, m.Tgt, core.View(m.Src));
            else
                lineage[r] = new Lineage(m.Src, m.Tgt);
        }
        return new ClusterState
        {
            Ranges = log.Ranges,
            Owner = log.Ranges.Keys.ToImmutableSortedDictionary(r => r, core.Owner),
            View = log.Nodes.ToImmutableSortedDictionary(n => n, core.View),
            Hist = log.Nodes.ToImmutableSortedDictionary(n => n, n => Enumerable.Range(1, core.View(n))
                .Select(v => core.OwnedRanges(n, v).ToImmutableSortedSet()).ToImmutableList()),
            Handoff = handoff.ToImmutable(),
            Mig = mig.ToImmutable(),
            Lineage = lineage.ToImmutable(),
        };
    }
}
