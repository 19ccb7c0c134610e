using System.Collections.Concurrent;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Transport;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Views and migration over the shared-memory transport and the transport interface's TCP implementation (tcp:): two
/// in-process nodes listen on it besides their native TCP port, a
/// <see cref="ClusterClient"/> reaches both over shm (each node's address carried in the routing map by
/// <see cref="TransportRouting"/>), follows a migration of two ranges from one node to the other, and a plain session
/// over shm sees ViewChanged and adopts the node's new view. (DPDK memif cannot run in-process like this: EAL never starts
/// inside the test host, and a process's one memif port reaches one peer. <see cref="DpdkClusterTests"/> runs views and
/// a migration over memif and af_packet with the nodes and one client per node as child processes.)
/// </summary>
public sealed class TransportClusterTests(ITestOutputHelper output)
{
    /// <summary>Starts a cluster member whose node listens on <paramref name="spec"/> (a fresh shm socket, or tcp: on an ephemeral loopback port) besides its native TCP port.</summary>
    private static Task<ClusterNodeHost> StartNodeAsync(IMetadataStore store, string directory, string name, string spec) =>
        ClusterNodeHost.StartAsync(store, "/hybrid", name, new HybridNodeOptions
        {
            DataDirectory = Path.Combine(directory, name),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            MemoryBudgetBytes = 1 << 20,
            Transports = [TransportListenerOptions.FromSpec(spec)],
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero },
        });

    /// <summary>A key whose slot lies in <paramref name="range"/>.</summary>
    private static byte[] KeyIn(SlotRange range) =>
        Enumerable.Range(0, int.MaxValue).Select(i => Encoding.UTF8.GetBytes("probe:" + i))
            .First(key => ClusterSlot.Of(key) >= range.First && ClusterSlot.Of(key) <= range.Last);

    [Theory]
    [InlineData(TransportKind.SharedMemory)]
    [InlineData(TransportKind.Tcp)]
    public async Task Shm_ClusterClient_FollowsMigrationBetweenTwoNodes_AndSessionSeesViewChanged(TransportKind kind)
    {
        using var dir = new TempDirectory();
        using var shm = new CountingTransport(TransportFactory.Create(new TransportOptions { Kind = kind }));
        string Spec() => kind == TransportKind.Tcp ? "tcp:127.0.0.1:0" : $"shm:/tmp/hyb-ct-{Guid.NewGuid():N}.sock";
        string listener = kind == TransportKind.Tcp ? "tcp" : "shm";
        string metadata = Path.Combine(dir.Path, "metadata");
        await using var setupStore = new FileMetadataStore(metadata);
        await using var store1 = new FileMetadataStore(metadata);
        await using var store2 = new FileMetadataStore(metadata);
        var setup = new DurableClusterMetadata(setupStore, "/hybrid");
        var ranges = DurableClusterMetadata.EvenRanges(4);
        Assert.True(await setup.InitializeAsync(["n1", "n2"], ["c1", "c2"], ranges, ranges.Keys.ToDictionary(r => r, _ => "n1")));
        await using var n1 = await StartNodeAsync(store1, dir.Path, "n1", Spec());
        await using var n2 = await StartNodeAsync(store2, dir.Path, "n2", Spec());
        string n1Shm = n1.Member.Node.TransportAddressOf(listener), n2Shm = n2.Member.Node.TransportAddressOf(listener);

        var routing = TransportRouting.Over(new ClusterRoutingSource(setup.Typed), (node, _) => node == "n1" ? n1Shm : n2Shm);
        await using var client = await ClusterClient.ConnectAsync(routing, new HybridClientOptions { Transport = shm });
        Assert.All(client.Routing.EndPoints.Values, e => Assert.IsType<TransportEndPoint>(e));

        // A plain session over shm to n1, opened before the migration (it learns n1's view in Hello).
        await using var direct = await HybridSession.ConnectAsync(new HybridClientOptions { Transport = shm, TransportAddress = n1Shm });
        ulong viewBefore = direct.View;
        byte[] stays = KeyIn(ranges["r3"]);
        Assert.Equal(Status.Ok, (await direct.PutAsync(1, stays, "before"u8)).Status);

        // Round r writes "r" to every key; rounds run before, during and after the migration of r1 and r2 to n2.
        const int Keys = 300;
        byte[][] keys = [.. Enumerable.Range(0, Keys).Select(i => Encoding.UTF8.GetBytes("key:" + i))];
        async Task RoundAsync(int round)
        {
            byte[] value = Encoding.UTF8.GetBytes("round-" + round);
            var puts = keys.Select(k => client.PutAsync(1, k, value)).ToList();
            Assert.All(await Task.WhenAll(puts), w => Assert.Equal(Status.Ok, w.Status));
        }
        await RoundAsync(0);
        Assert.Equal(0, shm.Dials(n2Shm)); // n1 owns every range so far
        int rounds = 1;
        var migration = n2.Member.MigrateHereAsync(["r1", "r2"]);
        while (!migration.IsCompleted)
            await RoundAsync(rounds++);
        await migration;
        await RoundAsync(rounds);
        output.WriteLine($"{rounds + 1} rounds of {Keys} writes, {client.Resends} resends; shm dials {shm.Describe()}");
        Assert.Null(n2.Member.Status.Error);

        string last = "round-" + rounds;
        foreach (var key in keys)
        {
            GetResult got = await client.GetAsync(1, key);
            Assert.Equal(last, got.Value is null ? null : Encoding.UTF8.GetString(got.Value));
        }
        Assert.True(client.Resends > 0, "no request was re-routed: the migration was not observed by the client");
        Assert.True(shm.Dials(n2Shm) > 0, "the client never reached n2 over shm");
        Assert.Equal(0, shm.Failures);

        // The direct session still stamps n1's old view: n1 answers ViewChanged, the session adopts the new view and
        // resends, and the key that stayed on n1 reads back.
        ulong n1View = n1.Member.Node.View.Current;
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
