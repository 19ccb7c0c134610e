using System.Buffers;
using Hybrid.Extensions;
using Hybrid.Extensions.Abstractions;
using Hybrid.Node.Hosting;
using Hybrid.Storage;

namespace Hybrid.Node.Extensions;

/// <summary>
/// What an extension reads and writes through, on one worker: a storage session of that worker (used only by its
/// thread, and by its extension steps only) and a scratch arena the values are read into. The tenant is always the
/// invocation's (the host passes it; the extension cannot name another), so an extension reaches only its own
/// tenant's tables.
/// </summary>
/// <remarks>
/// <para>
/// Zero copy: a step is a read run of the session (<see cref="IKvSession.BeginReadRun"/>) and a value in memory is lent
/// in place (<see cref="IKvSession.GetInPlace"/>): the extension's span covers the record in FASTER's log. Two things
/// keep that span right until the step ends. The record is pinned, so no write changes it in place (writes make a new
/// record). And the run keeps its epoch protection while values are lent, so their pages are not evicted: the meter's
/// pauses (<see cref="PauseStep"/>) only refresh the epoch when no lent value is near the log's head, and after every
/// call that may have let the protection go (a write, a disk wait, a refresh inside FASTER) the run takes it again and
/// checks the head is still below every lent value (<see cref="IKvSession.RetainInPlace"/>). If it is not, the
/// invocation is stopped there, before it can touch that memory again, with <see cref="ExtensionStatus.Evicted"/>.
/// </para>
/// <para>
/// Copies: a record read from disk, or one of a range still being pulled here by a migration, is copied once into this
/// arena and the extension gets a span over it. The arena is reset at every step start
/// (<see cref="IExtensionStepStore.BeginStep"/>), the only moment no span can be alive; inside a step it grows by
/// switching to a bigger array without moving earlier values, so every span of the step stays valid. Multi-key reads
/// pass their prefetch hint on (<see cref="Prefetch"/>).
/// </para>
/// <para>
/// Records on disk: a read (or a read-modify-write of Put/Delete) that goes <see cref="StoreStatus.Pending"/> is
/// completed synchronously for that call (<see cref="IKvSession.CompletePending"/> with wait) on this dedicated
/// session, so no other connection's completion is taken here and the extension sees a plain synchronous call.
/// The worker is blocked for that one disk read; the extension's CPU budget is billed for it.
/// </para>
/// </remarks>
internal sealed class WorkerExtensionStore : IExtensionStore, IExtensionStepStore, IBufferWriter<byte>, ICompletionSink
{
    private const int InitialArena = 64 * 1024;
    private readonly IKvSession _session;
    private readonly IWorkerContext _worker;
    private byte[] _arena = new byte[InitialArena];
    private int _used;
    private StoreResult _completed;
    private int _completedOffset;

    /// <summary>This step holds a value lent in place: every store call is followed by <see cref="Retain"/>.</summary>
    private bool _lent;

    /// <summary>This step was stopped because a lent value's memory may be gone (<see cref="Retain"/>).</summary>
    private ExtensionAbortedException? _stopped;

    internal WorkerExtensionStore(IKvSession session, IWorkerContext worker)
    {
        _session = session;
        _worker = worker;
    }

    /// <summary>Commit sequence of the last write extensions made on this worker (Sync durability waits for it).</summary>
    internal long LastWriteSequence => _session.LastWriteSequence;

    /// <inheritdoc />
    long IExtensionStepStore.WriteSequence => _session.LastWriteSequence;

    /// <inheritdoc />
    public void BeginStep()
    {
        _used = 0;
        _lent = false;
        _stopped = null;
        _session.BeginReadRun();
    }

    /// <inheritdoc />
    public void PauseStep()
    {
        ThrowIfStopped();
        try
        {
            _session.PauseReadRun();
        }
        finally
        {
            Retain();
        }
    }

    /// <inheritdoc />
    public void EndStep()
    {
        _lent = false;
        _session.EndReadRun();
    }

    /// <summary>
    /// After every store call, also one that threw (it may have let the protection go first): the values lent this step
    /// are still in memory, or the invocation stops here. No extension code runs after the stop: a stopped invocation
    /// skips its finally blocks (<c>Meter.RestoreInFinally</c>) and catch starts rethrow; the stop is also sticky here
    /// (every later store call of the step throws it again).
    /// </summary>
    private void Retain()
    {
        if (_lent && !_session.RetainInPlace())
        {
            _stopped ??= Meter.Stop(ExtensionStatus.Evicted,
                "the store evicted the memory under a value this invocation was reading in place (the log's memory is full); it was stopped there, and writes it made before stand: invoke it again if that is safe");
            throw _stopped;
        }
    }

    private void ThrowIfStopped()
    {
        if (_stopped is { } stopped)
            throw stopped;
    }

    /// <inheritdoc />
    public bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        ThrowIfStopped();
        StoreResult result;
        ReadOnlySpan<byte> lent;
        bool inPlace;
        int start;
        try
        {
            result = _session.GetInPlace((uint)tenant, table, key, this, out lent, out inPlace);
            _lent |= inPlace;
            // A copied value was written at the arena's end (GetSpan + Advance), which growing may have moved to a new array.
            start = _used - result.ValueLength;
            if (result.IsPending)
            {
                result = WaitPending();
                start = _completedOffset;
            }
        }
        finally
        {
            Retain();
        }
        if (result.Status == StoreStatus.Ok)
        {
            value = inPlace ? lent : _arena.AsSpan(start, result.ValueLength);
            return true;
        }
        value = default;
        if (result.Status is StoreStatus.NotFound)
            return false;
        throw new InvalidOperationException($"storage read failed: {result.Status}");
    }

    /// <inheritdoc />
    public void Prefetch(ulong tenant, uint table, ReadOnlySpan<byte> keys, int keySize)
    {
        ThrowIfStopped();
        _session.Prefetch((uint)tenant, table, keys, keySize);
    }

    /// <inheritdoc />
    public void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ThrowIfStopped();
        var info = TenantOf(tenant);
        if (!_worker.TryChargeBytes(info, key.Length + value.Length + StoreOptions.RecordOverheadBytes))
            throw new InvalidOperationException("the tenant's memory quota is spent: the write did not run");
        StoreResult result;
        try
        {
            result = _session.Put((uint)tenant, table, key, value, 0);
            if (result.IsPending)
                result = WaitPending();
        }
        finally
        {
            Retain();
        }
        if (result.Status != StoreStatus.Ok)
            throw new InvalidOperationException($"storage write failed: {result.Status}");
    }

    /// <inheritdoc />
    public bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key)
    {
        ThrowIfStopped();
        StoreResult result;
        try
        {
            result = _session.Delete((uint)tenant, table, key, 0);
            if (result.IsPending)
                result = WaitPending();
        }
        finally
        {
            Retain();
        }
        return result.Status switch
        {
            StoreStatus.Ok => true,
            StoreStatus.NotFound => false,
            _ => throw new InvalidOperationException($"storage delete failed: {result.Status}"),
        };
    }

    private Hybrid.Node.Tenants.TenantInfo TenantOf(ulong tenant) =>
        _worker.Tenants.TryGet((uint)tenant, out var info) ? info : throw new InvalidOperationException("the tenant no longer exists");

    /// <summary>The one pending operation of this session, completed synchronously (see remarks).</summary>
    private StoreResult WaitPending()
    {
        long started = Meter.BeginHostWait();
        _session.CompletePending(this, wait: true);
        Meter.EndHostWait(started);
        return _completed;
    }

    /// <inheritdoc />
    void ICompletionSink.OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
    {
        _completed = result;
        if (result.Status == StoreStatus.Ok && !value.IsEmpty)
        {
            value.CopyTo(GetSpan(value.Length));
            _completedOffset = _used;
            Advance(value.Length);
        }
    }

    /// <inheritdoc />
    public void Advance(int count) => _used += count;

    /// <inheritdoc />
    public Memory<byte> GetMemory(int sizeHint = 0) => _arena.AsMemory(Reserve(sizeHint));

    /// <inheritdoc />
    public Span<byte> GetSpan(int sizeHint = 0) => _arena.AsSpan(Reserve(sizeHint));

    /// <summary>
    /// Makes room for <paramref name="sizeHint"/> bytes. Growing switches to a new array and restarts at its front:
    /// spans handed out earlier in this step keep pointing into the old array, which stays alive while they do.
    /// </summary>
    private int Reserve(int sizeHint)
    {
        int need = Math.Max(sizeHint, 1);
        if (_arena.Length - _used < need)
        {
            _arena = new byte[Math.Max(_arena.Length * 2, need)];
            _used = 0;
        }
        return _used;
    }
}
