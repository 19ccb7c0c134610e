using System.Diagnostics;
using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Cluster;

/// <summary>
/// Compiles a cluster node's request and migration paths before it needs them: runs a scratch two-node cluster in
/// this process (its own metadata directory, stores, loopback ports and workers) and moves a range back and forth
/// with Rocksteady while a client reads and writes it, so that everything a real migration runs (the coordinator's
/// decisions and metadata writes, batches whose reads miss and wait for priority pulls, out-of-order replies,
/// background pulls and their apply, the source's scan, the peer protocol, the checkpoint and the drop) is optimised
/// code by the time the node serves or migrates for real. Nothing touches the node's own store, ports or metadata.
/// </summary>
/// <remarks>
/// Why: .NET compiles a method first without optimisation and recompiles it only after it has been called often
/// enough, on a background thread. A node that joins empty (the scale-out case Rocksteady is for) has never run its
/// request path, and the migration paths run nowhere else, so the first migration to it ran unoptimised code while
/// the JIT competed for the same cores. Measured (2026-12-06, `hybrid bench migrate --records 1000000` with the
/// JIT's method list of the target): 5,100 methods compiled during the migration, its first native batch among them;
/// under <c>perf record -a</c> the pull threads ran <c>[QuickJitted]</c> FASTER code and 20% of all samples were the
/// three processes' tiered-compilation threads.
/// </remarks>
public static class NodeWarmUp
{
    private const string Root = "/warm-up";

    /// <summary>
    /// How long a node's warm-up runs: 2 s when the process was started with <c>DOTNET_TC_CallCountingDelayMs=0</c>
    /// (<c>hybrid cluster start</c> sets it), else 6 s. With the runtime's default delay (100 ms after the last newly
    /// compiled method) `NativeSession.RunBatch` was still unoptimised after a 2 s warm-up and optimised after a 6 s
    /// one (2026-12-06, the JIT's method list of a one-node cluster; a runtimeconfig.json property does not reach
    /// this setting, only the environment does).
    /// </summary>
    public static TimeSpan DefaultDuration { get; } =
        Environment.GetEnvironmentVariable("DOTNET_TC_CallCountingDelayMs") == "0" ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(6);
    private const ushort Table = 0;

    /// <summary>
    /// Runs the scratch cluster (<paramref name="workers"/> workers per node, <paramref name="engine"/>) for at least
    /// <paramref name="minRounds"/> rounds and until <paramref name="duration"/> has passed (the runtime recompiles a
    /// method only after a quiet period and enough calls). A round moves one range there and back, each move under
    /// reads and writes of <paramref name="records"/> keys. Returns the reads answered with the value last written
    /// (a test holds it to all of them). Works in <paramref name="directory"/> (default: a new one under the temporary
    /// directory), scratch by contract: whatever is there first is deleted (what a killed process left), and the
    /// directory and every other scratch resource are gone when this returns, cancelled or not.
    /// </summary>
    public static async Task<long> RunAsync(int workers, SocketEngine engine, TimeSpan duration, int minRounds = 2, int records = 4000,
        string? directory = null, CancellationToken cancellationToken = default)
    {
        string dir = directory ?? Path.Combine(Path.GetTempPath(), "hybrid-warmup-" + Guid.NewGuid().ToString("N"));
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
        var owned = new List<IAsyncDisposable>();
        try
        {
            string metadataDir = Path.Combine(dir, "metadata");
            var store = new FileMetadataStore(metadataDir);
            owned.Add(store);
            var metadata = new DurableClusterMetadata(store, Root);
            var layout = DurableClusterMetadata.EvenRanges(2);
            string[] cores = [.. Enumerable.Range(1, workers).Select(i => "c" + i)];
            if (!await metadata.InitializeAsync(["w1", "w2"], cores, layout, layout.Keys.ToDictionary(r => r, _ => "w1")).ConfigureAwait(false))
                throw new InvalidOperationException("the scratch cluster's metadata exists already");
            var hosts = new Dictionary<string, ClusterNodeHost>();
            foreach (string name in new[] { "w1", "w2" })
            {
                var own = new FileMetadataStore(metadataDir);
                owned.Add(own);
                ClusterNodeHost host = await ClusterNodeHost.StartAsync(own, Root, name, new HybridNodeOptions
                {
                    DataDirectory = Path.Combine(dir, name),
                    BindAddress = IPAddress.Loopback,
                    NativePort = 0,
                    RespPort = -1,
                    MetricsPort = -1,
                    Workers = workers,
                    SocketEngine = engine,
                    Durability = DurabilityMode.Async,
                    MemoryBudgetBytes = 2 << 20,
                    Limits = new ProtocolLimits(256 * 1024, 256, 1024, 4096),
                    ConfigureStore = o => o with { PageSizeBytes = 64 << 10, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero },
                }, cancellationToken: cancellationToken).ConfigureAwait(false);
                owned.Add(host);
                hosts[name] = host;
            }
            await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(metadata.Typed),
                new HybridClientOptions { Timeout = TimeSpan.FromSeconds(30) }, cancellationToken).ConfigureAwait(false);
            string moving = layout.Keys.OrderBy(r => layout[r].First).First();
            byte[] value = new byte[100];
            long answered = 0;
            var clock = Stopwatch.StartNew();
            for (int round = 0; round < minRounds || clock.Elapsed < duration; round++)
            {
                foreach (string to in new[] { "w2", "w1" })
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    value[0] = (byte)(round * 2 + (to == "w2" ? 0 : 1));
                    // A cancellation can stop the migration half way (nobody serving the range), and the client's requests
                    // would then retry until their deadline: stop waiting for them instead (disposing the client ends them).
                    await Task.WhenAll(Enumerable.Range(0, 8).Select(c => WriteAsync(client, c, records, value))).WaitAsync(cancellationToken).ConfigureAwait(false);
                    Task migration = hosts[to].Member.MigrateHereAsync([moving], cancellationToken: cancellationToken);
                    long[] reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(c => ReadAsync(client, c, records, value[0])))
                        .WaitAsync(cancellationToken).ConfigureAwait(false);
                    answered += reads.Sum();
                    await migration.ConfigureAwait(false);
                }
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
            return answered;
        }
        finally
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                await owned[i].DisposeAsync().ConfigureAwait(false);
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a scratch directory left behind is harmless
            }
        }
    }

    private static async Task WriteAsync(ClusterClient client, int first, int records, byte[] value)
    {
        for (int i = first; i < records; i += 8)
            _ = await client.PutAsync(Table, Key(i), value).ConfigureAwait(false);
    }

    /// <summary>Reads every 8th key from <paramref name="first"/>; counts those that carry <paramref name="mark"/>.</summary>
    private static async Task<long> ReadAsync(ClusterClient client, int first, int records, byte mark)
    {
        long answered = 0;
        for (int i = first; i < records; i += 8)
        {
            GetResult r = await client.GetAsync(Table, Key(i)).ConfigureAwait(false);
            if (r.Status == Status.Ok && r.Value is { Length: > 0 } v && v[0] == mark)
                answered++;
        }
        return answered;
    }

    private static byte[] Key(int i) => Encoding.ASCII.GetBytes("warm-up:" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
