using System.Diagnostics;
using System.Text;
using Hybrid.Client;
using Hybrid.Core.Interop;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Two nodes, each with its own store, its own <see cref="FileMetadataStore"/> instance on one shared directory (as
/// two processes would have) and the decisions kept durably; a <see cref="ClusterClient"/> routes through a migration.
/// </summary>
public sealed class DurableClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Root = "/hybrid";
    private static readonly string[] s_cores = ["c1", "c2"];
    private readonly TempDirectory _dir = new();
    private readonly List<IAsyncDisposable> _owned = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            await _owned[i].DisposeAsync();
        _dir.Dispose();
    }

    private async Task<T> Own<T>(T value) where T : IAsyncDisposable
    {
        await Task.CompletedTask;
        _owned.Add(value);
        return value;
    }

    private IMetadataStore OpenStore() => new FileMetadataStore(Path.Combine(_dir.Path, "metadata"));

    private async Task<ClusterNodeHost> StartNodeAsync(string name)
    {
        var options = new HybridNodeOptions
        {
            DataDirectory = Path.Combine(_dir.Path, name),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            MemoryBudgetBytes = 1 << 20,
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero },
        };
        IMetadataStore store = await Own(OpenStore());
        return await Own(await ClusterNodeHost.StartAsync(store, Root, name, options));
    }

    private static byte[] Key(int i) => Encoding.UTF8.GetBytes("key:" + i);

    [Fact]
    public async Task Decisions_survive_in_the_store_and_a_cluster_client_sees_every_acknowledged_write_through_a_migration()
    {
        IMetadataStore setupStore = await Own(OpenStore());
        var setup = new DurableClusterMetadata(setupStore, Root);
        var ranges = DurableClusterMetadata.EvenRanges(4);
        Assert.True(await setup.InitializeAsync(["n1", "n2"], s_cores, ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));
        Assert.False(await setup.InitializeAsync(["n1", "n2"], s_cores, ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));

        ClusterNodeHost n1 = await StartNodeAsync("n1");
        ClusterNodeHost n2 = await StartNodeAsync("n2");
        var routing = new ClusterRoutingSource(setup.Typed);
        ClusterClient client = await Own(await ClusterClient.ConnectAsync(routing));

        var acked = new Dictionary<int, string>();
        var versions = new Dictionary<int, (ulong Version, ulong ViewN1, ulong ViewN2, long At)>();
        const int Keys = 2000;
        var loads = new List<Task<WriteResult>>();
        for (int i = 0; i < Keys; i++)
            loads.Add(client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes("v0-" + i)));
        foreach (WriteResult w in await Task.WhenAll(loads))
            Assert.Equal(Status.Ok, w.Status);
        for (int i = 0; i < Keys; i++)
            acked[i] = "v0-" + i;

        // Writers and readers run through the whole migration; every request must succeed.
        using var stop = new CancellationTokenSource();
        int reads = 0, writes = 0;
        async Task Worker(int seed)
        {
            var random = new Random(seed);
            for (int round = 0; !stop.IsCancellationRequested; round++)
            {
                int i = random.Next(Keys);
                if (i % 4 == seed) // each worker owns the keys i % 4 == seed, so its last ack is the latest
                {
                    string value = $"w{seed}-{round}-{i}";
                    WriteResult put = await client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(value));
                    Assert.Equal(Status.Ok, put.Status);
                    lock (acked)
                    {
                        acked[i] = value;
                        versions[i] = (put.Version, n1.Member.Node.View.Current, n2.Member.Node.View.Current, Stopwatch.GetTimestamp());
                    }
                    Interlocked.Increment(ref writes);
                }
                else
                {
                    GetResult got = await client.GetAsync(1, Key(i));
                    Assert.Equal(Status.Ok, got.Status);
                    Interlocked.Increment(ref reads);
                }
            }
        }
        Task[] workers = [.. Enumerable.Range(0, 4).Select(s => Task.Run(() => Worker(s)))];
        await Task.Delay(200);
        long migrationStarted = Stopwatch.GetTimestamp();
        await n2.Member.MigrateHereAsync(["r1", "r2"]);
        await Task.Delay(200);
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        output.WriteLine($"{reads} reads, {writes} writes during the run, {client.Resends} resends; {n2.Member.Status.ToJson()}");
        Assert.Null(n2.Member.Status.Error);

        // A fresh reader of the store rebuilds the same decisions.
        IMetadataStore otherStore = await Own(OpenStore());
        var other = new DurableClusterMetadata(otherStore, Root);
        ClusterCore core = other.Current;
        Assert.Equal("n2", core.Owner("r1"));
        Assert.Equal("n2", core.Owner("r2"));
        Assert.Equal("n1", core.Owner("r3"));
        Assert.Equal("", core.Phase("r1"));
        VersionedClusterState? state = await other.Typed.ReadAsync();
        Assert.NotNull(state);
        Assert.Equal("n2", state.State.Owner["r1"]);
        Assert.Empty(state.State.Mig);
        Assert.Empty(state.State.Lineage);
        Assert.Equal(core.View("n2"), state.State.View["n2"]);
        Assert.Equal((ulong)core.View("n1"), n1.Member.Node.View.Current);

        foreach (var (i, value) in acked)
        {
            GetResult got = await client.GetAsync(1, Key(i));
            string? found = got.Value is null ? null : Encoding.UTF8.GetString(got.Value);
            if (found != value && versions.TryGetValue(i, out var w))
            {
                output.WriteLine($"key {i} slot {Hybrid.Storage.Slot.Of(Key(i))}: acked {value} v{w.Version} (views n1 {w.ViewN1} n2 {w.ViewN2}, " +
                    $"{Stopwatch.GetElapsedTime(migrationStarted, w.At).TotalMilliseconds:F1} ms after the migration began); read {found} v{got.Version}; " +
                    $"n1 store has {Peek(n1, Key(i))}, n2 store has {Peek(n2, Key(i))}; max versions n1 {n1.Member.Node.Store.MaxVersion} n2 {n2.Member.Node.Store.MaxVersion}");
            }
            Assert.Equal(value, found);
        }
        Assert.True(client.Resends > 0, "no request was re-routed: the migration was not observed by the client");
    }

    /// <summary>A node's own record of <paramref name="key"/> (tenant 1, table 1), read from its store directly.</summary>
    private static string Peek(ClusterNodeHost host, byte[] key)
    {
        using var session = host.Member.Node.Store.NewSession();
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        var sink = new PeekSink();
        var r = session.Get(1, 1, key, output, 0);
        if (r.IsPending)
        {
            session.CompletePending(sink, wait: true);
            return sink.Text;
        }
        return r.Status == Hybrid.Storage.StoreStatus.Ok ? $"{Encoding.UTF8.GetString(output.WrittenSpan)} v{r.Version}" : r.Status.ToString();
    }

    private sealed class PeekSink : Hybrid.Storage.ICompletionSink
    {
        public string Text { get; private set; } = "";

        public void OnCompleted(ulong context, in Hybrid.Storage.StoreResult result, ReadOnlySpan<byte> value) =>
            Text = result.Status == Hybrid.Storage.StoreStatus.Ok ? $"{Encoding.UTF8.GetString(value)} v{result.Version}" : result.Status.ToString();
    }

    [Fact]
    public void The_client_computes_the_same_slot_as_the_node()
    {
        for (int i = 0; i < 5000; i++)
        {
            byte[] key = Encoding.UTF8.GetBytes(i % 3 == 0 ? $"user:{{{i % 17}}}:{i}" : "key:" + i);
            Assert.Equal(Hybrid.Storage.Slot.Of(key), ClusterSlot.Of(key));
        }
    }
}
