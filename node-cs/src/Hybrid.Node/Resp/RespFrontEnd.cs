using System.Diagnostics;
using System.Security.Cryptography;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// The RESP front end on the node's workers: each connection is a <see cref="RespSession"/> run with the worker's
/// storage session; pending reads park the connection and resume through the node (see <see cref="IConnectionState"/>).
/// </summary>
internal sealed class RespFrontEnd(RespServerContext context, TenantRegistry tenants, bool syncDurability) : IConnectionHandler
{
    /// <inheritdoc />
    public string Name => "resp";

    /// <inheritdoc />
    public IConnectionState Open(ConnectionContext connection) => new RespConnection(new RespSession(context), connection, tenants, syncDurability);
}

/// <summary>
/// One RESP connection as the node sees it: forwards to <see cref="RespSession"/>, charges the tenant's quotas on the
/// running worker (<see cref="IRespAdmission"/>), and reports durability and metrics.
/// </summary>
internal sealed class RespConnection : IConnectionState, IRespAdmission, IRespFunctions, IExtensionResultTarget
{
    private readonly RespSession _session;
    private readonly ConnectionContext _connection;
    private readonly ExtensionNameCache _extensionNames = new();
    private readonly bool _syncDurability;
    private TenantInfo? _tenant;
    private IWorkerContext? _worker; // the worker running the current Process call (a thief's, after a steal)

    public RespConnection(RespSession session, ConnectionContext connection, TenantRegistry tenants, bool syncDurability)
    {
        _session = session;
        _session.RemoteAddress = connection.RemoteEndPoint?.ToString();
        _connection = connection;
        _syncDurability = syncDurability;
        // The node's view of the tenant (quotas, metrics) follows the RESP session's.
        _session.TenantChanged = t =>
        {
            _tenant = tenants.TryGet(t.Id, out var info) ? info : null;
            connection.Tenant = _tenant;
        };
        if (session.Tenant is { } initial)
        {
            _session.TenantChanged(initial);
        }
        _session.Admission = this;
        _session.Functions = this;
    }

    /// <inheritdoc />
    public bool Invoke(uint tenant, ReadOnlySpan<byte> name, ReadOnlySpan<byte> args, out Status status, out ulong version, out ReadOnlySpan<byte> value)
    {
        var extensions = (_worker ?? throw new InvalidOperationException("FCALL outside a worker call")).Extensions;
        var handle = _extensionNames.Resolve(extensions.Node.Host, tenant, name);
        if (handle is null)
        {
            status = Status.NotFound;
            version = 0;
            value = default;
            return true;
        }
        if (extensions.Invoke(handle, args, extensions.Cookie(_connection, 0)))
        {
            status = extensions.InlineStatus;
            version = extensions.InlineVersion;
            value = extensions.InlineValue;
            return true;
        }
        status = default;
        version = 0;
        value = default;
        return false;
    }

    /// <inheritdoc />
    public IReadOnlyList<(string Name, IReadOnlyList<string> Invocations)> List(uint tenant) =>
        (_worker ?? throw new InvalidOperationException("FUNCTION LIST outside a worker call")).Extensions.Node.Host.ListInstalls(tenant);

    /// <inheritdoc />
    public bool OnExtensionResult(IWorkerContext worker, ConnectionContext connection, uint token, Status status, ulong version, ReadOnlySpan<byte> value, FrameBuffer output)
    {
        var done = _session.OnFunctionResult(status, version, value, output);
        NoteWrites(worker, connection);
        return done;
    }

    /// <inheritdoc />
    public bool TryChargeOps(int operations) => _tenant is null || _worker is null || _worker.TryChargeOps(_tenant, operations);

    /// <inheritdoc />
    public bool TryChargeBytes(long bytes) => _tenant is null || _worker is null || _worker.TryChargeBytes(_tenant, bytes);

    /// <inheritdoc />
    public ProcessOutcome Process(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> input, FrameBuffer output, out int consumed)
    {
        var started = Stopwatch.GetTimestamp();
        _session.LastActive = started;
        var commandsBefore = _session.CommandCount;
        long writesBefore = LastWrite(worker);
        _worker = worker;
        _session.OwnedSlots = worker.OwnedSlots;
        var outcome = _session.Process(input, worker.Session, output, worker.PendingContext(connection, 0), out consumed);
        _worker = null;
        // Any write this call made inline (a command that forgot its flag included) holds the replies in Sync mode.
        NoteWrites(worker, connection, LastWrite(worker) != writesBefore);
        if (_tenant is not null)
        {
            worker.CountOps(_tenant, OpKind.Other, (int)(_session.CommandCount - commandsBefore));
        }
        worker.RecordBatch(started);
        return outcome;
    }

    /// <inheritdoc />
    public bool HasPendingOperations => _session.IsParked;

    /// <inheritdoc />
    public bool RunsBetweenCompletions => false; // a parked command's reply may be half written in the output

    /// <inheritdoc />
    public bool OnCompleted(IWorkerContext worker, ConnectionContext connection, uint token, in StoreResult result, ReadOnlySpan<byte> value, FrameBuffer output)
    {
        var done = _session.OnCompleted(result, value, output);
        NoteWrites(worker, connection);
        return done;
    }

    /// <inheritdoc />
    public void OnEndOfInput(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> unconsumed, FrameBuffer output)
    {
        // Redis drops a half-sent command silently when the client goes away; so does this front end.
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    /// <summary>
    /// In Sync durability the node holds the replies until the last write is durable; in the other modes a reply never
    /// waits for a commit (Async promises durability within the commit interval, not before the reply).
    /// </summary>
    private void NoteWrites(IWorkerContext worker, ConnectionContext connection, bool wroteInline = false)
    {
        if ((_session.TakeWroteFlag() | wroteInline) && _syncDurability)
        {
            connection.RequiredDurableSequence = Math.Max(connection.RequiredDurableSequence, LastWrite(worker));
        }
    }

    private static long LastWrite(IWorkerContext worker) => Math.Max(worker.Session.LastWriteSequence, worker.Extensions.LastWriteSequence);
}

/// <summary>AUTH against the node's tenant registry: the password is the tenant's secret, compared in constant time.</summary>
internal sealed class RegistryTenantDirectory(TenantRegistry tenants) : IRespTenantDirectory
{
    /// <inheritdoc />
    public RespTenant? DefaultTenant => tenants.TryGet(TenantInfo.DefaultName, out var t) && !t.RequiresAuth
        ? new RespTenant(t.Name, t.Id)
        : null;

    /// <inheritdoc />
    public RespTenant? Authenticate(string tenant, ReadOnlySpan<byte> secret)
    {
        if (tenants.TryGet(tenant, out var t) && CryptographicOperations.FixedTimeEquals(t.Secret, secret))
            return new RespTenant(t.Name, t.Id);
        tenants.CountAuthFailure();
        return null;
    }
}
