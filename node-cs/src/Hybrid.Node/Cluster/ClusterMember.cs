using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hybrid.Core.Interop;
using Hybrid.Node.Hosting;

namespace Hybrid.Node.Cluster;

/// <summary>
/// One node of a cluster: a <see cref="HybridNode"/> whose store is a <see cref="MigratingStore"/>, its
/// <see cref="PeerServer"/> (pulls, views, control) and the migration coordinator it runs when it is a migration's
/// target (Rocksteady is target-driven: the target asks the source for everything). The node starts in the view the
/// metadata records for it, and every view change after that comes from a decision's BumpView.
/// </summary>
public sealed class ClusterMember : IAsyncDisposable
{
    private readonly IClusterMetadata _metadata;
    private readonly IReadOnlyDictionary<string, SlotRange> _ranges;
    private readonly Func<string, EndPoint> _peerOf;
    private readonly MigrationTrace _trace;
    private readonly IPEndPoint _peerBind;
    private readonly byte[] _peerKey;
    private readonly Lock _lock = new();
    private MigrationStatus _status = new();
    private PeerServer? _peer;
    private MigrationSource? _source;
    private Task _migration = Task.CompletedTask;
    private readonly Resp.ClusterSlotMap? _respMap;
    private RespSlotFeed? _respFeed;

    /// <param name="name">The node's name in the decision state.</param>
    /// <param name="cores">The decision state's core names (one per worker).</param>
    /// <param name="options">The node's options (Workers = cores.Count; StoreFactory is wrapped).</param>
    /// <param name="metadata">Where the decisions live.</param>
    /// <param name="ranges">The cluster's ranges by name.</param>
    /// <param name="peerOf">The peer endpoint of a node, by name.</param>
    /// <param name="peerBind">Where this node's peer port listens (port 0 = ephemeral).</param>
    /// <param name="peerKey">The cluster's peer key: this node's peer port demands it, and it proves it to other nodes'.</param>
    /// <param name="trace">Where this node writes the steps it carries out.</param>
    public ClusterMember(string name, IReadOnlyList<string> cores, HybridNodeOptions options, IClusterMetadata metadata,
        IReadOnlyDictionary<string, SlotRange> ranges, Func<string, EndPoint> peerOf, IPEndPoint peerBind, byte[] peerKey, MigrationTrace trace)
    {
        PeerHandshake.CheckKey(peerKey);
        _peerKey = peerKey;
        Name = name;
        Cores = cores;
        _metadata = metadata;
        _ranges = ranges;
        _peerOf = peerOf;
        _peerBind = peerBind;
        _trace = trace;
        Func<Storage.StoreOptions, Storage.IKvStore> open = options.StoreFactory ?? Storage.FasterKvStore.Open;
        _respMap = options.RespPort >= 0 ? new Resp.ClusterSlotMap(RespSlotFeed.NodeId(name), []) : null;
        Node = new HybridNode(options with
        {
            Workers = cores.Count,
            StoreFactory = o => new MigratingStore(open(o)),
            // Nothing is served until the node adopts the view its metadata records (StartAsync), with that view's slots.
            InitialView = 0,
            InitialOwnedSlots = OwnedSlots.None,
            RespSlotMap = _respMap,
        });
    }

    /// <summary>
    /// The RESP endpoint ("host:port") of every running node, by name, for <c>-MOVED</c> redirects and CLUSTER SLOTS
    /// (the cluster layer reads its registrations). Null: the RESP port redirects nowhere and answers <c>-TRYAGAIN</c>
    /// for slots this node does not own.
    /// </summary>
    public Func<CancellationToken, Task<IReadOnlyDictionary<string, string>>>? RespEndpoints { get; init; }

    /// <summary>The node's name.</summary>
    public string Name { get; }

    /// <summary>The decision state's cores of every node.</summary>
    public IReadOnlyList<string> Cores { get; }

    /// <summary>The running node.</summary>
    public HybridNode Node { get; }

    /// <summary>The node's store as the migration sees it.</summary>
    public MigratingStore Store => (MigratingStore)Node.Store;

    /// <summary>Where the peer port listens (after <see cref="StartAsync"/>).</summary>
    public IPEndPoint PeerEndPoint => _peer?.EndPoint ?? throw new InvalidOperationException("not started");

    /// <summary>The peer port (after <see cref="StartAsync"/>): its address and the connections it refused.</summary>
    public PeerServer PeerPort => _peer ?? throw new InvalidOperationException("not started");

    /// <summary>The migration this node runs as target, or ran last.</summary>
    public MigrationStatus Status => Volatile.Read(ref _status);

    /// <summary>
    /// Starts the node, then its peer port, then moves it to the view the metadata records for it. A node that finds
    /// itself the target of an unfinished migration (it crashed during one) first reports that to the core
    /// (<c>Crash</c>, <c>Recover</c>), carries out the StartPulls the recovery returns, and only then adopts its view
    /// (so reads of a range it pulls wait for their pulls), and finishes those migrations in the background.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await Node.StartAsync(cancellationToken).ConfigureAwait(false);
        new Thread(() =>
        {
            BackgroundPriority.Renice(); // safe here: the warm-up never holds the store's epoch protection
            _ = MigrationCoordinator.WarmUp();
        })
        { IsBackground = true, Name = "decision-warmup" }.Start();
        _source = new MigrationSource(Node.Store);
        _peer = new PeerServer(_peerBind, _peerKey, _source, new NodeViewCores(Node.View), Control);
        ClusterCore core = _metadata.Current;
        string[] unfinished = [.. _ranges.Keys.Where(r => core.Phase(r) is "Pulling" or "Pulled" or "Durable" or "Dropped" && core.Owner(r) == Name)];
        // Migrations to this node decided but not yet transferred (it crashed right after BeginMigration or Prepare):
        // nobody else carries them on, and the source may already have stopped serving the range.
        string[] transferring = [.. _ranges.Keys.Where(r => core.Phase(r) is "Locking" or "Prepared" && core.MigrationTarget(r) == Name)];
        if (unfinished.Length > 0 || transferring.Length > 0)
            Recover(core, unfinished, transferring, cancellationToken);
        ClusterCore now = _metadata.Current;
        int view = now.View(Name);
        if ((ulong)view > Node.View.Current)
            Node.View.Advance((ulong)view, NodeViewCores.OwnedSlotsOf(now.OwnedRanges(Name, view).Select(r => _ranges[r])));
        if (_respMap is not null && RespEndpoints is not null)
        {
            _respFeed = new RespSlotFeed(_respMap, _metadata, _ranges, RespEndpoints);
            Node.View.Changed += _respFeed.Poke;
            _respFeed.Start();
        }
    }

    private void Recover(ClusterCore core, string[] unfinished, string[] transferring, CancellationToken cancellationToken)
    {
        var sourceOf = transferring.ToDictionary(r => r, core.MigrationSource);
        var coordinator = new MigrationCoordinator(_metadata, _trace, _ranges) { Decider = Name };
        var target = new MigrationTarget(Node.Store, _trace);
        var jobs = new Dictionary<string, (PullJob Job, string Source)>();
        var peers = new Dictionary<string, NetworkPeer>();
        NetworkPeer PeerOf(string node)
        {
            lock (peers)
                return peers.TryGetValue(node, out NetworkPeer? p) ? p : peers[node] = new NetworkPeer(() => _peerOf(node), _peerKey);
        }
        coordinator.Carry(ClusterDecision.Crash(Name), null);
        coordinator.Carry(ClusterDecision.Recover(Name), e =>
        {
            if (e.Kind == EffectKind.StartPulls && e.Target == Name)
                jobs[e.Range] = (target.StartPulls(e.Range, _ranges[e.Range], PeerOf(e.Source), cancellationToken), e.Source);
        });
        // The floor the transfer raised is logged without waiting for its commit (FasterKvStore.RaiseVersionFloor), so
        // the crash may have lost it. Before this node serves again, raise it once more to each source's floor now (at
        // least the one of the transfer: the source took no write of these ranges since). Until a source answers (or
        // the coordinator's PeerRetryFor passes, and the start fails), the node does not serve.
        foreach (string source in jobs.Values.Select(j => j.Source).Distinct())
        {
            ulong floor = coordinator.RetryAsync(() => PeerOf(source).VersionFloorAsync(cancellationToken).AsTask(), cancellationToken)
                .GetAwaiter().GetResult();
            target.RaiseFloor(floor);
        }
        var status = new MigrationStatus { Ranges = [.. unfinished, .. transferring], Started = DateTime.UtcNow, FirstServed = DateTime.UtcNow };
        status.Live = () => coordinator.ActivePulls;
        status.Timings = () => coordinator.Timings;
        Volatile.Write(ref _status, status);
        var self = new MigrationNode(Name, Cores, new NodeViewCores(Node.View));
        _migration = Task.Run(() => TrackAsync(status, async () =>
        {
            try
            {
                foreach (var (range, (job, source)) in jobs)
                {
                    status.Current = range;
                    PullStats? stats = await coordinator.PullRangeAsync(range, new MigrationNode(source, Cores, PeerOf(source).Views), self, target,
                        PeerOf(source), null, job, stopAndCopy: false, cancellationToken).ConfigureAwait(false);
                    if (stats is not null)
                        status.AddDone([range], [stats]);
                }
                foreach (string range in transferring)
                {
                    status.Current = range;
                    string source = sourceOf[range];
                    PullStats? stats = await coordinator.PullRangeAsync(range, new MigrationNode(source, Cores, PeerOf(source).Views), self, target,
                        PeerOf(source), null, null, stopAndCopy: false, cancellationToken).ConfigureAwait(false);
                    if (stats is not null)
                        status.AddDone([range], [stats]);
                }
                await coordinator.FinishAsync(self, target, [.. unfinished, .. transferring], n => PeerOf(n), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                foreach (NetworkPeer p in peers.Values)
                    p.Dispose();
            }
        }), cancellationToken);
    }

    /// <summary>
    /// Moves <paramref name="rangeNames"/>, one after the other, from their owners to this node; completes when the last
    /// lineage entry is removed. Progress is in <see cref="Status"/>.
    /// </summary>
    /// <remarks><paramref name="stopAndCopy"/> = true runs the stop-and-copy baseline instead of Rocksteady; <paramref name="adaptivePulls"/> = false runs the background pulls at <paramref name="maxBytesPerSecond"/> (or unlimited) instead of adapting them to load (<see cref="PullGovernor"/>).</remarks>
    public Task MigrateHereAsync(IReadOnlyList<string> rangeNames, bool stopAndCopy = false, long maxBytesPerSecond = 0, bool adaptivePulls = true,
        CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_migration.IsCompleted)
                throw new InvalidOperationException("a migration to this node is running");
            var status = new MigrationStatus { Ranges = [.. rangeNames], Started = DateTime.UtcNow };
            Volatile.Write(ref _status, status);
            _migration = Task.Run(() => RunAsync(rangeNames, stopAndCopy, maxBytesPerSecond, adaptivePulls, status, cancellationToken), cancellationToken);
            return _migration;
        }
    }

    /// <summary>Runs <paramref name="body"/>, recording in <paramref name="status"/> when it ended and why it failed.</summary>
    private static async Task TrackAsync(MigrationStatus status, Func<Task> body)
    {
        try
        {
            await body().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            status.Error = e.GetType().Name + ": " + e.Message;
            throw;
        }
        finally
        {
            status.Current = null;
            status.Finished = DateTime.UtcNow;
        }
    }

    private Task RunAsync(IReadOnlyList<string> rangeNames, bool stopAndCopy, long maxBytesPerSecond, bool adaptivePulls, MigrationStatus status,
        CancellationToken cancellationToken) =>
        TrackAsync(status, async () =>
        {
            var coordinator = new MigrationCoordinator(_metadata, _trace, _ranges) { Decider = Name };
            status.Live = () => coordinator.ActivePulls;
            status.Timings = () => coordinator.Timings;
            var self = new MigrationNode(Name, Cores, new NodeViewCores(Node.View));
            var target = new MigrationTarget(Node.Store, _trace) { MaxBytesPerSecond = maxBytesPerSecond, AdaptivePulls = adaptivePulls };
            var peers = new Dictionary<string, NetworkPeer>();
            try
            {
                // Fresh ranges move together per source (one scan of its log); ranges found mid-migration resume alone,
                // from the source their migration names: from TransferOwnership on, a range's owner is the target itself
                // (pulling from the owner, this node, found nothing, and DropSource then dropped the source's copy).
                ClusterCore core = _metadata.Current;
                foreach (var group in rangeNames.Where(r => core.Owner(r) != Name || core.Phase(r).Length > 0).GroupBy(r => (core.MovesFrom(r), core.Phase(r).Length == 0)))
                {
                    string sourceName = group.Key.Item1;
                    if (!peers.TryGetValue(sourceName, out NetworkPeer? peer))
                        peers[sourceName] = peer = new NetworkPeer(() => _peerOf(sourceName), _peerKey);
                    var source = new MigrationNode(sourceName, Cores, peer.Views);
                    status.Current = string.Join(",", group);
                    if (group.Key.Item2)
                    {
                        IReadOnlyList<PullStats> all = await coordinator.MigrateRangesAsync([.. group], source, self, target, peer,
                            _ => status.FirstServed ??= DateTime.UtcNow, stopAndCopy, cancellationToken).ConfigureAwait(false);
                        status.AddDone([.. group], all);
                        continue;
                    }
                    foreach (string range in group)
                    {
                        PullStats? stats = await coordinator.PullRangeAsync(range, source, self, target, peer,
                            _ => status.FirstServed ??= DateTime.UtcNow, null, stopAndCopy, cancellationToken).ConfigureAwait(false);
                        if (stats is not null)
                            status.AddDone([range], [stats]);
                    }
                }
                await coordinator.FinishAsync(self, target, rangeNames, n => peers.TryGetValue(n, out NetworkPeer? p) ? p : peers[n] = new NetworkPeer(() => _peerOf(n), _peerKey),
                    cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                foreach (NetworkPeer p in peers.Values)
                    p.Dispose();
            }
        });

    /// <summary>
    /// Control requests on the peer port: <c>{"op":"migrate","ranges":[...]}</c> starts moving the ranges here;
    /// (<c>"mode":"stop-and-copy"</c> for the baseline, <c>"maxBytesPerSecond"</c> to cap pulls, <c>"pullRate":"max"</c> to turn off their adaptation to load); <c>{"op":"status"}</c> reports the migration's progress; <c>{"op":"peer"}</c> the connections the peer port refused; <c>{"op":"checkpoint"}</c> checkpoints the store.
    /// </summary>
    private string Control(string json)
    {
        JsonNode request = JsonNode.Parse(json) ?? throw new InvalidDataException("empty control request");
        switch ((string?)request["op"])
        {
            case "migrate":
                var ranges = request["ranges"]!.AsArray().Select(r => (string)r!).ToList();
                foreach (string r in ranges)
                {
                    if (!_ranges.ContainsKey(r))
                        throw new ArgumentException("unknown range " + r);
                }
                string pullRate = (string?)request["pullRate"] ?? "adaptive";
                if (pullRate is not ("adaptive" or "max"))
                    throw new ArgumentException($"pullRate must be \"adaptive\" or \"max\", not \"{pullRate}\"");
                _ = MigrateHereAsync(ranges, (string?)request["mode"] == "stop-and-copy", (long?)request["maxBytesPerSecond"] ?? 0,
                    adaptivePulls: pullRate == "adaptive")
                    .ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
                return "{\"started\":true}";
            case "status":
                return Status.ToJson();
            case "peer":
                return JsonSerializer.Serialize(new { refused = PeerPort.Refused, lastRefusal = PeerPort.LastRefusal });
            case "checkpoint":
                long position = Node.Store.CheckpointAsync().AsTask().GetAwaiter().GetResult();
                return JsonSerializer.Serialize(new { position });
            default:
                throw new ArgumentException("unknown control op in " + json);
        }
    }

    /// <summary>Stops the peer port and the node.</summary>
    public async ValueTask DisposeAsync()
    {
        _peer?.Dispose();
        _source?.Dispose();
        if (_respFeed is not null)
            await _respFeed.DisposeAsync().ConfigureAwait(false);
        await Node.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Progress of the migrations a node runs as target (read from any thread).</summary>
public sealed class MigrationStatus
{
    private readonly Lock _lock = new();
    private long _doneRecords, _doneBytes, _doneStale, _doneRestarts;
    private readonly HashSet<PullStats> _counted = [];
    private readonly List<string> _done = [];

    /// <summary>The ranges asked for.</summary>
    public string[] Ranges { get; init; } = [];

    /// <summary>When it started (UTC).</summary>
    public DateTime? Started { get; init; }

    /// <summary>When the target first served a moved range (ownership transferred, pulls started).</summary>
    public DateTime? FirstServed { get; set; }

    /// <summary>When it ended, successfully or not.</summary>
    public DateTime? Finished { get; set; }

    /// <summary>The range being moved now.</summary>
    public string? Current { get; set; }

    /// <summary>The current step's pull jobs (one per contiguous run of its ranges), for their counters.</summary>
    public Func<IReadOnlyList<PullJob>>? Live { get; set; }

    /// <summary>The coordinator's step timings.</summary>
    public Func<IReadOnlyCollection<(string Step, double Milliseconds)>>? Timings { get; set; }

    /// <summary>Why it failed; null when it did not.</summary>
    public string? Error { get; set; }

    internal void AddDone(IReadOnlyList<string> ranges, IReadOnlyList<PullStats> stats)
    {
        lock (_lock)
        {
            _done.AddRange(ranges);
            _doneRecords += stats.Sum(s => s.Records);
            _doneBytes += stats.Sum(s => s.Bytes);
            _doneStale += stats.Sum(s => s.Stale);
            _doneRestarts += stats.Sum(s => s.Restarts);
            _counted.UnionWith(stats);
            Current = null;
        }
    }

    /// <summary>The status as the control reply's JSON.</summary>
    public string ToJson()
    {
        lock (_lock)
        {
            // The coordinator's jobs outlive their step: the finished step's are in the totals already.
            IReadOnlyList<PullJob> jobs = Current is null ? [] : [.. (Live?.Invoke() ?? []).Where(j => !_counted.Contains(j.Stats))];
            PullStats[] live = [.. jobs.Select(j => j.Stats)];
            TimeSpan? failing = live.Max(s => s.SourceFailingFor);
            return JsonSerializer.Serialize(new
            {
                ranges = Ranges,
                done = _done.ToArray(),
                current = Current,
                records = _doneRecords + live.Sum(s => s.Records),
                bytes = _doneBytes + live.Sum(s => s.Bytes),
                // Received records not installed: the target had them already (pulled again after a restart of the
                // pulls) or a newer version (written at the target since the transfer).
                stale = _doneStale + live.Sum(s => s.Stale),
                restarts = _doneRestarts + live.Sum(s => s.Restarts),
                priorityKeys = live.Sum(s => s.PriorityKeys),
                scannedLogBytes = live.Sum(s => s.ScannedLogBytes),
                plannedLogBytes = live.Sum(s => s.PlannedLogBytes),
                sourceFailingSeconds = failing?.TotalSeconds,
                sourceFailure = live.FirstOrDefault(s => s.SourceFailingFor is not null)?.SourceFailure,
                // The current step's pulls are over; it checkpoints the target and drops the source's copy.
                pullsEnded = jobs.Count > 0 && jobs.All(j => j.HasEnded),
                started = Started,
                firstServed = FirstServed,
                finished = Finished,
                error = Error,
                steps = Timings?.Invoke().Select(t => $"{t.Step} {t.Milliseconds:F0}ms").ToArray() ?? [],
            });
        }
    }
}
