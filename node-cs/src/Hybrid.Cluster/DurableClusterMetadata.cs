using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
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
    private Snapshot? _cached;

    /// <summary>
    /// The log as last read or written, the core it replays to, and who moves what (kept alongside so that a write
    /// costs the new decisions, not a replay of the whole log: a full replay per write made every decision slower as
    /// the log grew, 5 ms at first and 90 ms after 200 decisions).
    /// </summary>
    private sealed record Snapshot(ClusterCore Core, DecisionLog Log, long Revision, ImmutableSortedDictionary<string, Move> Moves);

    /// <summary>A range's latest migration as the log records it: source (owner at BeginMigration), target, Prepare's floor.</summary>
    private readonly record struct Move(string Source, string Target, long Floor);

    /// <summary>Uses the cluster under <paramref name="root"/> in <paramref name="store"/> (which the caller keeps owning).</summary>
    public DurableClusterMetadata(IMetadataStore store, string root = "/hybrid")
    {
        _store = store;
        LogKey = root + "/core";
        PeerKeyKey = root + "/peer-key";
        Typed = new ClusterMetadata(store, root);
    }

    /// <summary>The key of the decision log.</summary>
    public string LogKey { get; }

    /// <summary>The key of the cluster's peer key (base64), which every node's peer port demands (<c>PeerHandshake</c>).</summary>
    public string PeerKeyKey { get; }

    /// <summary>
    /// The cluster's peer key: read, or drawn at random and stored by whichever node or tool asks first (one CAS; a
    /// loser of the race reads the winner's). Whoever can read this store can reach the peer ports, as whoever can
    /// write it can already move ranges: the store is the cluster's root of trust.
    /// </summary>
    public async Task<byte[]> PeerKeyAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (await _store.GetAsync(PeerKeyKey, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                byte[] key = Convert.FromBase64String(Encoding.ASCII.GetString(entry.Value.Span));
                return key.Length == PeerHandshake.KeyBytes
                    ? key
                    : throw new InvalidDataException($"{PeerKeyKey} holds a key of {key.Length} bytes, not {PeerHandshake.KeyBytes}");
            }
            byte[] fresh = RandomNumberGenerator.GetBytes(PeerHandshake.KeyBytes);
            CasResult created = await _store.CompareAndSwapAsync(PeerKeyKey, MetadataRevision.Absent,
                Encoding.ASCII.GetBytes(Convert.ToBase64String(fresh)), cancellationToken: cancellationToken).ConfigureAwait(false);
            if (created.Succeeded)
                return fresh;
        }
    }

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
            MetadataOp.Put(Typed.StateKey, MetadataRevision.Any, JsonSerializer.SerializeToUtf8Bytes(StateOf(core, log, ImmutableSortedDictionary<string, Move>.Empty), s_json)),
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
        Snapshot loaded = Load();
        if (!ReferenceEquals(loaded.Core, expected))
            return false;
        DecisionLog appended = loaded.Log with { Decisions = loaded.Log.Decisions.AddRange(decisions) };
        ImmutableSortedDictionary<string, Move> moves = loaded.Moves;
        ClusterCore before = expected;
        for (int i = 0; i < decisions.Count; i++)
        {
            moves = Track(moves, before, decisions[i]);
            if (i + 1 < decisions.Count)
                before = decisions[i].ApplyTo(before).Core;
        }
        TxnResult result = _store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put(LogKey, loaded.Revision, JsonSerializer.SerializeToUtf8Bytes(appended, s_json)),
            MetadataOp.Put(Typed.StateKey, MetadataRevision.Any, JsonSerializer.SerializeToUtf8Bytes(StateOf(next, appended, moves), s_json)),
        ]).GetAwaiter().GetResult();
        if (!result.Succeeded)
            return false;
        lock (_lock)
            _cached = new Snapshot(next, appended, result.Revision, moves);
        return true;
    }

    /// <summary>Reads the log and brings the cached core up to it, replaying only decisions not applied yet.</summary>
    private Snapshot Load()
    {
        MetadataEntry entry = _store.GetAsync(LogKey).GetAwaiter().GetResult()
            ?? throw new InvalidOperationException($"no cluster at {LogKey}: run 'hybrid cluster start' (or initialize it) first");
        lock (_lock)
        {
            if (_cached is { } c && c.Revision == entry.Revision)
                return c;
            DecisionLog log = JsonSerializer.Deserialize<DecisionLog>(entry.Value.Span, s_json) ?? throw new InvalidDataException("null decision log");
            ClusterCore core;
            ImmutableSortedDictionary<string, Move> moves;
            int from;
            if (_cached is { } old && old.Log.Decisions.Count <= log.Decisions.Count
                && old.Log.Decisions.SequenceEqual(log.Decisions.Take(old.Log.Decisions.Count)))
            {
                (core, moves, from) = (old.Core, old.Moves, old.Log.Decisions.Count);
            }
            else
            {
                (core, moves, from) = (Create(log), ImmutableSortedDictionary<string, Move>.Empty, 0);
            }
            for (int i = from; i < log.Decisions.Count; i++)
            {
                DecisionResult r = log.Decisions[i].ApplyTo(core);
                if (!r.Accepted)
                    throw new InvalidDataException($"stored decision {i} ({log.Decisions[i]}) is refused on replay: {r.Reason}");
                moves = Track(moves, core, log.Decisions[i]);
                core = r.Core;
            }
            _cached = new Snapshot(core, log, entry.Revision, moves);
            return _cached;
        }
    }

    /// <summary>Who moves what after <paramref name="d"/>, applied to <paramref name="before"/>.</summary>
    private static ImmutableSortedDictionary<string, Move> Track(ImmutableSortedDictionary<string, Move> moves, ClusterCore before, ClusterDecision d) => d.Kind switch
    {
        nameof(ClusterCore.BeginMigration) => moves.SetItem(d.Range!, new Move(before.Owner(d.Range!), d.Node!, 0)),
        nameof(ClusterCore.Prepare) when moves.TryGetValue(d.Range!, out Move m) => moves.SetItem(d.Range!, m with { Floor = d.Number }),
        _ => moves,
    };

    internal static ClusterCore Create(DecisionLog log) => ClusterCore.Create([.. log.Nodes], [.. log.Cores], log.InitialOwner);

    /// <summary>The state document of <paramref name="core"/>: owners, views, histories from the core; who moves what from <paramref name="moves"/>.</summary>
    private static ClusterState StateOf(ClusterCore core, DecisionLog log, ImmutableSortedDictionary<string, Move> moves)
    {
        var handoff = ImmutableSortedDictionary.CreateBuilder<string, Handoff>();
        var mig = ImmutableSortedDictionary.CreateBuilder<string, RangeMigration>();
        var lineage = ImmutableSortedDictionary.CreateBuilder<string, Lineage>();
        foreach (string r in log.Ranges.Keys)
        {
            string phase = core.Phase(r);
            if (phase.Length == 0 || !moves.TryGetValue(r, out Move m))
                continue;
            var p = Enum.Parse<MigrationPhase>(phase);
            mig[r] = new RangeMigration(m.Source, m.Target, p, m.Floor);
            if (p is MigrationPhase.Locking or MigrationPhase.Prepared)
                handoff[r] = new Handoff(m.Source, m.Target, core.View(m.Source));
            else
                lineage[r] = new Lineage(m.Source, m.Target);
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
