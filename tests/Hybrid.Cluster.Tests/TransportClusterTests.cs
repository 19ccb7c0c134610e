using System.Collections.Concurrent;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Transport;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Views and migration over the shared-memory transport: two in-process nodes listen on shm besides TCP, a
/// <see cref="ClusterClient"/> reaches both over shm (each node's address carried in the routing map by
/// <see cref="TransportRouting"/>), follows a migration of two ranges from one node to the other, and a plain session
/// over shm sees ViewChanged and adopts the node's new view. (DPDK memif cannot run here: EAL never starts inside the
/// test host, and a process's one memif port reaches one peer; the node's memif front end is tested in
/// Hybrid.Node.Tests with child processes.)
/// </summary>
public sealed class TransportClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Root = "/hybrid";
    private static readonly string[] s_cores = ["c1", "c2"];
    private readonly TempDirectory _dir = new();
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly CountingTransport _shm = new(TransportFactory.Create(new TransportOptions { Kind = TransportKind.SharedMemory }));

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            await _owned[i].DisposeAsync();
        _shm.Dispose();
        _dir.Dispose();
    }

    private T Own<T>(T value) where T : IAsyncDisposable
    {
        _owned.Add(value);
        return value;
    }

    private async Task<ClusterNodeHost> StartNodeAsync(string name)
    {
        var options = new HybridNodeOptions
        {
            DataDirectory = Path.Combine(_dir.Path, name),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            MemoryBudgetBytes = 1 << 20,
            Transports = [TransportListenerOptions.FromSpec($"shm:/tmp/hyb-ct-{Guid.NewGuid():N}.sock")],
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero },
        };
        IMetadataStore store = Own(new FileMetadataStore(Path.Combine(_dir.Path, "metadata")));
        return Own(await ClusterNodeHost.StartAsync(store, Root, name, options));
    }

    private static byte[] Key(int i) => Encoding.UTF8.GetBytes("key:" + i);

    /// <summary>A key whose slot lies in <paramref name="range"/>.</summary>
    private static byte[] KeyIn(SlotRange range)
    {
        for (int i = 0; ; i++)
        {
            byte[] key = Encoding.UTF8.GetBytes("probe:" + i);
            int slot = ClusterSlot.Of(key);
            if (slot >= range.First && slot <= range.Last)
                return key;
        }
    }

    [Fact]
    public async Task Shm_ClusterClient_FollowsMigrationBetweenTwoNodes_AndSessionSeesViewChanged()
    {
        IMetadataStore setupStore = Own(new FileMetadataStore(Path.Combine(_dir.Path, "metadata")));
        var setup = new DurableClusterMetadata(setupStore, Root);
        var ranges = DurableClusterMetadata.EvenRanges(4);
        Assert.True(await setup.InitializeAsync(["n1", "n2"], s_cores, ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));
        var nodes = new Dictionary<string, ClusterNodeHost> { ["n1"] = await StartNodeAsync("n1"), ["n2"] = await StartNodeAsync("n2") };
        string AddressOf(string node) => nodes[node].Member.Node.TransportAddressOf("shm");

        var routing = TransportRouting.Over(new ClusterRoutingSource(setup.Typed), (node, _) => AddressOf(node));
        ClusterClient client = Own(await ClusterClient.ConnectAsync(routing, new HybridClientOptions { Transport = _shm }));
        Assert.All(client.Routing.EndPoints.Values, e => Assert.IsType<TransportEndPoint>(e));

        // A plain session over shm to n1, opened before the migration (it learns n1's view in Hello).
        var direct = Own(await HybridSession.ConnectAsync(new HybridClientOptions { Transport = _shm, TransportAddress = AddressOf("n1") }));
        ulong viewBefore = direct.View;
        byte[] stays = KeyIn(ranges["r3"]);
        Assert.Equal(Status.Ok, (await direct.PutAsync(1, stays, "before"u8)).Status);

        const int Keys = 500;
        var acked = new Dictionary<int, string>();
        var loads = new List<Task<WriteResult>>();
        for (int i = 0; i < Keys; i++)
            loads.Add(client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes("v0-" + i)));
        foreach (WriteResult w in await Task.WhenAll(loads))
            Assert.Equal(Status.Ok, w.Status);
        for (int i = 0; i < Keys; i++)
            acked[i] = "v0-" + i;
        Assert.Equal(0, _shm.Dials(AddressOf("n2"))); // n1 owns every range so far

        // Writers and readers run through the migration of r1 and r2 to n2; every request must succeed.
        using var stop = new CancellationTokenSource();
        int reads = 0, writes = 0;
        async Task Worker(int seed)
        {
            var random = new Random(seed);
            for (int round = 0; !stop.IsCancellationRequested; round++)
            {
                int i = random.Next(Keys);
                if (i % 2 == seed) // each worker owns the keys i % 2 == seed, so its last ack is the latest
                {
                    string value = $"w{seed}-{round}-{i}";
                    Assert.Equal(Status.Ok, (await client.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(value))).Status);
                    lock (acked)
                        acked[i] = value;
                    Interlocked.Increment(ref writes);
                }
                else
                {
                    Assert.Equal(Status.Ok, (await client.GetAsync(1, Key(i))).Status);
                    Interlocked.Increment(ref reads);
                }
            }
        }
        Task[] workers = [.. Enumerable.Range(0, 2).Select(s => Task.Run(() => Worker(s)))];
        await Task.Delay(200);
        await nodes["n2"].Member.MigrateHereAsync(["r1", "r2"]);
        await Task.Delay(200);
        await stop.CancelAsync();
        await Task.WhenAll(workers);
        output.WriteLine($"{reads} reads, {writes} writes during the run, {client.Resends} resends; shm dials {_shm.Describe()}");
        Assert.Null(nodes["n2"].Member.Status.Error);

        foreach (var (i, value) in acked)
        {
            GetResult got = await client.GetAsync(1, Key(i));
            Assert.Equal(value, got.Value is null ? null : Encoding.UTF8.GetString(got.Value));
        }
        Assert.True(client.Resends > 0, "no request was re-routed: the migration was not observed by the client");
        Assert.True(_shm.Dials(AddressOf("n2")) > 0, "the client never reached n2 over shm");
        Assert.True(_shm.Dials(AddressOf("n1")) > 1, "the client's session to n1 was never re-opened after its view changed");
        Assert.Equal(0, _shm.Failures);

        // The direct session still stamps n1's old view: n1 answers ViewChanged, the session adopts the new view and
        // resends, and the key that stayed on n1 reads back.
        ulong n1View = nodes["n1"].Member.Node.View.Current;
        Assert.True(n1View > viewBefore, $"n1's view did not move ({viewBefore} -> {n1View})");
        GetResult stayed = await direct.GetAsync(1, stays);
        Assert.Equal(Status.Ok, stayed.Status);
        Assert.Equal("before", Encoding.UTF8.GetString(stayed.Value!));
        Assert.Equal(n1View, direct.View);
    }

    /// <summary>An <see cref="ITransport"/> that counts the sessions dialled per address (to prove the client used it).</summary>
    private sealed class CountingTransport(ITransport inner) : ITransport
    {
        private readonly ConcurrentDictionary<string, int> _dials = new();
        private int _failures;

        public string Name => inner.Name;

        public int Failures => Volatile.Read(ref _failures);

        public int Dials(string address) => _dials.GetValueOrDefault(address);

        public string Describe() => string.Join(", ", _dials.Select(d => $"{d.Key}={d.Value}"));

        public ITransportListener Listen(string address) => inner.Listen(address);

        public async ValueTask<ITransportConnection> ConnectAsync(string address, CancellationToken cancellationToken = default)
        {
            try
            {
                var connection = await inner.ConnectAsync(address, cancellationToken);
                _dials.AddOrUpdate(address, 1, (_, n) => n + 1);
                return connection;
            }
            catch (TransportException)
            {
                Interlocked.Increment(ref _failures);
                throw;
            }
        }

        public void Dispose() => inner.Dispose();
    }
}
