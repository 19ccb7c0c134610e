using Hybrid.Node.Hosting;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A cluster whose nodes run in the test process (each its own <see cref="ClusterNodeHost"/> and file metadata store
/// instance on one shared directory, as separate processes would have): n1 owns every range at the start.
/// </summary>
internal sealed class InProcessCluster : IAsyncDisposable
{
    private const string Root = "/hybrid";
    private readonly TempDirectory _dir = new();
    private readonly List<IAsyncDisposable> _owned = [];

    private InProcessCluster()
    {
    }

    /// <summary>The decisions as the test reads them.</summary>
    public DurableClusterMetadata Metadata { get; private set; } = null!;

    private string MetadataDir => Path.Combine(_dir.Path, "metadata");

    /// <summary>Node <paramref name="name"/>'s data directory.</summary>
    public string DataDirectoryOf(string name) => Path.Combine(_dir.Path, name);

    /// <summary>A metadata store instance of its own on the cluster's directory (as another process would open).</summary>
    public IMetadataStore OpenStore() => Own(new FileMetadataStore(MetadataDir));

    /// <summary>Creates the metadata of nodes n1 and n2 with <paramref name="ranges"/> equal ranges, all owned by n1.</summary>
    public static async Task<InProcessCluster> CreateAsync(int ranges)
    {
        var cluster = new InProcessCluster();
        var store = new FileMetadataStore(cluster.MetadataDir);
        cluster._owned.Add(store);
        cluster.Metadata = new DurableClusterMetadata(store, Root);
        var slots = DurableClusterMetadata.EvenRanges(ranges);
        Assert.True(await cluster.Metadata.InitializeAsync(["n1", "n2"], ["c1", "c2"], slots, slots.Keys.ToDictionary(r => r, _ => "n1")));
        return cluster;
    }

    /// <summary>Starts node <paramref name="name"/> (native port ephemeral; RESP ephemeral when <paramref name="resp"/>).</summary>
    public async Task<ClusterNodeHost> StartNodeAsync(string name, bool resp = false)
    {
        var store = new FileMetadataStore(MetadataDir);
        _owned.Add(store);
        ClusterNodeHost host = await ClusterNodeHost.StartAsync(store, Root, name, new HybridNodeOptions
        {
            DataDirectory = DataDirectoryOf(name),
            NativePort = 0,
            RespPort = resp ? 0 : -1,
            MetricsPort = -1,
            MemoryBudgetBytes = 1 << 20,
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero },
        });
        _owned.Add(host);
        return host;
    }

    /// <summary>Stops node <paramref name="host"/> (it leaves the cluster; its data directory stays for a restart).</summary>
    public async Task StopNodeAsync(ClusterNodeHost host)
    {
        _owned.Remove(host);
        await host.DisposeAsync();
    }

    /// <summary>Disposes <paramref name="value"/> with the cluster (before the nodes it talks to).</summary>
    public T Own<T>(T value) where T : IAsyncDisposable
    {
        _owned.Add(value);
        return value;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            await _owned[i].DisposeAsync();
        _dir.Dispose();
    }
}
