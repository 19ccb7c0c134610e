using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
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
    private readonly Lock _lock = new();
    private MigrationStatus _status = new();
    private PeerServer? _peer;
    private MigrationSource? _source;
    private Task _migration = Task.CompletedTask;

    /// <param name="name">The node's name in the decision state.</param>
    /// <param name="cores">The decision state's core names (one per worker).</param>
    /// <param name="options">The node's options (Workers = cores.Count; StoreFactory is wrapped).</param>
    /// <param name="metadata">Where the decisions live.</param>
    /// <param name="ranges">The cluster's ranges by name.</param>
    /// <param name="peerOf">The peer endpoint of a node, by name.</param>
    /// <param name="peerBind">Where this node's peer port listens (port 0 = ephemeral).</param>
    /// <param name="trace">Where this node writes the steps it carries out.</param>
    public ClusterMember(string name, IReadOnlyList<string> cores, HybridNodeOptions options, IClusterMetadata metadata,
        IReadOnlyDictionary<string, SlotRange> ranges, Func<string, EndPoint> peerOf, IPEndPoint peerBind, MigrationTrace trace)
    {
        Name = name;
        Cores = cores;
        _metadata = metadata;
        _ranges = ranges;
        _peerOf = peerOf;
        _peerBind = peerBind;
        _trace = trace;
        Func<Storage.StoreOptions, Storage.IKvStore> open = options.StoreFactory ?? Storage.FasterKvStore.Open;
        Node = new HybridNode(options with
        {
            Workers = cores.Count,
            StoreFactory = o => new MigratingStore(open(o)),
        });
    }

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

    /// <summary>The migration this node runs as target, or ran last.</summary>
    public MigrationStatus Status => Volatile.Read(ref _status);

    /// <summary>Starts the node in the view the metadata records for it, then its peer port.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await Node.StartAsync(cancellationToken).ConfigureAwait(false);
        int view = _metadata.Current.View(Name);
        if ((ulong)view > Node.View.Current)
            Node.View.Advance((ulong)view);
        _source = new MigrationSource(Node.Store);
        _peer = new PeerServer(_peerBind, _source, new NodeViewCores(Node.View), Control);
    }

    /// <summary>
    /// Moves <paramref name="rangeNames"/>, one after the other, from their owners to this node; completes when the last
    /// lineage entry is removed. Progress is in <see cref="Status"/>.
    /// </summary>
    public Task MigrateHereAsync(IReadOnlyList<string> rangeNames, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_migration.IsCompleted)
                throw new InvalidOperationException("a migration to this node is running");
            var status = new MigrationStatus { Ranges = [.. rangeNames], Started = DateTime.UtcNow };
            Volatile.Write(ref _status, status);
            _migration = Task.Run(() => RunAsync(rangeNames, status, cancellationToken), cancellationToken);
            return _migration;
        }
    }

    private async Task RunAsync(IReadOnlyList<string> rangeNames, MigrationStatus status, CancellationToken cancellationToken)
    {
        try
        {
            var coordinator = new MigrationCoordinator(_metadata, _trace, _ranges);
            var self = new MigrationNode(Name, Cores, new NodeViewCores(Node.View));
            var target = new MigrationTarget(Node.Store, _trace);
            foreach (string range in rangeNames)
            {
                string owner = _metadata.Current.Owner(range);
                if (owner == Name)
                    continue;
                using var peer = new NetworkPeer(_peerOf(owner));
                var source = new MigrationNode(owner, Cores, peer.Views);
                status.Current = range;
                status.CurrentStats = null;
                PullStats stats = await coordinator.MigrateAsync(range, source, self, target, peer, job =>
                {
                    status.CurrentStats = job.Stats;
                    status.FirstServed ??= DateTime.UtcNow;
                }, cancellationToken).ConfigureAwait(false);
                status.AddDone(range, stats);
            }
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

    /// <summary>
    /// Control requests on the peer port: <c>{"op":"migrate","ranges":[...]}</c> starts moving the ranges here;
    /// <c>{"op":"status"}</c> reports the migration's progress; <c>{"op":"checkpoint"}</c> checkpoints the store.
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
                _ = MigrateHereAsync(ranges).ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
                return "{\"started\":true}";
            case "status":
                return Status.ToJson();
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
        await Node.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Progress of the migrations a node runs as target (read from any thread).</summary>
public sealed class MigrationStatus
{
    private readonly Lock _lock = new();
    private long _doneRecords, _doneBytes;
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

    /// <summary>The current range's pull counters.</summary>
    public PullStats? CurrentStats { get; set; }

    /// <summary>Why it failed; null when it did not.</summary>
    public string? Error { get; set; }

    internal void AddDone(string range, PullStats stats)
    {
        lock (_lock)
        {
            _done.Add(range);
            _doneRecords += stats.Records;
            _doneBytes += stats.Bytes;
            CurrentStats = null;
        }
    }

    /// <summary>The status as the control reply's JSON.</summary>
    public string ToJson()
    {
        lock (_lock)
        {
            PullStats? s = CurrentStats;
            return JsonSerializer.Serialize(new
            {
                ranges = Ranges,
                done = _done.ToArray(),
                current = Current,
                records = _doneRecords + (s?.Records ?? 0),
                bytes = _doneBytes + (s?.Bytes ?? 0),
                priorityKeys = s?.PriorityKeys ?? 0,
                started = Started,
                firstServed = FirstServed,
                finished = Finished,
                error = Error,
            });
        }
    }
}
