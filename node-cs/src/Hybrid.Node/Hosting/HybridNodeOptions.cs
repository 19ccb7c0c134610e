using System.Net;
using Hybrid.Protocol;
using Hybrid.Storage;
using Hybrid.Transport;

namespace Hybrid.Node.Hosting;

/// <summary>
/// Everything a node is started with. The defaults are the embedded node: ./data, loopback only, native port 7100,
/// RESP 6380, metrics 7180, one worker per core, async durability. <see cref="Validate"/> states the rules.
/// </summary>
public sealed record HybridNodeOptions
{
    /// <summary>Data directory: store files and <c>tenants.log</c>.</summary>
    public string DataDirectory { get; init; } = "data";

    /// <summary>Address every listener binds to. Anything but loopback requires AUTH for every tenant.</summary>
    public IPAddress BindAddress { get; init; } = IPAddress.Loopback;

    /// <summary>Native protocol port (0 = ephemeral, see <see cref="HybridNode.NativePort"/>; -1 = off).</summary>
    public int NativePort { get; init; } = 7100;

    /// <summary>RESP port, used by the RESP front end (0 = ephemeral; -1 = off).</summary>
    public int RespPort { get; init; } = 6380;

    /// <summary>Admin HTTP port serving Prometheus metrics at <c>/metrics</c> (0 = ephemeral; -1 = off).</summary>
    public int MetricsPort { get; init; } = 7180;

    /// <summary>
    /// Address the metrics port binds to. Null: loopback, whatever <see cref="BindAddress"/> is, because the metrics
    /// name every tenant with its traffic and the port has no authentication; set it (<c>--metrics-bind</c>) for a
    /// Prometheus on another host.
    /// </summary>
    public IPAddress? MetricsBindAddress { get; init; }

    /// <summary>Worker threads (one per core by default).</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// With .NET's socket engine (<see cref="SocketEngine.DotNet"/>; the node's own pollers always offer a ready
    /// connection to its idle worker): largest socket receive that the completing I/O thread may drive itself on an idle (sleeping) worker instead of
    /// queueing it for the worker thread (<c>Worker.TryRunInline</c>): saves a wake-up and a thread switch per batch,
    /// at the cost of running that batch on the I/O thread. Default: no limit on machines with at most 2 cores, where
    /// the switch costs more than spreading batches over the workers gains (measured side by side: redis-benchmark
    /// pipeline 32, 0.82 → 0.73 µs of node CPU per request; native YCSB-C 2.5–2.7M → 2.8–3.0M ops/s, p99 2–5 ms →
    /// 1.0–1.3 ms); 1 KiB (one request at a time) on larger machines (not measured here).
    /// </summary>
    public int InlineReceiveBytes { get; init; } = Environment.ProcessorCount <= 2 ? int.MaxValue : 1024;

    /// <summary>
    /// What drives the kernel sockets of the native and RESP ports. <see cref="SocketEngine.Auto"/> (default): the
    /// node's own readiness loop when libhyb_transport loads, else .NET's socket engine (the start-up line says which).
    /// </summary>
    public SocketEngine SocketEngine { get; init; } = SocketEngine.Auto;

    /// <summary>
    /// CPUs the node's request threads run on: worker i only on <c>Cpus[i % n]</c>, and poller i (the node's own
    /// socket engine) on the same CPU as worker i. Empty (default): the kernel places them. Pinning keeps the store's
    /// cores apart from other work on the machine (a load generator, say), as a server with dedicated cores would run.
    /// Needs libhyb_transport; a CPU this process may not use fails the start.
    /// </summary>
    public IReadOnlyList<int> Cpus { get; init; } = [];

    /// <summary>Threads of the node's readiness loop (<see cref="SocketEngine.Polled"/>): 1 on machines of at most 2 cores, else one per core (never more than <see cref="Workers"/>).</summary>
    public int PollerThreads { get; init; } = Environment.ProcessorCount <= 2 ? 1 : Environment.ProcessorCount;

    /// <summary>
    /// How long a poller thread keeps looking for events after a batch before it sleeps in the kernel (zero: sleeps at
    /// once). Default 20 µs: under load the next request is usually closer than that, and a poller that slept must be
    /// woken by the client's send, which costs the client's core. Side by side on 2 cores (redis-benchmark GET, 50
    /// clients, pipeline 1): 97.3–98.1k ops/s with 20 µs, 78–89k without, Redis 94–95k; the client's wake-ups fell from
    /// 40–50k to 5–6k per 300k requests. An idle node spins 20 µs after its last request, then sleeps.
    /// </summary>
    public TimeSpan PollerSpin { get; init; } = TimeSpan.FromMicroseconds(20);

    /// <summary>The crash promise of acknowledged writes.</summary>
    public DurabilityMode Durability { get; init; } = DurabilityMode.Async;

    /// <summary>Bytes of the hybrid log kept in memory (the rest spills to the data directory).</summary>
    public long MemoryBudgetBytes { get; init; } = 256L << 20;

    /// <summary>
    /// Time between checkpoints in async and sync durability (each truncates the operation log that a restart replays);
    /// zero: none but those a migration asks for. Null: the store's default (one minute).
    /// </summary>
    public TimeSpan? CheckpointInterval { get; init; }

    /// <summary>Frame, key, value and batch limits of the native protocol.</summary>
    public ProtocolLimits Limits { get; init; } = ProtocolLimits.Default;

    /// <summary>Creates the store; null = <see cref="FasterKvStore.Open"/>. Tests may pass fakes that inject pending reads.</summary>
    public Func<StoreOptions, IKvStore>? StoreFactory { get; init; }

    /// <summary>Adjusts the store options derived from these (page size, index size, commit interval...).</summary>
    public Func<StoreOptions, StoreOptions>? ConfigureStore { get; init; }

    /// <summary>
    /// The RESP port's slot map in a cluster (<see cref="Resp.ClusterSlotMap"/>, updated by the cluster layer): keys
    /// of slots served elsewhere get <c>-MOVED</c> and CLUSTER commands answer. Null: a single node serving every slot.
    /// </summary>
    public Resp.IRespSlotMap? RespSlotMap { get; init; }

    /// <summary>
    /// The view the node starts in and the slots it owns there. Outside a cluster: view 1, every slot. A cluster member
    /// starts in view 0 owning nothing, and adopts the view its metadata records (with that view's slots) once it has
    /// carried out its recovery; until then every keyed batch is refused (ViewChanged or NotOwner).
    /// </summary>
    public ulong InitialView { get; init; } = 1;

    /// <summary>The slots owned in <see cref="InitialView"/> (null = every slot).</summary>
    public OwnedSlots? InitialOwnedSlots { get; init; }

    /// <summary>
    /// Most connections open at once (socket front ends); one more is closed as soon as it is accepted, so a client
    /// opening sockets without end cannot exhaust the node's memory or descriptors. Default 10,000.
    /// </summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>
    /// How long a socket connection may stay unauthenticated (no tenant yet: native Hello/Auth, RESP AUTH) before the
    /// node closes it; checked about once a second (message-transport sessions are not swept). <see cref="Timeout.InfiniteTimeSpan"/> = never. Default 10 s.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often a worker refreshes its epoch (view, quotas) at the latest while busy.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Extra native-protocol listeners on message transports (shared memory, DPDK, length-prefixed TCP), besides the
    /// native TCP socket of <see cref="NativePort"/>. Their sessions run on the same workers and front end.
    /// </summary>
    public IReadOnlyList<TransportListenerOptions> Transports { get; init; } = [];

    /// <summary>
    /// How long a worker keeps polling an idle transport session (between its other work) before the receive moves
    /// to a blocking wait off the worker. Longer = lower latency for sparse clients, more CPU spent polling.
    /// </summary>
    public TimeSpan TransportPollWindow { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// True when nothing the node listens on is reachable from another host: its sockets are bound to loopback and
    /// every message-transport listener is host-local (<see cref="TransportListenerOptions.IsHostLocal"/>). The only
    /// case where the default tenant may skip AUTH: an af_packet or non-loopback <c>tcp:</c> listener is a network
    /// link, so it makes every tenant authenticate.
    /// </summary>
    public bool IsLoopbackOnly => IPAddress.IsLoopback(BindAddress) && Transports.All(t => t.IsHostLocal);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first rule broken.</summary>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(DataDirectory);
        if (InlineReceiveBytes < 0)
            throw new ArgumentException("InlineReceiveBytes must be >= 0", nameof(InlineReceiveBytes));
        if (Workers is < 1 or > 256)
            throw new ArgumentException("Workers must be 1..256", nameof(Workers));
        if (PollerThreads is < 1 or > 256)
            throw new ArgumentException("PollerThreads must be 1..256", nameof(PollerThreads));
        if (PollerSpin < TimeSpan.Zero || PollerSpin > TimeSpan.FromMilliseconds(10))
            throw new ArgumentException("PollerSpin must be 0..10 ms", nameof(PollerSpin));
        foreach (var (name, port) in new[] { (nameof(NativePort), NativePort), (nameof(RespPort), RespPort), (nameof(MetricsPort), MetricsPort) })
        {
            if (port is < -1 or > 65535)
                throw new ArgumentException($"{name} must be -1 (off), 0 (ephemeral) or a port", name);
        }
        var names = new HashSet<string>(StringComparer.Ordinal) { "native", "resp" };
        foreach (var transport in Transports)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(transport.Name);
            if (!names.Add(transport.Name))
                throw new ArgumentException($"listener name '{transport.Name}' is used twice", nameof(Transports));
            transport.Options.Validate();
        }
        if (TransportPollWindow < TimeSpan.Zero)
            throw new ArgumentException("TransportPollWindow must not be negative", nameof(TransportPollWindow));
        foreach (int cpu in Cpus)
        {
            if (cpu is < 0 or > 1023)
                throw new ArgumentException($"CPU {cpu} is not 0..1023", nameof(Cpus));
        }
        if (MemoryBudgetBytes <= 0)
            throw new ArgumentException("MemoryBudgetBytes must be positive (the store checks it against its page size)", nameof(MemoryBudgetBytes));
        Limits.Validate();
    }

    /// <summary>The store options these node options imply.</summary>
    public StoreOptions ToStoreOptions()
    {
        var options = new StoreOptions
        {
            DataDirectory = Path.Combine(DataDirectory, "store"),
            Durability = Durability,
            MemoryBudgetBytes = MemoryBudgetBytes,
            MaxKeyBytes = Limits.MaxKeyBytes,
            MaxValueBytes = Limits.MaxValueBytes,
            MaxSessions = Workers + 16,
            SyncDirectory = d => Transport.FileDurability.TrySyncDirectory(d),
        };
        if (CheckpointInterval is { } interval)
            options = options with { CheckpointInterval = interval };
        return ConfigureStore is null ? options : ConfigureStore(options);
    }
}

/// <summary>
/// One transport listener of a node: a name (metrics, <see cref="HybridNode.TransportAddressOf"/>), the transport and
/// the address to listen at, e.g. <c>shm</c> + SharedMemory + <c>/tmp/hybrid-7100.sock</c>, or <c>memif</c> + Dpdk
/// (vdev <c>net_memif0,role=server,socket=/tmp/hyb-memif.sock</c>) + service <c>7100</c>.
/// <see cref="FromSpec"/> builds one from a CLI spec (<see cref="TransportSpec"/>).
/// </summary>
/// <param name="Name">Listener name, unique on the node.</param>
/// <param name="Options">The transport; its MaxMessageBytes is raised to the node's frame limit when smaller.</param>
/// <param name="Address">Where to listen (per transport, docs/transport.md).</param>
public sealed record TransportListenerOptions(string Name, TransportOptions Options, string Address)
{
    /// <summary>
    /// True when only processes on this host can reach the listener: shared memory, DPDK <c>net_memif</c> (a Unix
    /// socket), <c>tcp:</c> on a loopback address. False for <c>net_af_packet</c> (a network interface) and any other
    /// TCP address.
    /// </summary>
    public bool IsHostLocal => Options.Kind switch
    {
        TransportKind.SharedMemory => true,
        TransportKind.Dpdk => Options.Dpdk.Vdev.StartsWith("net_memif", StringComparison.Ordinal),
        _ => IsLoopbackAddress(Address),
    };

    private static bool IsLoopbackAddress(string hostPort)
    {
        int colon = hostPort.LastIndexOf(':');
        string host = (colon > 0 ? hostPort[..colon] : hostPort).Trim('[', ']');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out IPAddress? ip) && IPAddress.IsLoopback(ip));
    }

    /// <summary>A listener from a spec such as <c>shm:/tmp/hybrid-7100.sock</c> or <c>memif:/tmp/hyb-memif.sock</c> (<see cref="TransportSpec.Parse"/>).</summary>
    public static TransportListenerOptions FromSpec(string spec)
    {
        var parsed = TransportSpec.Parse(spec, server: true);
        return new TransportListenerOptions(parsed.Name, parsed.Options, parsed.Address);
    }
}

/// <summary>What drives a node's kernel sockets (<see cref="HybridNodeOptions.SocketEngine"/>).</summary>
public enum SocketEngine
{
    /// <summary><see cref="Polled"/> when libhyb_transport loads, else <see cref="DotNet"/>.</summary>
    Auto,

    /// <summary>
    /// The node's own epoll loop (libhyb_transport's <c>hyb_poller_*</c>): one receive and one send per request; the
    /// poller thread runs a ready connection itself on its idle owner worker. Start fails when the library is missing.
    /// </summary>
    Polled,

    /// <summary>.NET's socket engine (SocketAsyncEventArgs): a receive that finds nothing re-arms each socket, so three system calls per request.</summary>
    DotNet,
}
