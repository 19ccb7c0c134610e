using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Hybrid.Node.Dispatch;
using Hybrid.Node.Metrics;
using Hybrid.Node.Native;
using Hybrid.Node.Tenants;
using Hybrid.Storage;
using Hybrid.Transport;

namespace Hybrid.Node.Hosting;

/// <summary>
/// One HybridKV node: the store, the workers, the listeners (native protocol, RESP, any added front end) and the
/// metrics endpoint. <c>hybrid server</c> builds one from its options and calls <see cref="StartAsync"/>; tests do
/// the same with ephemeral ports (port 0) and read the bound ports back.
/// </summary>
public sealed partial class HybridNode : IAsyncDisposable
{
    private readonly List<(string Name, int Port, IConnectionHandler Handler)> _frontEnds = [];
    private readonly Dictionary<string, int> _boundPorts = [];
    private readonly List<Socket> _listenSockets = [];
    private readonly List<(ITransport Transport, ITransportListener Listener)> _transports = [];
    private readonly Dictionary<string, string> _transportAddresses = [];
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private Timer? _handshakeSweep;
    private long _refusedConnections;
    private long _handshakeTimeouts;
    private readonly CancellationTokenSource _stopping = new();
    private Worker[] _workers = [];
    private IKvStore? _store;
    private TenantRegistry? _tenants;
    private DataDirectoryLock? _dataLock;
    private NodeView? _view;
    private MetricsServer? _metricsServer;
    private FrontPollers? _pollers;
    private long _nextSession;
    private int _nextWorker;
    private int _state; // 0 new, 1 started, 2 stopped

    /// <summary>Creates a node; nothing is opened until <see cref="StartAsync"/>.</summary>
    public HybridNode(HybridNodeOptions options)
    {
        options.Validate();
        Options = options;
    }

    /// <summary>The options the node runs with.</summary>
    public HybridNodeOptions Options { get; }

    /// <summary>The store (after start).</summary>
    public IKvStore Store => _store ?? throw new InvalidOperationException("node not started");

    /// <summary>The tenant registry (after start): create tenants and change quotas here.</summary>
    public TenantRegistry Tenants => _tenants ?? throw new InvalidOperationException("node not started");

    /// <summary>The node's view; a cluster layer advances it.</summary>
    public NodeView View => _view ?? throw new InvalidOperationException("node not started");

    /// <summary>The native protocol port actually bound (after start; useful with port 0).</summary>
    public int NativePort => PortOf("native");

    /// <summary>The metrics port actually bound (after start).</summary>
    public int MetricsPort => _metricsServer?.Port ?? throw new InvalidOperationException("metrics are off");

    /// <summary>
    /// What drives the native and RESP sockets (after start): <see cref="Hosting.SocketEngine.Polled"/> or
    /// <see cref="Hosting.SocketEngine.DotNet"/>, <see cref="HybridNodeOptions.SocketEngine"/> resolved.
    /// </summary>
    public SocketEngine SocketEngine { get; private set; } = SocketEngine.Auto;

    /// <summary>Why <see cref="HybridNodeOptions.SocketEngine"/> Auto fell back to .NET's engine (null when it did not).</summary>
    public string? SocketEngineFallback { get; private set; }

    /// <summary>Readiness events the node's pollers handled (0 with .NET's socket engine).</summary>
    public long PollerEvents => _pollers?.Events ?? 0;

    /// <summary>Connections open now.</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Connections closed at once because <see cref="HybridNodeOptions.MaxConnections"/> were open.</summary>
    public long RefusedConnections => Interlocked.Read(ref _refusedConnections);

    /// <summary>Connections closed because they did not authenticate within <see cref="HybridNodeOptions.HandshakeTimeout"/>.</summary>
    public long HandshakeTimeouts => Interlocked.Read(ref _handshakeTimeouts);

    /// <summary>The port a listener was bound to, by front-end name ("native", "resp", ...).</summary>
    public int PortOf(string name) => _boundPorts.TryGetValue(name, out int port) ? port : throw new KeyNotFoundException($"no listener '{name}'");

    /// <summary>
    /// The address a transport listener (<see cref="HybridNodeOptions.Transports"/>, by name) was bound to, as clients
    /// dial it (after start).
    /// </summary>
    public string TransportAddressOf(string name) =>
        _transportAddresses.TryGetValue(name, out var address) ? address : throw new KeyNotFoundException($"no transport listener '{name}'");

    /// <summary>
    /// Adds a front end listening on <paramref name="port"/> (0 = ephemeral) of <see cref="HybridNodeOptions.BindAddress"/>;
    /// its connections run on the node's workers. Call before <see cref="StartAsync"/>.
    /// </summary>
    public void AddListener(string name, int port, IConnectionHandler handler)
    {
        if (_state != 0)
            throw new InvalidOperationException("add listeners before StartAsync");
        _frontEnds.Add((name, port, handler));
    }

    /// <summary>
    /// Hook for front ends compiled into this assembly (the RESP front end implements it in <c>Resp/</c>):
    /// called by <see cref="StartAsync"/> after the store and tenants exist and before listeners bind; it calls
    /// <see cref="AddListener"/> (e.g. with <see cref="HybridNodeOptions.RespPort"/> when it is not -1).
    /// </summary>
    partial void RegisterFrontEnds();

    /// <summary>
    /// Raised once when the store can no longer make writes durable (its operation log's commit failed: a full disk, an
    /// I/O error); no write is acknowledged after it in sync durability. The host should stop the node.
    /// </summary>
    public event Action<Exception>? StorageFailed;

    /// <summary>
    /// Opens the tenants and the store, starts the workers and binds every listener. Refuses to start when the node
    /// listens beyond loopback (its bind address, or a transport listener on a network link) and some tenant has no
    /// secret (every tenant must authenticate then).
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
            throw new InvalidOperationException("a node starts once");
        CheckCpus(Options.Cpus);
        _dataLock = Options.DataDirectory is { } directory ? DataDirectoryLock.Acquire(directory) : null;
        try
        {
            _tenants = TenantRegistry.Open(Options.DataDirectory);
            EnsureTenantsMayConnect(_tenants);
            // Unheard (a host that does not handle it), the failure ends the process as before rather than leave a node
            // serving writes that never become durable.
            var storeOptions = Options.ToStoreOptions() with
            {
                OnCommitFailure = e => (StorageFailed ?? (_ => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e)))(e),
            };
            _store = Options.StoreFactory is { } factory ? factory(storeOptions) : FasterKvStore.Open(storeOptions);
        }
        catch
        {
            ReleaseDataDirectory();
            throw;
        }
        try
        {
            _view = new NodeView(Options.Workers, Options.InitialView, Options.InitialOwnedSlots);
            _workers = Enumerable.Range(0, Options.Workers).Select(i => new Worker(this, i)).ToArray();
            _view.Changed += () =>
            {
                foreach (var worker in _workers)
                    worker.Wake();
            };
            if (Options.NativePort >= 0)
                _frontEnds.Insert(0, ("native", Options.NativePort, new NativeHandler(Options.Limits, Options.Durability == DurabilityMode.Sync)));
            RegisterFrontEnds();
            foreach (var worker in _workers)
                worker.Start(_workers);
            StartSocketEngine();
            foreach (var (name, port, handler) in _frontEnds)
                Listen(name, port, handler);
            foreach (var transport in Options.Transports)
                ListenOnTransport(transport);
            if (Options.MetricsPort >= 0)
                _metricsServer = MetricsServer.Start(new IPEndPoint(Options.MetricsBindAddress ?? IPAddress.Loopback, Options.MetricsPort), ScrapeMetrics, _stopping.Token);
            if (Options.HandshakeTimeout != Timeout.InfiniteTimeSpan)
                _handshakeSweep = new Timer(_ => CloseSlowHandshakes(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        }
        catch
        {
            StopCore();
            throw;
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// <see cref="HybridNodeOptions.Cpus"/>: each CPU must be one this process may run on, so that a bad list fails the
    /// start with its reason instead of a worker's thread.
    /// </summary>
    private static void CheckCpus(IReadOnlyList<int> cpus)
    {
        if (cpus.Count > 0 && Transport.ThreadScheduling.CheckCpus(cpus) is { } failure)
            throw new ArgumentException(failure);
    }

    private void EnsureTenantsMayConnect(TenantRegistry tenants)
    {
        if (Options.IsLoopbackOnly)
        {
            if (!tenants.TryGet(TenantInfo.DefaultName, out _))
            {
                // Id 1 when free: a cluster reserves it for default, and a directory that served exposed (as a cluster
                // node, say) holds the cluster's tenants from id 2 but no default: a later id would refuse to rejoin.
                if (tenants.TryGet(TenantInfo.DefaultId, out _))
                    tenants.Create(TenantInfo.DefaultName, []);
                else
                    tenants.Apply(new TenantInfo(TenantInfo.DefaultId, TenantInfo.DefaultName, [], 0, 0));
            }
            return;
        }
        var open = tenants.All.Where(t => !t.RequiresAuth).Select(t => t.Name).ToList();
        if (open.Count > 0)
        {
            throw new InvalidOperationException(
                $"listening on {ExposureDescription()} requires AUTH for every tenant, but these have no secret: {string.Join(", ", open)} "
                + $"(give each one with 'hybrid tenant secret NAME --data-dir {Options.DataDirectory}' while the node is stopped)");
        }
    }

    /// <summary>What makes the node reachable from another host: a non-loopback bind address and every listener on a network link.</summary>
    private string ExposureDescription()
    {
        var exposed = Options.Transports.Where(t => !t.IsHostLocal)
            .Select(t => t.Options.Kind == TransportKind.Dpdk ? $"{t.Name} ({t.Options.Dpdk.Vdev})" : $"{t.Name}:{t.Address}")
            .ToList();
        if (!IPAddress.IsLoopback(Options.BindAddress))
            exposed.Insert(0, Options.BindAddress.ToString());
        return string.Join(", ", exposed);
    }

    private void StartSocketEngine()
    {
        SocketEngine = Options.SocketEngine;
        if (SocketEngine == SocketEngine.Auto)
        {
            SocketEngine = Transport.Polling.SocketPoller.IsAvailable(out var why) ? SocketEngine.Polled : SocketEngine.DotNet;
            SocketEngineFallback = why;
        }
        if (SocketEngine == SocketEngine.Polled)
            _pollers = new FrontPollers(Math.Min(Options.PollerThreads, Options.Workers), Worker.StackBytes, Options.PollerSpin, Options.Cpus, i => _workers[i].IsAsleep); // a connection's poller is its worker's index modulo the count
    }

    private void Listen(string name, int port, IConnectionHandler handler)
    {
        var socket = new Socket(Options.BindAddress.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(Options.BindAddress, port));
        socket.Listen(512);
        _listenSockets.Add(socket);
        _boundPorts[name] = ((IPEndPoint)socket.LocalEndPoint!).Port;
        _ = AcceptLoop(socket.AcceptAsync, accepted =>
        {
            if (_connections.Count >= Options.MaxConnections)
            {
                Interlocked.Increment(ref _refusedConnections);
                accepted.Dispose();
                return;
            }
            accepted.NoDelay = true;
            Admit(name, accepted.RemoteEndPoint, (worker, context) => NewSocketConnection(accepted, handler, worker, context));
        });
    }

    /// <summary>
    /// A connection on an accepted socket, on the node's socket engine. With the pollers, the socket is watched before
    /// the connection is admitted; a socket epoll refuses (limits, memory) is closed and the listener goes on.
    /// </summary>
    private Connection NewSocketConnection(Socket accepted, IConnectionHandler handler, Worker worker, ConnectionContext context)
    {
        int maxInput = Options.Limits.MaxFrameBytes;
        if (_pollers is not { } pollers)
            return new SocketConnection(this, accepted, handler, worker, context, maxInput);
        var connection = new PolledConnection(this, accepted, pollers, handler, worker, context, maxInput);
        try
        {
            pollers.Add(connection);
        }
        catch (TransportException)
        {
            accepted.Dispose();
            throw;
        }
        return connection;
    }

    /// <summary>Accepts until the node stops; a failed accept (one broken handshake) does not end the listener.</summary>
    private async Task AcceptLoop<T>(Func<CancellationToken, ValueTask<T>> accept, Action<T> admit)
    {
        while (!_stopping.IsCancellationRequested)
        {
            T accepted;
            try
            {
                accepted = await accept(_stopping.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or TransportException)
            {
                if (_stopping.IsCancellationRequested || e is TransportException { Error: TransportError.Closed })
                    return;
                continue;
            }
            try
            {
                admit(accepted);
            }
            catch (TransportException)
            {
                // This one connection could not be set up (its socket is closed); the listener goes on.
            }
        }
    }

    /// <summary>Gives an accepted connection a session id and a worker (round robin) and queues it there.</summary>
    private void Admit(string name, EndPoint? remote, Func<Worker, ConnectionContext, Connection> create)
    {
        var worker = _workers[(int)((uint)Interlocked.Increment(ref _nextWorker) % (uint)_workers.Length)];
        var context = new ConnectionContext((ulong)Interlocked.Increment(ref _nextSession), remote, name);
        var connection = create(worker, context);
        context.Connection = connection;
        _connections.TryAdd(connection, 0);
        worker.Enqueue(connection);
    }

    /// <summary>
    /// Starts a transport listener: native-protocol sessions over shared memory, DPDK or length-prefixed TCP, on the
    /// same workers and front end as the native socket (one message = one frame, one reply per frame).
    /// </summary>
    private void ListenOnTransport(TransportListenerOptions listen)
    {
        var options = listen.Options.MaxMessageBytes < Options.Limits.MaxFrameBytes
            ? listen.Options with { MaxMessageBytes = Options.Limits.MaxFrameBytes }
            : listen.Options;
        var transport = TransportFactory.Create(options);
        ITransportListener listener;
        try
        {
            listener = transport.Listen(listen.Address);
        }
        catch
        {
            transport.Dispose();
            throw;
        }
        _transports.Add((transport, listener));
        _transportAddresses[listen.Name] = listener.Address;
        var handler = new NativeHandler(Options.Limits, Options.Durability == DurabilityMode.Sync);
        _ = AcceptLoop(listener.AcceptAsync, link =>
            Admit(listen.Name, null, (worker, context) => new TransportConnection(this, link, handler, worker, context, Options.TransportPollWindow, _stopping.Token)));
    }

    internal void OnConnectionClosed(Connection connection) => _connections.TryRemove(connection, out _);

    /// <summary>The Prometheus text exposition of the node's metrics (what <c>/metrics</c> serves).</summary>
    public string ScrapeMetrics() => PrometheusWriter.Write(this, _workers, _connections.Count);

    /// <summary>
    /// Stops accepting, closes every connection, stops the workers (pending reads are completed first) and closes
    /// the store (a clean close: Async mode loses nothing).
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.CompareExchange(ref _state, 2, 1) != 1)
            return;
        _stopping.Cancel();
        foreach (var socket in _listenSockets)
            socket.Dispose();
        await DisposeTransportListenersAsync().ConfigureAwait(false);
        foreach (var connection in _connections.Keys)
            connection.Abort();
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!_connections.IsEmpty && DateTime.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
            await Task.Delay(10, CancellationToken.None).ConfigureAwait(false);
        StopCore();
    }

    /// <summary>
    /// Closes every connection that has not authenticated within <see cref="HybridNodeOptions.HandshakeTimeout"/> (a
    /// timer, about once a second): an idle or trickling unauthenticated client holds buffers and a descriptor.
    /// </summary>
    private void CloseSlowHandshakes()
    {
        long limit = (long)(Options.HandshakeTimeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var connection in _connections.Keys)
        {
            // Socket connections only: aborting one shuts its socket down, which the worker holding it sees as the end of
            // input. A message transport's session waits in its own receive, which an abort does not wake.
            var context = connection.Context;
            if (connection is (PolledConnection or SocketConnection) && context.Tenant is null && now - context.OpenedTicks > limit
                && Interlocked.Exchange(ref context.HandshakeExpired, 1) == 0)
            {
                Interlocked.Increment(ref _handshakeTimeouts);
                connection.Abort();
            }
        }
    }

    private void StopCore()
    {
        _stopping.Cancel();
        _handshakeSweep?.Dispose();
        _metricsServer?.Dispose();
        foreach (var socket in _listenSockets)
            socket.Dispose();
        DisposeTransportListenersAsync().AsTask().GetAwaiter().GetResult();
        foreach (var worker in _workers)
            worker.Stop();
        // After the workers: nothing drives a connection any more, so a socket that did not finish closing can go.
        _pollers?.Dispose();
        _pollers = null;
        foreach (var connection in _connections.Keys)
        {
            if (connection is PolledConnection polled)
                polled.CloseAfterStop();
        }
        // After the workers: a transport's Dispose says goodbye to its sessions, then (DPDK) stops polling and closes the port.
        foreach (var (transport, _) in _transports)
            transport.Dispose();
        _transports.Clear();
        _store?.Dispose();
        _store = null;
        ReleaseDataDirectory();
    }

    private void ReleaseDataDirectory()
    {
        _dataLock?.Dispose();
        _dataLock = null;
    }

    private async ValueTask DisposeTransportListenersAsync()
    {
        foreach (var (_, listener) in _transports)
        {
            try
            {
                await listener.DisposeAsync().ConfigureAwait(false);
            }
            catch (TransportException)
            {
                // Already closed.
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
