using System.Net;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tests.Node;
using Hybrid.Storage;
using Hybrid.Transport;

namespace Hybrid.Node.Tests.Transport;

/// <summary>
/// An in-process node (small store, ephemeral ports) that also listens on a message transport — shared memory, or
/// the transport interface's TCP implementation (<c>tcp:</c>) — plus the client side of it. Neither needs DPDK, so
/// both run inside the test host.
/// </summary>
internal sealed class ShmNode : IAsyncDisposable
{
    private ShmNode(HybridNode node, string directory, ITransport clientTransport)
    {
        Node = node;
        Directory = directory;
        ClientTransport = clientTransport;
    }

    internal HybridNode Node { get; }

    internal string Directory { get; }

    /// <summary>The client side's transport (one per process and kind), shared by every session of a test.</summary>
    internal ITransport ClientTransport { get; }

    /// <summary>The address clients dial.</summary>
    internal string Address => Node.TransportAddressOf(Listener);

    internal static async Task<ShmNode> StartAsync(int workers = 2, DurabilityMode durability = DurabilityMode.Memory, int shmRingBytes = 1 << 20,
        TransportKind kind = TransportKind.SharedMemory)
    {
        string directory = TestNode.NewDirectory();
        string socket = Path.Combine(Path.GetTempPath(), $"hyb-nt-{Guid.NewGuid():N}.sock");
        var options = new HybridNodeOptions
        {
            DataDirectory = directory,
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Workers = workers,
            Durability = durability,
            MemoryBudgetBytes = 1 << 20,
            Limits = TestNode.Limits,
            ConfigureStore = s => s with { PageSizeBytes = 16 * 1024, MemoryBudgetBytes = 1 << 20, IndexBuckets = 1 << 12 },
            // Both sides must agree on the ring size (the node checks the client's mapped file).
            // The tcp: message transport (the interface's TCP implementation) listens on an ephemeral loopback port.
            Transports = [kind == TransportKind.Tcp
                ? new TransportListenerOptions(Listener, new TransportOptions { Kind = TransportKind.Tcp }, "127.0.0.1:0")
                : new TransportListenerOptions(Listener, new TransportOptions { Kind = TransportKind.SharedMemory, ShmRingBytes = shmRingBytes }, socket)],
        };
        var node = new HybridNode(options);
        await node.StartAsync();
        var client = kind == TransportKind.Tcp
            ? new TransportOptions { Kind = TransportKind.Tcp }
            : new TransportOptions { Kind = TransportKind.SharedMemory, ShmRingBytes = shmRingBytes };
        return new ShmNode(node, directory, TransportFactory.Create(client));
    }

    /// <summary>The node's message-transport listener (shm, or tcp: when started with <see cref="TransportKind.Tcp"/>).</summary>
    private const string Listener = "messages";

    internal Task<HybridSession> ConnectAsync(string tenant = "default", byte[]? secret = null, int inFlight = 4) =>
        HybridSession.ConnectAsync(new HybridClientOptions
        {
            Transport = ClientTransport,
            TransportAddress = Address,
            Tenant = tenant,
            Secret = secret ?? [],
            MaxInFlightBatches = inFlight,
            Timeout = TimeSpan.FromSeconds(20),
        });

    /// <summary>A client on the node's native TCP socket (same store, same workers).</summary>
    internal Task<HybridSession> ConnectTcpAsync() =>
        HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, Node.NativePort), Timeout = TimeSpan.FromSeconds(20) });

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
        ClientTransport.Dispose();
        TestNode.DeleteDirectory(Directory);
    }
}
