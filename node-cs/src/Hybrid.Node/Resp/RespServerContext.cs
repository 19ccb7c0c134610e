using System.Collections.Concurrent;
using System.Net;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>A tenant as a RESP connection sees it: who it is and how the storage adapter finds its data.</summary>
/// <param name="Name">The tenant's name (what <c>AUTH tenant secret</c> names).</param>
/// <param name="Id">The tenant's id in the store (keys are stored under (tenant id, table, key)).</param>
public sealed record RespTenant(string Name, uint Id);

/// <summary>Checks tenant credentials for AUTH and HELLO AUTH. Implemented by the node's tenant registry.</summary>
public interface IRespTenantDirectory
{
    /// <summary>
    /// The tenant a connection uses before any AUTH when the listener does not require AUTH: the default tenant, or
    /// null when it needs AUTH after all (it was given a secret) or does not exist.
    /// </summary>
    RespTenant? DefaultTenant { get; }

    /// <summary>
    /// The tenant when <paramref name="secret"/> is its secret, else null (counted as a failed authentication). Called
    /// rarely (AUTH), may allocate.
    /// </summary>
    RespTenant? Authenticate(string tenant, ReadOnlySpan<byte> secret);
}

/// <summary>One contiguous range of slots and the node that serves it (for CLUSTER SLOTS / SHARDS and MOVED).</summary>
/// <param name="Start">First slot (inclusive).</param>
/// <param name="End">Last slot (inclusive).</param>
/// <param name="Host">Host (IP) clients connect to for RESP.</param>
/// <param name="Port">That node's RESP port.</param>
/// <param name="NodeId">40-character node id, as Redis Cluster prints it.</param>
public sealed record RespSlotRange(int Start, int End, string Host, int Port, string NodeId);

/// <summary>
/// Which slots this node serves. The RESP path asks it only when <see cref="OwnsAllSlots"/> is false
/// (a single node skips hashing keys altogether); a key whose slot is served elsewhere gets
/// <c>-MOVED slot host:port</c> and is not executed.
/// </summary>
public interface IRespSlotMap
{
    /// <summary>True when this node serves every slot (a single node): no per-key check is done.</summary>
    bool OwnsAllSlots { get; }

    /// <summary>Null when this node serves <paramref name="slot"/>; otherwise the owner's "host:port".</summary>
    string? RedirectFor(int slot);

    /// <summary>The current ranges of the whole cluster, for CLUSTER SLOTS / SHARDS.</summary>
    IReadOnlyList<RespSlotRange> Ranges { get; }

    /// <summary>This node's id (40 hex characters).</summary>
    string MyNodeId { get; }
}

/// <summary>The slot map of a single node: it serves all 16384 slots.</summary>
public sealed class SingleNodeSlotMap : IRespSlotMap
{
    /// <summary>Creates the map of a node reachable at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public SingleNodeSlotMap(string host, int port)
    {
        MyNodeId = Convert.ToHexStringLower(System.Security.Cryptography.SHA1.HashData(System.Text.Encoding.UTF8.GetBytes($"{host}:{port}")));
        Ranges = [new RespSlotRange(0, Slot.Count - 1, host, port, MyNodeId)];
    }

    /// <inheritdoc />
    public bool OwnsAllSlots => true;

    /// <inheritdoc />
    public string? RedirectFor(int slot) => null;

    /// <inheritdoc />
    public IReadOnlyList<RespSlotRange> Ranges { get; }

    /// <inheritdoc />
    public string MyNodeId { get; }
}

/// <summary>Settings and shared services of one RESP listener; shared read-only by all its connections.</summary>
public sealed class RespServerContext
{
    private long _nextClientId;

    /// <summary>Creates the context.</summary>
    /// <param name="tenants">Credentials check for AUTH.</param>
    /// <param name="requireAuth">
    /// False only on the embedded default (loopback): connections start as the default tenant.
    /// Otherwise every connection must AUTH before any data command (<c>-NOAUTH</c>).
    /// </param>
    /// <param name="slots">Slot ownership (a <see cref="SingleNodeSlotMap"/> on a single node).</param>
    /// <param name="endpoint">The RESP endpoint (for INFO); asked lazily, so a port bound later (port 0) is seen.</param>
    /// <param name="clusterEnabled">True when the node is part of a cluster (CLUSTER commands answer, INFO says cluster).</param>
    /// <param name="limits">Request limits; null = <see cref="RespLimits.Default"/>.</param>
    /// <param name="store">The store, for INFO memory/keyspace figures and Sync durability; null in parser-only tests.</param>
    public RespServerContext(IRespTenantDirectory tenants, bool requireAuth, IRespSlotMap slots, Func<IPEndPoint> endpoint, bool clusterEnabled = false, RespLimits? limits = null, IKvStore? store = null)
    {
        Store = store;
        Tenants = tenants;
        RequireAuth = requireAuth;
        Slots = slots;
        _endpoint = endpoint;
        ClusterEnabled = clusterEnabled;
        Limits = limits ?? RespLimits.Default;
    }

    /// <summary>The rule for listeners: AUTH is required unless the listener is bound to a loopback address only.</summary>
    public static bool AuthRequiredFor(IPAddress listenAddress) => !IPAddress.IsLoopback(listenAddress);

    /// <summary>Credentials check for AUTH.</summary>
    public IRespTenantDirectory Tenants { get; }

    /// <summary>The store (INFO figures, Sync durability), if known.</summary>
    public IKvStore? Store { get; }

    /// <summary>When true, data commands need AUTH first.</summary>
    public bool RequireAuth { get; }

    /// <summary>Slot ownership for MOVED and CLUSTER replies.</summary>
    public IRespSlotMap Slots { get; }

    private readonly Func<IPEndPoint> _endpoint;

    /// <summary>The listener's endpoint.</summary>
    public IPEndPoint Endpoint => _endpoint();

    /// <summary>True when this node runs in cluster mode.</summary>
    public bool ClusterEnabled { get; }

    /// <summary>Request limits.</summary>
    public RespLimits Limits { get; }

    /// <summary>When the listener started (INFO uptime).</summary>
    public DateTime StartedUtc { get; } = DateTime.UtcNow;

    /// <summary>Connections open now (INFO clients).</summary>
    public int ConnectedClients => (int)Interlocked.Read(ref _connected);

    private long _connected;

    /// <summary>Connections accepted since the listener started (INFO stats; each drew a client id).</summary>
    public long ConnectionsReceived => Interlocked.Read(ref _nextClientId);

    /// <summary>Total commands processed, summed from connections when they flush (INFO stats).</summary>
    public long CommandsProcessed => Interlocked.Read(ref _commands);

    private long _commands;

    /// <summary>Storage operations that went pending (record on disk) and parked their connection (INFO stats).</summary>
    public long ParkedOperations => Interlocked.Read(ref _parked);

    private long _parked;

    internal void CountParked() => Interlocked.Increment(ref _parked);

    internal long NextClientId() => Interlocked.Increment(ref _nextClientId);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, RespSession> _sessions = new();

    /// <summary>The connections open now (CLIENT LIST), by client id.</summary>
    internal IEnumerable<RespSession> Sessions => _sessions.Values;

    internal void ConnectionOpened(RespSession session)
    {
        Interlocked.Increment(ref _connected);
        _sessions[session.ClientId] = session;
    }

    internal void ConnectionClosed(RespSession session)
    {
        Interlocked.Decrement(ref _connected);
        _sessions.TryRemove(session.ClientId, out _);
    }

    internal void AddCommands(long count) => Interlocked.Add(ref _commands, count);

    private readonly ConcurrentDictionary<uint, TenantCounts> _byTenant = new();

    /// <summary>
    /// One tenant's share of the figures INFO reports: a tenant's INFO shows its own, never the node's (which would tell
    /// it about the other tenants' traffic); the node-wide figures go to the default tenant (the operator's, on a
    /// loopback-only node) and to the metrics port.
    /// </summary>
    internal TenantCounts CountsOf(uint tenant) => _byTenant.GetOrAdd(tenant, static _ => new TenantCounts());

    /// <summary>
    /// Connections open as a tenant now, connections that became the tenant since the start, and the commands they ran
    /// (summed when connections flush).
    /// </summary>
    internal sealed class TenantCounts
    {
        internal long Connected;
        internal long Received;
        internal long Commands;
    }
}
