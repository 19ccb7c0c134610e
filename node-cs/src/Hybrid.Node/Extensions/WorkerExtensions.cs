using System.Collections.Concurrent;
using System.Text;
using Hybrid.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Extensions;

/// <summary>
/// A connection state that can wait for extension results (native sessions, RESP FCALL): the worker hands it each
/// result of an invocation or install it started with a cookie from <see cref="WorkerExtensions.Cookie"/>.
/// </summary>
internal interface IExtensionResultTarget
{
    /// <summary>
    /// A result arrived for <paramref name="token"/>. Return true when the connection has nothing pending anymore:
    /// the worker then sends <paramref name="output"/> and resumes the connection. <paramref name="value"/> is valid
    /// only during the call.
    /// </summary>
    bool OnExtensionResult(IWorkerContext worker, ConnectionContext connection, uint token, Status status, ulong version, ReadOnlySpan<byte> value, FrameBuffer output);
}

/// <summary>
/// One worker's side of tenant extensions: its <see cref="ExtensionScheduler"/> (coroutines run on this worker's
/// thread; idle workers steal), the store extensions use here, and the queue through which results finished
/// elsewhere (installs compiled on the control thread) come back to this worker. Used only by the worker's thread,
/// except <see cref="Post"/>.
/// </summary>
/// <remarks>
/// Results map to wire statuses in one place (<see cref="Map"/>): Ok + response; NotFound; QuotaExceeded (the tenant's
/// extension CPU quota, version 6); ExtensionFailed with the <see cref="ExtensionStatus"/> as version for an invocation
/// that threw or was stopped (CPU, memory or stack budget, quarantine). The error text is the value.
/// </remarks>
public sealed class WorkerExtensions : IExtensionResultSink
{
    /// <summary>Coroutine steps a worker runs between two looks at its connections (each step is at most one slice).</summary>
    internal const int StepsPerRound = 1;

    /// <summary>Stack a thread needs to run extension steps (the 256 KiB stack budget plus 48 nested exception dispatches).</summary>
    private const long MinStepStackBytes = 2 << 20;

    /// <summary>
    /// True when the runtime was started with a default thread stack of at least <see cref="MinStepStackBytes"/>
    /// (<c>DOTNET_DefaultStackSize</c>, hexadecimal bytes, e.g. <c>800000</c> = 8 MiB): then thread-pool I/O threads
    /// may run first steps too. The runtime's own default for such threads is 1.5 MiB.
    /// </summary>
    private static readonly bool s_largeDefaultStacks = DefaultStackBytes() >= MinStepStackBytes;

    private readonly Dispatch.Worker _worker;
    private readonly WorkerExtensionStore _store;
    private readonly ConcurrentQueue<(long Cookie, Status Status, ulong Version, byte[] Value)> _posted = new();
    private readonly FrameBuffer _inlineValue = new(256);
    private long _inlineCookie = -1;
    private bool _inlineDone;
    private Status _inlineStatus;
    private ulong _inlineVersion;

    internal WorkerExtensions(Dispatch.Worker worker, NodeExtensions node, IKvSession session)
    {
        _worker = worker;
        Node = node;
        _store = new WorkerExtensionStore(session, worker);
        Scheduler = node.Host.CreateScheduler(_store, this);
    }

    /// <summary>The node's extensions (host, control thread, quotas).</summary>
    internal NodeExtensions Node { get; }

    /// <summary>This worker's coroutine scheduler.</summary>
    internal ExtensionScheduler Scheduler { get; }

    /// <summary>Commit sequence of the last write an extension made on this worker, or made (by a thief) for an invocation answered here.</summary>
    internal long LastWriteSequence => Math.Max(_store.LastWriteSequence, Scheduler.DeliveredWriteSequence);

    /// <summary>True when something is queued here (coroutines to resume, posted results to deliver).</summary>
    internal bool HasWork => Scheduler.QueueLength > 0 || !_posted.IsEmpty;

    /// <summary>The cookie that routes a result back to <paramref name="connection"/>'s <paramref name="token"/> on this worker.</summary>
    internal long Cookie(ConnectionContext connection, uint token) => (long)_worker.PendingContext(connection, token);

    /// <summary>
    /// Starts an invocation and runs its first step now. True when it already finished: its result is in
    /// <see cref="InlineStatus"/>, <see cref="InlineVersion"/> and <see cref="InlineValue"/> (valid until the next
    /// call). False: the result will come to the connection's <see cref="IExtensionResultTarget"/> later.
    /// </summary>
    internal bool Invoke(ExtensionHandle handle, ReadOnlySpan<byte> args, long cookie)
    {
        _inlineCookie = cookie;
        _inlineDone = false;
        try
        {
            // Extension steps need a large stack (the stack check assumes >= 2 MiB): when an I/O thread borrowed the
            // worker (Worker.TryRunInline), the first step runs there only if the process gave every thread such a
            // stack (DOTNET_DefaultStackSize); otherwise the invocation is queued for the worker's own thread.
            Scheduler.Invoke(handle, args, cookie, runFirstStep: _worker.OnOwnThread || s_largeDefaultStacks);
        }
        finally
        {
            _inlineCookie = -1;
        }
        return _inlineDone;
    }

    /// <summary>The status of the invocation that finished inside <see cref="Invoke"/>.</summary>
    internal Status InlineStatus => _inlineStatus;

    /// <summary>The version field of that result (the <see cref="ExtensionStatus"/> of a failure).</summary>
    internal ulong InlineVersion => _inlineVersion;

    /// <summary>The response (or error text) of that result.</summary>
    internal ReadOnlySpan<byte> InlineValue => _inlineValue.Written;

    /// <summary>Queues an install or uninstall of the session's tenant for the control thread; the result comes back here.</summary>
    internal void Submit(uint tenant, string name, string? source, long cookie) => Node.Submit(tenant, name, source, cookie, this);

    /// <summary>From any thread: a result for <paramref name="cookie"/> that this worker delivers at its next round.</summary>
    internal void Post(long cookie, Status status, ulong version, byte[] value)
    {
        _posted.Enqueue((cookie, status, version, value));
        _worker.Wake();
    }

    /// <summary>One round on the worker's thread: posted results, then a few coroutine steps. True if it did anything.</summary>
    internal bool Poll()
    {
        bool worked = false;
        while (_posted.TryDequeue(out var posted))
        {
            _worker.DeliverExtensionResult(posted.Cookie, posted.Status, posted.Version, posted.Value);
            worked = true;
        }
        return Scheduler.Run(StepsPerRound) > 0 || worked;
    }

    /// <inheritdoc />
    void IExtensionResultSink.OnCompleted(long cookie, ExtensionStatus status, ReadOnlySpan<byte> response, string? error)
    {
        var (wire, version) = Map(status);
        if (cookie == _inlineCookie)
        {
            _inlineDone = true;
            _inlineStatus = wire;
            _inlineVersion = version;
            _inlineValue.Clear();
            if (status == ExtensionStatus.Ok)
                response.CopyTo(_inlineValue.Append(response.Length));
            else if (error is not null)
                Encoding.UTF8.GetBytes(error, _inlineValue.Append(Encoding.UTF8.GetByteCount(error)));
            return;
        }
        if (status == ExtensionStatus.Ok)
            _worker.DeliverExtensionResult(cookie, wire, version, response);
        else
            _worker.DeliverExtensionResult(cookie, wire, version, error is null ? [] : Encoding.UTF8.GetBytes(error));
    }

    private static long DefaultStackBytes()
    {
        var text = Environment.GetEnvironmentVariable("DOTNET_DefaultStackSize") ?? Environment.GetEnvironmentVariable("COMPlus_DefaultStackSize");
        return long.TryParse(text, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out long bytes) ? bytes : 0;
    }

    /// <summary>The wire status (and version field) of an extension outcome.</summary>
    internal static (Status Status, ulong Version) Map(ExtensionStatus status) => status switch
    {
        ExtensionStatus.Ok => (Status.Ok, 0),
        ExtensionStatus.NotFound => (Status.NotFound, 0),
        ExtensionStatus.Throttled => (Status.QuotaExceeded, (ulong)status),
        _ => (Status.ExtensionFailed, (ulong)status),
    };
}
