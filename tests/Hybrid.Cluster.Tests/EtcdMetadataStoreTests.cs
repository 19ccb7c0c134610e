using System.Diagnostics;
using dotnet_etcd;
using Etcdserverpb;

namespace Hybrid.Cluster.Tests;

/// <summary>One etcd server for a test class; each test isolates itself under its own key prefix.</summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    /// <summary>The running server.</summary>
    public EtcdProcess Etcd { get; private set; } = null!;

    /// <summary>Starts etcd; fails (never skips) when the binary is missing.</summary>
    public async Task InitializeAsync()
    {
        Assert.True(EtcdProcess.FindBinary() is not null, "etcd is not installed: apt-get install -y etcd-server");
        Etcd = await EtcdProcess.StartAsync();
    }

    /// <summary>Kills etcd and removes its data.</summary>
    public async Task DisposeAsync() => await Etcd.DisposeAsync();
}

/// <summary>The contract suite on a real etcd started by the fixture (real time for leases).</summary>
public sealed class EtcdMetadataStoreTests(EtcdFixture fixture) : MetadataStoreContract, IClassFixture<EtcdFixture>
{
    private readonly string _prefix = "/test-" + Guid.NewGuid().ToString("N");

    /// <inheritdoc/>
    protected override Task<IMetadataStore> CreateStoreAsync() =>
        Task.FromResult<IMetadataStore>(new EtcdMetadataStore(fixture.Etcd.ClientUrl, _prefix));

    /// <inheritdoc/>
    protected override Task ElapseAsync(TimeSpan time) => Task.Delay(time);

    [Fact]
    public async Task Watch_FromACompactedRevision_ThrowsCompacted()
    {
        var first = await Store.CompareAndSwapAsync("/w/a", MetadataRevision.Absent, Bytes("1"));
        var second = await Store.CompareAndSwapAsync("/w/a", first.Revision, Bytes("2"));
        using (var admin = new EtcdClient(fixture.Etcd.ClientUrl))
        {
            await admin.CompactAsync(new CompactionRequest { Revision = second.Revision });
        }

        await Assert.ThrowsAsync<MetadataCompactedException>(async () =>
        {
            await foreach (var _ in Store.WatchAsync("/w/", first.Revision - 1))
            {
            }
        });
    }

    [Fact]
    public async Task KeyPrefix_IsolatesStoresSharingOneEtcd()
    {
        await using var other = new EtcdMetadataStore(fixture.Etcd.ClientUrl, _prefix + "-other");
        await Store.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("mine"));

        Assert.Null(await other.GetAsync("/k"));
        Assert.True((await other.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("theirs"))).Succeeded);
        Assert.Equal("mine", Text(await Store.GetAsync("/k")));
        Assert.Single(await Store.ListAsync("/"));
    }

    [Fact]
    public async Task OpenByLocation_Etcd_ReachesTheSameServer()
    {
        await Store.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("v"));

        await using var opened = MetadataStores.Open("etcd:" + fixture.Etcd.ClientUrl);

        Assert.IsType<EtcdMetadataStore>(opened);
        Assert.Equal("v", Text(await opened.GetAsync(_prefix + "/k")));
    }
}

/// <summary>etcd killed with SIGKILL under a client, then restarted on the same data directory.</summary>
public sealed class EtcdCrashTests
{
    [Fact]
    public async Task EtcdProcess_StoppedGracefully_RestartsOnItsDataDirectoryAndPorts()
    {
        Assert.True(EtcdProcess.FindBinary() is not null, "etcd is not installed: apt-get install -y etcd-server");
        using var dir = new TempDirectory();
        await using var etcd = await EtcdProcess.StartAsync(dataDirectory: dir.Path);
        await using var store = new EtcdMetadataStore(etcd.ClientUrl);
        var written = await store.CompareAndSwapAsync("/k", MetadataRevision.Absent, "v"u8.ToArray());

        await etcd.StopAsync(grace: TimeSpan.FromSeconds(30));
        Assert.False(etcd.IsRunning);
        Assert.Contains("terminated", etcd.RecentLog()); // etcd saw SIGTERM, so it was not the kill fallback
        await etcd.RestartAsync();

        Assert.True(etcd.IsRunning);
        Assert.Equal(written.Revision, (await store.GetAsync("/k"))!.Revision);
        Assert.True(Directory.Exists(etcd.DataDirectory));
    }

    [Fact]
    public async Task EtcdKilled_ClientReportsUnavailable_AndRestartKeepsCommittedData()
    {
        Assert.True(EtcdProcess.FindBinary() is not null, "etcd is not installed: apt-get install -y etcd-server");
        await using var etcd = await EtcdProcess.StartAsync();
        var timeout = TimeSpan.FromSeconds(2);
        await using var store = new EtcdMetadataStore(etcd.ClientUrl, "/crash", new EtcdMetadataStoreOptions { CallTimeout = timeout });

        long last = 0;
        for (var i = 0; i < 10; i++)
        {
            last = (await Counter.IncrementAsync(store, "/counter")).Revision;
        }

        var metadata = new ClusterMetadata(store, "/cluster");
        var ttl = TimeSpan.FromSeconds(3);
        await using var registration = await metadata.RegisterNodeAsync(
            new NodeInfo("n1", "127.0.0.1:7100"), ttl, keepAliveInterval: TimeSpan.FromMilliseconds(250));

        using var watchCts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var watching = Task.Run(async () =>
        {
            await foreach (var _ in store.WatchAsync("/counter", last, watchCts.Token))
            {
            }
        });

        await etcd.KillAsync();

        var clock = Stopwatch.StartNew();
        var get = await Assert.ThrowsAsync<MetadataUnavailableException>(() => store.GetAsync("/counter"));
        Assert.Contains(etcd.ClientUrl, get.Message);
        await Assert.ThrowsAsync<MetadataUnavailableException>(
            () => store.CompareAndSwapAsync("/counter", last, Counter.Encode(99)));
        await Assert.ThrowsAsync<MetadataUnavailableException>(() => watching);
        // Bounded by the call deadline, not by retries: generous slack for a loaded machine.
        Assert.True(clock.Elapsed < timeout * 5, $"errors took {clock.Elapsed}");

        await etcd.RestartAsync();

        // The client's channel may still be backing off from the refused connections: callers retry Unavailable
        // (PatientClusterMetadata does), so the first read after the restart may too, within a deadline.
        var reconnect = Stopwatch.StartNew();
        MetadataEntry? entry;
        while (true)
        {
            try
            {
                entry = await store.GetAsync("/counter");
                break;
            }
            catch (MetadataUnavailableException) when (reconnect.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(200);
            }
        }
        Assert.Equal(10, Counter.Decode(entry));
        Assert.Equal(last, entry!.Revision);
        var (value, revision) = await Counter.IncrementAsync(store, "/counter");
        Assert.Equal(11, value);
        Assert.True(revision > last);

        // The node's lease survived the outage (etcd restores leases on restart) and is renewed again:
        // still registered after more than a TTL.
        await Task.Delay(ttl + TimeSpan.FromSeconds(1));
        Assert.Equal(["n1"], (await metadata.ListLiveNodesAsync()).Select(n => n.Id));
        Assert.True(await store.KeepAliveAsync(registration.LeaseId));
    }
}
