using System.Net;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Node;

/// <summary>A node on ephemeral loopback ports over a small FASTER store in a temporary directory.</summary>
internal sealed class TestNode : IAsyncDisposable
{
    /// <summary>Limits small enough for a small page size (so tests use little memory and really spill to disk).</summary>
    internal static readonly ProtocolLimits Limits = new(256 * 1024, 512, 8 * 1024, 4096);

    private readonly bool _ownsDirectory;

    private TestNode(HybridNode node, string directory, bool ownsDirectory)
    {
        Node = node;
        Directory = directory;
        _ownsDirectory = ownsDirectory;
    }

    internal HybridNode Node { get; }

    internal string Directory { get; }

    internal IPEndPoint EndPoint => new(IPAddress.Loopback, Node.NativePort);

    internal static string NewDirectory() => Path.Combine(Path.GetTempPath(), "hybrid-node-tests", Guid.NewGuid().ToString("N"));

    internal static async Task<TestNode> StartAsync(
        DurabilityMode durability = DurabilityMode.Memory,
        string? directory = null,
        long memoryBudget = 1 << 20,
        Func<IKvStore, IKvStore>? wrapStore = null,
        int workers = 2,
        ProtocolLimits? limits = null,
        Func<HybridNodeOptions, HybridNodeOptions>? configure = null)
    {
        bool owns = directory is null;
        directory ??= NewDirectory();
        var options = new HybridNodeOptions
        {
            DataDirectory = directory,
            NativePort = 0,
            RespPort = -1,
            MetricsPort = 0,
            Workers = workers,
            Durability = durability,
            MemoryBudgetBytes = memoryBudget,
            Limits = limits ?? Limits,
            ConfigureStore = s => s with { PageSizeBytes = 16 * 1024, MemoryBudgetBytes = memoryBudget, IndexBuckets = 1 << 12 },
            StoreFactory = wrapStore is null ? null : s => wrapStore(FasterKvStore.Open(s)),
        };
        var node = new HybridNode(configure is null ? options : configure(options));
        await node.StartAsync();
        return new TestNode(node, directory, owns);
    }

    internal Task<HybridSession> ConnectAsync(string tenant = "default", byte[]? secret = null, Func<HybridClientOptions, HybridClientOptions>? configure = null)
    {
        var options = new HybridClientOptions { EndPoint = EndPoint, Tenant = tenant, Secret = secret ?? [], Timeout = TimeSpan.FromSeconds(20) };
        return HybridSession.ConnectAsync(configure is null ? options : configure(options));
    }

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
        if (_ownsDirectory)
            DeleteDirectory(Directory);
    }

    internal static void DeleteDirectory(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
