using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Hybrid.Client;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// kill -9 of a migration's source or target while it pulls, with real node processes (sync durability) and a
/// cluster client writing throughout. After the killed node restarts: every acknowledged write is readable with its
/// latest value, each range has exactly one owner, the source holds none of the moved keys, and the target's protocol
/// trace (decisions, including its own Crash and Recover) replays through the F# trace checker.
/// </summary>
public sealed class ClusterFaultTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Root = "/hybrid";
    private static readonly string[] s_cores = ["c1", "c2"];
    private readonly TempDirectory _dir = new();
    private readonly Dictionary<string, Process> _nodes = [];
    private IMetadataStore? _store;
    private DurableClusterMetadata? _metadata;
    private ClusterCore? _initial;

    private string MetadataDir => Path.Combine(_dir.Path, "metadata");

    private string TracePath(string node) => Path.Combine(_dir.Path, node + ".trace.ndjson");

    /// <summary>The child role: one cluster node with sync durability, until killed.</summary>
    public static async Task<int> RunNodeAsync(string metadataDir, string dataDir, string name, string trace)
    {
        await using var store = new FileMetadataStore(metadataDir);
        var options = new HybridNodeOptions
        {
            DataDirectory = dataDir,
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Durability = DurabilityMode.Sync,
            MemoryBudgetBytes = 1 << 22,
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 14, CheckpointInterval = TimeSpan.Zero },
        };
        await using ClusterNodeHost host = await ClusterNodeHost.StartAsync(store, Root, name, options, tracePath: trace);
        Console.Out.WriteLine("ready " + name);
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
        return 0;
    }

    public async Task InitializeAsync()
    {
        _store = new FileMetadataStore(MetadataDir);
        _metadata = new DurableClusterMetadata(_store, Root);
        var ranges = DurableClusterMetadata.EvenRanges(4);
        Assert.True(await _metadata.InitializeAsync(["n1", "n2"], s_cores, ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));
        _initial = _metadata.Current;
        await StartAsync("n1");
        await StartAsync("n2");
    }

    public async Task DisposeAsync()
    {
        foreach (Process p in _nodes.Values)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            p.Dispose();
        }
        if (_store is not null)
            await _store.DisposeAsync();
        _dir.Dispose();
    }

    private async Task StartAsync(string name)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { "exec", typeof(ClusterFaultTests).Assembly.Location, "node", MetadataDir, Path.Combine(_dir.Path, name), name, TracePath(name) })
            info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        _nodes[name] = process;
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            lock (log)
                log.AppendLine(e.Data);
            if (e.Data?.StartsWith("ready", StringComparison.Ordinal) == true)
                ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (log)
                log.AppendLine(e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (await Task.WhenAny(ready.Task, process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(60))) != ready.Task)
            throw new InvalidOperationException($"node {name} did not start: {log}");
    }

    private void Kill(string name)
    {
        Process p = _nodes[name];
        p.Kill(entireProcessTree: true); // SIGKILL
        p.WaitForExit();
        p.Dispose();
        _nodes.Remove(name);
    }

    private static byte[] Key(int i) => Encoding.UTF8.GetBytes("key:" + i);

    private async Task<JsonElement> StatusAsync(string node)
    {
        NodeInfo info = (await _metadata!.Typed.ListLiveNodesAsync()).First(n => n.Id == node);
        using var peer = new NetworkPeer(System.Net.IPEndPoint.Parse(info.PeerEndpoint!));
        return JsonDocument.Parse(await peer.ControlAsync("{\"op\":\"status\"}")).RootElement.Clone();
    }

    private async Task WaitAsync(Func<Task<bool>> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("timed out waiting for " + what);
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData("n2")] // the target
    [InlineData("n1")] // the source
    public async Task A_node_killed_while_the_target_pulls_loses_no_acknowledged_write_and_ownership_stays_single(string victim)
    {
        const int Keys = 4000;
        await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(_metadata!.Typed));
        var acked = new string?[Keys];
        var loads = new List<Task<WriteResult>>();
        for (int i = 0; i < Keys; i++)
            loads.Add(client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(new string('v', 100) + i)));
        foreach (WriteResult w in await Task.WhenAll(loads))
            Assert.Equal(Status.Ok, w.Status);
        for (int i = 0; i < Keys; i++)
            acked[i] = new string('v', 100) + i;

        // Writers through the whole run; a write counts only once acknowledged (its key then must hold it or newer).
        using var stop = new CancellationTokenSource();
        long writes = 0, failed = 0;
        async Task Writer(int lane)
        {
            for (int round = 0; !stop.IsCancellationRequested; round++)
            {
                int i = (round * 4 + lane) % Keys;
                string value = $"w{lane}-{round}";
                try
                {
                    if ((await client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(value))).Status == Status.Ok)
                    {
                        acked[i] = value;
                        Interlocked.Increment(ref writes);
                    }
                }
                catch (HybridConnectionException)
                {
                    Interlocked.Increment(ref failed); // not acknowledged: no promise
                }
            }
        }
        Task[] writers = [.. Enumerable.Range(0, 4).Select(l => Task.Run(() => Writer(l)))];

        // Throttled pulls keep the migration in Pulling long enough to kill a node in the middle of it.
        NodeInfo target = (await _metadata.Typed.ListLiveNodesAsync()).First(n => n.Id == "n2");
        using (var peer = new NetworkPeer(System.Net.IPEndPoint.Parse(target.PeerEndpoint!)))
            await peer.ControlAsync("{\"op\":\"migrate\",\"ranges\":[\"r1\",\"r2\"],\"maxBytesPerSecond\":60000}");
        await WaitAsync(async () => _metadata.Current.Phase("r1") == "Pulling" && (await StatusAsync("n2")).GetProperty("records").GetInt64() > 100,
            "the target to pull", TimeSpan.FromSeconds(60));
        output.WriteLine($"killing {victim} in phase {_metadata.Current.Phase("r1")}");
        Kill(victim);
        await Task.Delay(500);
        await StartAsync(victim);
        try
        {
            await WaitAsync(() => Task.FromResult(_metadata.Current.Phase("r1") == "" && _metadata.Current.Phase("r2") == ""),
                "the migration to finish", TimeSpan.FromSeconds(120));
        }
        catch (TimeoutException)
        {
            output.WriteLine($"phases r1 {_metadata.Current.Phase("r1")}, r2 {_metadata.Current.Phase("r2")}; target status: {await StatusAsync("n2")}");
            throw;
        }
        await Task.Delay(300);
        await stop.CancelAsync();
        await Task.WhenAll(writers);
        output.WriteLine($"{writes} acknowledged writes during the run, {failed} failed; target: {(await StatusAsync("n2")).GetProperty("steps")}");

        ClusterCore core = _metadata.Current;
        Assert.Equal("n2", core.Owner("r1"));
        Assert.Equal("n2", core.Owner("r2"));
        Assert.Equal("n1", core.Owner("r3"));
        foreach (string r in new[] { "r1", "r2", "r3", "r4" })
        {
            int owners = new[] { "n1", "n2" }.Count(n => core.OwnedRanges(n, core.View(n)).Contains(r));
            Assert.Equal(1, owners);
        }
        for (int i = 0; i < Keys; i++)
        {
            GetResult got = await client.GetAsync(1, Key(i));
            Assert.Equal(acked[i], got.Value is null ? null : Encoding.UTF8.GetString(got.Value));
        }
        // The source no longer serves the moved ranges: a plain session in n1's current view (no routing map) is
        // refused with NotOwner for their keys, and still served for the range n1 kept.
        NodeInfo n1 = (await _metadata.Typed.ListLiveNodesAsync()).First(n => n.Id == "n1");
        await using HybridSession atSource = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = System.Net.IPEndPoint.Parse(n1.Endpoint), MaxResends = 0 });
        int servedAtSource = 0, kept = 0;
        for (int i = 0; i < Keys; i += 7)
        {
            if (core.Owner(RangeOf(i)) != "n2")
            {
                Assert.Equal(acked[i], Encoding.UTF8.GetString((await atSource.GetAsync(1, Key(i))).Value!));
                kept++;
                continue;
            }
            try
            {
                await atSource.GetAsync(1, Key(i));
                servedAtSource++;
            }
            catch (HybridProtocolException e) when (e.Status == Status.NotOwner)
            {
            }
        }
        Assert.Equal(0, servedAtSource);
        Assert.True(kept > 0);

        // The target ran every decision (its own Crash/Recover included): its trace replays through the checker.
        List<string> lines = [_initial!.InitTraceLine, .. File.ReadAllLines(TracePath("n2"))
            .Where(l => l.Length > 0 && !l.Contains("\"event\":\"BackgroundPull\"") && !l.Contains("\"event\":\"PriorityPull\""))];
        TraceReport report = MigrationTrace.Check(lines);
        Assert.True(report.Accepted, $"{report.Verdict} at line {report.Line}: {report.Message}");
        Assert.Equal(lines.Count, report.LinesChecked);
        if (victim == "n2")
            Assert.Contains(lines, l => l.Contains("\"event\":\"Recover\""));
        // What was checked, for 'hybrid trace check' and the committed examples in traces/node/.
        File.WriteAllLines(Path.Combine(Path.GetTempPath(), $"hybrid-fault-{victim}.trace.ndjson"), lines);
    }

    private string RangeOf(int i)
    {
        int slot = ClusterSlot.Of(Key(i));
        return _metadata!.Log.Ranges.First(r => r.Value.Contains(slot)).Key;
    }
}
