using System.Buffers;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The node's store as a migration target sees it (install it with <c>HybridNodeOptions.StoreFactory</c>): while a
/// range is being pulled here, a read that misses a key of that range does not answer NotFound but goes pending,
/// queues a batched priority pull of the key (<see cref="PullJob.PullForReadAsync"/>) and completes through the
/// worker's usual <see cref="IKvSession.CompletePending"/> once the key is installed (the read is then run again
/// locally). Conditional writes and read-modify-writes (CondPut, SET NX/XX, INCR, APPEND) of such keys wait for the
/// same pull first, so they decide on the latest record. Blind writes and deletes never wait: the pulled record is
/// applied insert-if-newer and cannot overwrite them.
/// </summary>
/// <remarks>
/// With no range incoming every call is passed straight through after one read of an empty array: the fast path pays
/// one volatile read per operation and nothing per batch. A read only costs a slot computation while a range is
/// incoming, and a pull only when it misses.
/// </remarks>
public sealed class MigratingStore(IKvStore inner) : IKvStore
{
    private volatile PullJob[] _incoming = [];
    private readonly Lock _lock = new();

    /// <summary>The wrapped store.</summary>
    public IKvStore Inner => inner;

    /// <summary>Misses that waited for a priority pull (for tests and metrics).</summary>
    public long PulledReads => Interlocked.Read(ref _pulledReads);

    private long _pulledReads;

    /// <summary>
    /// Reads of <paramref name="job"/>'s range that miss wait for its priority pulls from now on. A job registered
    /// earlier whose range lies within <paramref name="job"/>'s (one that failed, being replaced:
    /// <see cref="MigrationTarget.ResumePulls"/>) is removed and retired.
    /// </summary>
    public void AddIncoming(PullJob job)
    {
        PullJob[] replaced;
        lock (_lock)
        {
            replaced = [.. _incoming.Where(j => j.Range.Lo >= job.Range.Lo && j.Range.Hi <= job.Range.Hi)];
            _incoming = [.. _incoming.Where(j => !replaced.Contains(j)), job];
        }
        foreach (PullJob old in replaced)
            old.Retire();
    }

    /// <summary>The range of <paramref name="job"/> is complete here: misses answer NotFound again.</summary>
    public void RemoveIncoming(PullJob job)
    {
        lock (_lock)
            _incoming = [.. _incoming.Where(j => j != job)];
    }

    /// <summary>The pull job registered for a range that overlaps <paramref name="range"/>, if any (the latest registered).</summary>
    public PullJob? JobFor(SlotRange range)
    {
        PullJob[] jobs = _incoming;
        for (int i = jobs.Length - 1; i >= 0; i--)
        {
            if (jobs[i].Range.Lo <= range.Hi && range.Lo <= jobs[i].Range.Hi)
                return jobs[i];
        }
        return null;
    }

    internal PullJob? IncomingFor(ReadOnlySpan<byte> key)
    {
        PullJob[] jobs = _incoming;
        if (jobs.Length == 0)
            return null;
        int slot = Slot.Of(key);
        foreach (PullJob j in jobs)
        {
            if (j.Range.Contains(slot))
                return j;
        }
        return null;
    }

    internal void CountPulledRead() => Interlocked.Increment(ref _pulledReads);

    /// <inheritdoc />
    public StoreOptions Options => inner.Options;

    /// <inheritdoc />
    public ulong MaxVersion => inner.MaxVersion;

    /// <inheritdoc />
    public long Incarnation => inner.Incarnation;

    /// <inheritdoc />
    public IKvSession NewSession() => new MigratingSession(this, inner.NewSession());

    /// <inheritdoc />
    public ISlotScanner NewScanner() => inner.NewScanner();

    /// <inheritdoc />
    public ScanCursor[] PlanScan(int partitions, long from = 0) => inner.PlanScan(partitions, from);

    /// <inheritdoc />
    public void RaiseVersionFloor(ulong floor) => inner.RaiseVersionFloor(floor);

    /// <inheritdoc />
    public long DropSlots(int slotLo, int slotHi) => inner.DropSlots(slotLo, slotHi);

    /// <inheritdoc />
    public long TenantBytes(uint tenant) => inner.TenantBytes(tenant);

    /// <inheritdoc />
    public long TenantRecords(uint tenant) => inner.TenantRecords(tenant);

    /// <inheritdoc />
    public StoreMetrics GetMetrics() => inner.GetMetrics();

    /// <inheritdoc />
    public bool IsDurable(long sequence) => inner.IsDurable(sequence);

    /// <inheritdoc />
    public ValueTask WaitDurableAsync(long sequence, CancellationToken cancellationToken = default) => inner.WaitDurableAsync(sequence, cancellationToken);

    /// <inheritdoc />
    public ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default) => inner.CheckpointAsync(cancellationToken);

    /// <inheritdoc />
    public void Dispose() => inner.Dispose();
}

/// <summary>A worker's session on a <see cref="MigratingStore"/>: see there.</summary>
internal sealed class MigratingSession(MigratingStore store, IKvSession inner) : IKvSession, ICompletionSink
{
    private enum Op : byte { Get, Put, Delete, PutIfVersion, PutIfAbsent, PutIfExists, Increment, Append }

    /// <summary>An operation waiting for its key's priority pull, with copies of its arguments.</summary>
    private sealed record Waiting(Task Pulled, Op Op, uint Tenant, uint Table, byte[] Key, byte[] Value, ulong Expected, long Delta, ulong Context);

    private readonly List<Waiting> _waiting = [];
    private readonly List<Task> _skipped = [];
    private readonly Dictionary<ulong, (uint Tenant, uint Table, byte[] Key, PullJob Job)> _diskReads = [];
    private readonly ArrayBufferWriter<byte> _value = new(1024);
    private ICompletionSink? _sink;

    public int PendingCount => inner.PendingCount + _waiting.Count;

    /// <summary>Operations the owner must poll for (the inner store's disk reads); the others wait for pulls and call <see cref="Wake"/>.</summary>
    internal int PolledPendingCount => inner.PendingCount;

    /// <summary>Called when a pull that an operation of this session waits for has landed (on the thread that applied it): wakes the owner.</summary>
    internal Action? Wake { get; set; }

    public long LastWriteSequence => inner.LastWriteSequence;

    // Read runs and prefetch hints pass through: a miss that waits for a pull is not a store operation.
    public void BeginReadRun() => inner.BeginReadRun();

    public void PauseReadRun() => inner.PauseReadRun();

    public void EndReadRun() => inner.EndReadRun();

    public void Prefetch(uint tenant, uint table, ReadOnlySpan<byte> packedKeys, int keySize) => inner.Prefetch(tenant, table, packedKeys, keySize);

    public long PrefetchKey(uint tenant, uint table, ReadOnlySpan<byte> key) => inner.PrefetchKey(tenant, table, key);

    public void PrefetchRecords(long token) => inner.PrefetchRecords(token);

    public StoreResult Get(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, ulong context)
    {
        if (FindWaiting(tenant, table, key) is { } earlier)
            return Behind(earlier, Op.Get, default, 0, 0, context);
        StoreResult r = inner.Get(tenant, table, key, output, context);
        if (r.Status is StoreStatus.NotFound or StoreStatus.Pending && store.IncomingFor(key) is { } job)
        {
            if (r.IsPending)
                _diskReads[context] = (tenant, table, key.ToArray(), job); // a disk read may still miss: see OnCompleted
            else
                return Wait(job, Op.Get, tenant, table, key, default, 0, 0, context);
        }
        return r;
    }

    // In place only where no pull can be involved; a key of an incoming range (or behind a waiting operation) is read
    // as Get reads it, copied.
    public StoreResult GetInPlace(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, out ReadOnlySpan<byte> value, out bool inPlace)
    {
        if (_waiting.Count == 0 && store.IncomingFor(key) is null)
            return inner.GetInPlace(tenant, table, key, output, out value, out inPlace);
        value = default;
        inPlace = false;
        // The key may itself be a lent value, valid only until the read below refreshes the epoch: Get reads it after.
        return Get(tenant, table, key.ToArray(), output, 0);
    }

    public bool RetainInPlace() => inner.RetainInPlace();

    public void ReleaseReadRun() => inner.ReleaseReadRun();

    public int MultiGet(uint tenant, uint table, ReadOnlySpan<ReadOnlyMemory<byte>> keys, ulong firstContext, ICompletionSink sink)
    {
        bool incoming = false;
        foreach (ReadOnlyMemory<byte> k in keys)
            incoming |= store.IncomingFor(k.Span) is not null;
        if (!incoming)
            return inner.MultiGet(tenant, table, keys, firstContext, sink);
        int pending = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            _value.ResetWrittenCount();
            StoreResult r = Get(tenant, table, keys[i].Span, _value, firstContext + (ulong)i);
            if (r.IsPending)
                pending++;
            else
                sink.OnCompleted(firstContext + (ulong)i, r, _value.WrittenSpan);
        }
        return pending;
    }

    public StoreResult Put(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier
            ? Behind(earlier, Op.Put, value, 0, 0, context)
            : inner.Put(tenant, table, key, value, context);

    public StoreResult PutIfVersion(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier ? Behind(earlier, Op.PutIfVersion, value, expectedVersion, 0, context) :
        store.IncomingFor(key) is { } job
            ? Wait(job, Op.PutIfVersion, tenant, table, key, value, expectedVersion, 0, context)
            : inner.PutIfVersion(tenant, table, key, value, expectedVersion, context);

    public StoreResult PutIfAbsent(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier ? Behind(earlier, Op.PutIfAbsent, value, 0, 0, context) :
        store.IncomingFor(key) is { } job
            ? Wait(job, Op.PutIfAbsent, tenant, table, key, value, 0, 0, context)
            : inner.PutIfAbsent(tenant, table, key, value, context);

    public StoreResult PutIfExists(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier ? Behind(earlier, Op.PutIfExists, value, 0, 0, context) :
        store.IncomingFor(key) is { } job
            ? Wait(job, Op.PutIfExists, tenant, table, key, value, 0, 0, context)
            : inner.PutIfExists(tenant, table, key, value, context);

    public StoreResult Delete(uint tenant, uint table, ReadOnlySpan<byte> key, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier
            ? Behind(earlier, Op.Delete, default, 0, 0, context)
            : inner.Delete(tenant, table, key, context);

    public StoreResult Increment(uint tenant, uint table, ReadOnlySpan<byte> key, long delta, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier ? Behind(earlier, Op.Increment, default, 0, delta, context) :
        store.IncomingFor(key) is { } job
            ? Wait(job, Op.Increment, tenant, table, key, default, 0, delta, context)
            : inner.Increment(tenant, table, key, delta, context);

    public StoreResult Append(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
        FindWaiting(tenant, table, key) is { } earlier ? Behind(earlier, Op.Append, value, 0, 0, context) :
        store.IncomingFor(key) is { } job
            ? Wait(job, Op.Append, tenant, table, key, value, 0, 0, context)
            : inner.Append(tenant, table, key, value, context);

    public StoreResult ApplyPulled(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version, ulong context) =>
        inner.ApplyPulled(tenant, table, key, value, version, context);

    public int CompletePending(ICompletionSink sink, bool wait = false)
    {
        int done = 0;
        while (true)
        {
            if (inner.PendingCount > 0)
            {
                _sink = sink;
                done += inner.CompletePending(_diskReads.Count > 0 ? this : sink, wait);
                _sink = null;
            }
            done += RunPulled(sink, wait);
            if (!wait || PendingCount == 0)
                return done;
        }
    }

    /// <summary>A disk read finished: a miss of an incoming key waits for its pull instead of answering NotFound.</summary>
    void ICompletionSink.OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
    {
        if (_diskReads.Remove(context, out var read) && result.Status == StoreStatus.NotFound)
        {
            Wait(read.Job, Op.Get, read.Tenant, read.Table, read.Key, default, 0, 0, context);
            return;
        }
        _sink!.OnCompleted(context, result, value);
    }

    private StoreResult Wait(PullJob job, Op op, uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expected, long delta, ulong context)
    {
        byte[] keyCopy = key.ToArray();
        Task pulled = job.PullForReadAsync(new PullKey(tenant, table, keyCopy));
        if (Wake is { } wake && !pulled.IsCompleted)
            pulled.GetAwaiter().UnsafeOnCompleted(wake);
        _waiting.Add(new Waiting(pulled, op, tenant, table, keyCopy, value.ToArray(), expected, delta, context));
        store.CountPulledRead();
        return StoreResult.Of(StoreStatus.Pending);
    }

    /// <summary>The latest operation on this key still waiting for its pull, if any (a short list: misses in flight).</summary>
    private Waiting? FindWaiting(uint tenant, uint table, ReadOnlySpan<byte> key)
    {
        if (_waiting.Count == 0)
            return null; // no migration miss in flight: every operation's only extra cost
        for (int i = _waiting.Count - 1; i >= 0; i--)
        {
            Waiting w = _waiting[i];
            if (w.Tenant == tenant && w.Table == table && key.SequenceEqual(w.Key))
                return w;
        }
        return null;
    }

    /// <summary>
    /// An operation on a key that an earlier operation of this session waits on: it waits for the same pull and runs
    /// after it (RunPulled keeps the list's order), so a write queued behind a read of the key is not seen by that
    /// read, and a read behind a write sees the write. Batches behind a parked one run before it completes
    /// (NativeSession), so this keeps each key's operations in request order.
    /// </summary>
    private StoreResult Behind(Waiting earlier, Op op, ReadOnlySpan<byte> value, ulong expected, long delta, ulong context)
    {
        _waiting.Add(new Waiting(earlier.Pulled, op, earlier.Tenant, earlier.Table, earlier.Key, value.ToArray(), expected, delta, context));
        return StoreResult.Of(StoreStatus.Pending);
    }

    /// <summary>Runs again, locally, every waiting operation whose pull finished and hands its result to <paramref name="sink"/>.</summary>
    private int RunPulled(ICompletionSink sink, bool wait)
    {
        int done = 0;
        _skipped.Clear();
        for (int i = 0; i < _waiting.Count; i++)
        {
            Waiting w = _waiting[i];
            // An operation queued behind an earlier one (Behind: the same task) must not run before it, even when the
            // task completes between the two checks: once an entry is skipped, so is every later entry of its task.
            if (!w.Pulled.IsCompleted || (_skipped.Count > 0 && _skipped.Contains(w.Pulled)))
            {
                if (!wait)
                {
                    _skipped.Add(w.Pulled);
                    continue;
                }
                // The pull's writes may need this thread's epoch to move (a full log allocates only past closed
                // pages): a read run must not hold it while waiting.
                inner.ReleaseReadRun();
                w.Pulled.ContinueWith(static _ => { }, TaskScheduler.Default).Wait();
            }
            _waiting.RemoveAt(i--);
            done++;
            _value.ResetWrittenCount();
            // A failed pull: the operation never ran here, and a resend can succeed once the pulls start again.
            StoreResult r = w.Pulled.IsCompletedSuccessfully ? Rerun(w) : StoreResult.Of(StoreStatus.Unavailable);
            if (!r.IsPending)
                sink.OnCompleted(w.Context, r, _value.WrittenSpan);
        }
        return done;
    }

    private StoreResult Rerun(Waiting w) => w.Op switch
    {
        Op.Get => inner.Get(w.Tenant, w.Table, w.Key, _value, w.Context),
        Op.Put => inner.Put(w.Tenant, w.Table, w.Key, w.Value, w.Context),
        Op.Delete => inner.Delete(w.Tenant, w.Table, w.Key, w.Context),
        Op.PutIfVersion => inner.PutIfVersion(w.Tenant, w.Table, w.Key, w.Value, w.Expected, w.Context),
        Op.PutIfAbsent => inner.PutIfAbsent(w.Tenant, w.Table, w.Key, w.Value, w.Context),
        Op.PutIfExists => inner.PutIfExists(w.Tenant, w.Table, w.Key, w.Value, w.Context),
        Op.Increment => inner.Increment(w.Tenant, w.Table, w.Key, w.Delta, w.Context),
        _ => inner.Append(w.Tenant, w.Table, w.Key, w.Value, w.Context),
    };

    public void Dispose() => inner.Dispose();
}
