using System.Net;
using System.Text;
using System.Text.Json;
using Hybrid.Client;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Base of the fault tests with real node processes: a two-node cluster (n1 owns r1..r4, n2 nothing) on a metadata
/// store, each node a child process (<see cref="NodeProcess"/>, role <c>node-at</c>) that a test can SIGKILL and start
/// again on its data directory, plus the peer-port control calls and the trace check the tests share.
/// </summary>
public abstract class ClusterProcessTests : IAsyncLifetime
{
    /// <summary>The metadata root of the cluster.</summary>
    protected const string Root = "/hybrid";

    private readonly Dictionary<string, NodeProcess> _nodes = [];
    private IMetadataStore? _store;

    /// <summary>Scratch space: node data, traces, metadata.</summary>
    protected TempDirectory Dir { get; } = new();

    /// <summary>The decisions, read by the test process.</summary>
    protected DurableClusterMetadata Metadata { get; private set; } = null!;

    /// <summary>The state the cluster was created in (its trace's Init line).</summary>
    protected ClusterCore Initial { get; private set; } = null!;

    /// <summary>The metadata store as the children name it (<c>file:DIR</c> or <c>etcd:URL</c>).</summary>
    protected abstract string StoreSpec { get; }

    /// <summary>A network namespace the nodes run in (null: this one).</summary>
    protected virtual string? NetworkNamespace => null;

    /// <summary>Arguments appended to every node's <c>node-at</c> role (e.g. its bind address).</summary>
    protected virtual IEnumerable<string> ExtraNodeArgs => [];

    /// <summary>Arguments appended to node <paramref name="node"/>'s <c>node-at</c> role (default: <see cref="ExtraNodeArgs"/>).</summary>
    protected virtual IEnumerable<string> ExtraNodeArgsFor(string node) => ExtraNodeArgs;

    /// <summary>The test's own instance of the cluster's metadata store.</summary>
    protected IMetadataStore Store => _store ?? throw new InvalidOperationException("the cluster is not created yet");

    /// <summary>Tenants the cluster creates (in its metadata, with cluster-wide ids) before its nodes start.</summary>
    protected virtual IEnumerable<(string Name, byte[] Secret)> Tenants => [];

    /// <summary>Prepares what the store needs before the cluster is created (e.g. starts etcd).</summary>
    protected virtual Task PrepareAsync() => Task.CompletedTask;

    /// <summary>Cleans up what <see cref="PrepareAsync"/> made.</summary>
    protected virtual Task CleanUpAsync() => Task.CompletedTask;

    /// <summary>Where node <paramref name="node"/> writes its protocol trace.</summary>
    protected string TracePath(string node) => Path.Combine(Dir.Path, node + ".trace.ndjson");

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        await PrepareAsync();
        _store = NodeProcess.OpenStore(StoreSpec);
        Metadata = new DurableClusterMetadata(_store, Root);
        var ranges = DurableClusterMetadata.EvenRanges(4);
        Assert.True(await Metadata.InitializeAsync(["n1", "n2"], ["c1", "c2"], ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));
        Initial = Metadata.Current;
        foreach ((string name, byte[] secret) in Tenants)
            await new ClusterTenants(_store, Root).CreateAsync(name, secret);
        await StartNodeAsync("n1");
        await StartNodeAsync("n2");
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        foreach (NodeProcess p in _nodes.Values)
            await p.DisposeAsync();
        if (_store is not null)
            await _store.DisposeAsync();
        await CleanUpAsync();
        Dir.Dispose();
    }

    /// <summary>Starts node <paramref name="name"/> in its own process (again, after a kill: same data directory).</summary>
    protected async Task StartNodeAsync(string name) =>
        _nodes[name] = await NodeProcess.StartAsync(["node-at", StoreSpec, Path.Combine(Dir.Path, name), name, TracePath(name), .. ExtraNodeArgsFor(name)], NetworkNamespace);

    /// <summary>The running process of node <paramref name="name"/>.</summary>
    private protected NodeProcess NodeOf(string name) => _nodes[name];

    /// <summary>SIGKILL of node <paramref name="name"/>.</summary>
    protected async Task KillNodeAsync(string name)
    {
        await _nodes[name].DisposeAsync();
        _nodes.Remove(name);
    }

    /// <summary>A control request on <paramref name="node"/>'s peer port (its registration gives the address).</summary>
    protected async Task<JsonElement> ControlAsync(string node, string json)
    {
        NodeInfo info = (await Metadata.Typed.ListLiveNodesAsync()).First(n => n.Id == node);
        using var peer = new NetworkPeer(System.Net.IPEndPoint.Parse(info.PeerEndpoint!), await Metadata.PeerKeyAsync());
        return JsonDocument.Parse(await peer.ControlAsync(json)).RootElement.Clone();
    }

    /// <summary>Polls <paramref name="condition"/> every 50 ms until it holds; throws after <paramref name="timeout"/>.</summary>
    protected static async Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("timed out waiting for " + what);
            await Task.Delay(50);
        }
    }

    /// <summary>Asks n2 to move r1 and r2 here, with pulls throttled so a test can act while it pulls.</summary>
    protected Task StartMigrationAsync(long maxBytesPerSecond = 60000) =>
        ControlAsync("n2", $"{{\"op\":\"migrate\",\"ranges\":[\"r1\",\"r2\"],\"maxBytesPerSecond\":{maxBytesPerSecond}}}");

    /// <summary>Waits until r1's migration pulls and the target has more than 100 records.</summary>
    protected async Task WaitForPullingAsync()
    {
        try
        {
            await WaitAsync(async () => Metadata.Current.Phase("r1") == "Pulling" && (await ControlAsync("n2", "{\"op\":\"status\"}")).GetProperty("records").GetInt64() > 100,
                "the target to pull", TimeSpan.FromSeconds(90));
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}: r1 is in phase '{Metadata.Current.Phase("r1")}', target status {await ControlAsync("n2", "{\"op\":\"status\"}")}", e);
        }
    }

    /// <summary>
    /// Checks the end state: no migration left, r1 and r2 owned by n2, r3 and r4 by n1, each range owned in exactly one
    /// node's current view.
    /// </summary>
    protected void AssertMigrated()
    {
        ClusterCore core = Metadata.Current;
        string[] ranges = ["r1", "r2", "r3", "r4"];
        Assert.Equal(["", "", "", ""], ranges.Select(core.Phase));
        Assert.Equal(["n2", "n2", "n1", "n1"], ranges.Select(core.Owner));
        foreach (string r in ranges)
            Assert.Equal(1, new[] { "n1", "n2" }.Count(n => core.OwnedRanges(n, core.View(n)).Contains(r)));
    }

    /// <summary>
    /// Asserts that every key holds its last acknowledged write. If not, fails with every such key, what each live node
    /// holds for the first few (asked directly, without routing), which node owns its range, and where the nodes'
    /// traces were kept for a post-mortem (the scratch directory goes with the test).
    /// </summary>
    private protected async Task AssertNoLostWritesAsync(AckedWrites load, HybridClientOptions? template = null)
    {
        List<string> wrong = await load.MismatchesAsync();
        if (wrong.Count == 0)
            return;
        var details = new List<string>();
        ClusterCore core = Metadata.Current;
        foreach (int i in load.MismatchedKeys.Take(5))
            details.Add($"key:{i} is in slot {ClusterSlot.Of(AckedWrites.Key(i))}, range {AckedRangeOf(i)} owned by {core.Owner(AckedRangeOf(i))}");
        foreach (NodeInfo node in await Metadata.Typed.ListLiveNodesAsync())
        {
            var options = (template ?? new HybridClientOptions()) with { EndPoint = IPEndPoint.Parse(node.Endpoint), MaxResends = 0 };
            await using HybridSession session = await HybridSession.ConnectAsync(options);
            foreach (int i in load.MismatchedKeys.Take(5))
            {
                try
                {
                    GetResult got = await session.GetAsync(1, AckedWrites.Key(i));
                    details.Add($"{node.Id} key:{i}: {got.Status}, version {got.Version}, '{(got.Value is null ? null : Encoding.UTF8.GetString(got.Value))}'");
                }
                catch (HybridProtocolException e)
                {
                    details.Add($"{node.Id} key:{i}: {e.Status}");
                }
            }
        }
        string kept = Path.Combine(Path.GetTempPath(), "hyb-lost-write-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(kept);
        foreach (string trace in Directory.GetFiles(Dir.Path, "*.trace.ndjson"))
            File.Copy(trace, Path.Combine(kept, Path.GetFileName(trace)));
        Assert.Fail($"{wrong.Count} keys do not hold their last acknowledged write:\n{string.Join("\n", wrong)}\n" +
                    $"{string.Join("\n", details)}\ntraces kept in {kept}");
    }

    /// <summary>
    /// Starts <paramref name="load"/> and an unthrottled migration whose decider (n2) is held for
    /// <see cref="StallingMetadataStore.Hold"/> right after it published its first <paramref name="decision"/>; returns
    /// then, with the phases of r1 and r2 as text. A node started later is not held.
    /// </summary>
    private protected async Task<string> StartMigrationHeldAfterAsync(string decision, AckedWrites load)
    {
        string stall = Path.Combine(Dir.Path, "n2", NodeProcess.StallFileName);
        await File.WriteAllTextAsync(stall, decision);
        load.Start(lanes: 4);
        await StartMigrationAsync(maxBytesPerSecond: 0);
        await WaitAsync(() => Task.FromResult(NodeOf("n2").Log.Contains("stalled after " + decision, StringComparison.Ordinal)),
            $"n2 to publish {decision}", TimeSpan.FromSeconds(90));
        File.Delete(stall);
        return $"r1 {Metadata.Current.Phase("r1")}, r2 {Metadata.Current.Phase("r2")}";
    }

    /// <summary>The range whose slots hold key <paramref name="i"/> of <see cref="AckedWrites"/>.</summary>
    protected string AckedRangeOf(int i)
    {
        int slot = ClusterSlot.Of(AckedWrites.Key(i));
        return Metadata.Log.Ranges.First(r => r.Value.Contains(slot)).Key;
    }

    /// <summary>The decision lines of <paramref name="node"/>'s trace after the Init line; asserts they replay through the checker.</summary>
    protected List<string> AssertTraceConforms(string node)
    {
        List<string> lines = [.. File.ReadAllLines(TracePath(node)).Where(l => l.Length > 0 && !TraceRepair.IsDataPlane(l))];
        // The node began its trace with the cluster's Init line (so 'hybrid trace check --decisions-only' replays the file as it is).
        Assert.Equal(Initial.InitTraceLine, lines[0]);
        TraceReport report = MigrationTrace.Check(lines);
        Assert.True(report.Accepted, $"{report.Verdict} at line {report.Line}: {report.Message}");
        Assert.Equal(lines.Count, report.LinesChecked);
        return lines;
    }
}
