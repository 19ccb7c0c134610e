using System.Collections.Concurrent;
using System.Diagnostics;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Storage;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// One worker thread (one per core): owns its connections, its storage session, its per-tenant quota shares and
/// counters. It runs ready connections to completion, polls its session for pending disk reads, holds replies for
/// durability, and when it has nothing to do steals ready connections from siblings (Splinter). Nothing here is
/// shared with another worker except the lock-free ready queues.
/// </summary>
internal sealed class Worker : IWorkerContext, ICompletionSink
{
    private const int IdleSpins = 64;
    /// <summary>
    /// Worker thread stack: extension steps run on it and their stack check allows 256 KiB plus up to 48 nested
    /// exception dispatches (~16 KiB each), so 2 MiB is the floor; 8 MiB leaves room for the node's own frames.
    /// </summary>
    internal const int StackBytes = 8 << 20;
    private readonly HybridNode _node;
    private readonly ConcurrentQueue<Connection> _ready = new();
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 10);
    private readonly List<Connection?> _parked = [];
    private readonly Stack<int> _freeSlots = new();
    private readonly List<Connection> _resumed = [];
    private readonly List<Connection> _extensionResumed = [];
    private readonly ConcurrentQueue<Connection> _poked = new(); // parked connections whose socket has input (PolledConnection)
    private readonly List<(Connection Connection, long Sequence)> _durableWaits = [];
    private readonly Action _wake;
    private readonly long _refreshTicks;
    private Thread? _thread;
    private IKvSession? _session;
    private Cluster.MigratingSession? _migrating; // _session, when the store is a migration target's
    private IKvSession? _extensionSession;
    private NodeExtensions? _nodeExtensions;
    private WorkerExtensions? _extensions;
    private Worker[] _siblings = [];
    private volatile bool _stopping;
    private bool _background; // worker thread only: at background CPU priority (EnterBackground)
    private volatile int _sleeping;
    private int _owned; // 1 while a thread runs this worker's work: its own thread, or an I/O thread borrowing it (TryRunInline)
    private long _nextRefresh;
    private ulong _view;
    private OwnedSlots _ownedSlots = OwnedSlots.All;

    internal Worker(HybridNode node, int index)
    {
        _node = node;
        WorkerIndex = index;
        _wake = Wake;
        _refreshTicks = Math.Max(1, (long)(node.Options.RefreshInterval.TotalSeconds * Stopwatch.Frequency));
        Quotas = new WorkerQuotas(node.Options.Workers);
    }

    /// <inheritdoc />
    public int WorkerIndex { get; }

    /// <inheritdoc />
    public IKvSession Session => _session ?? throw new InvalidOperationException("worker not started");

    /// <inheritdoc />
    public IKvStore Store => _node.Store;

    /// <inheritdoc />
    public TenantRegistry Tenants => _node.Tenants;

    /// <inheritdoc />
    public ulong View => _view;

    /// <inheritdoc />
    public OwnedSlots OwnedSlots => _ownedSlots;

    /// <inheritdoc />
    public WorkerExtensions Extensions => _extensions ?? throw new InvalidOperationException("worker not started");

    /// <inheritdoc />
    public bool AllowsUnauthenticatedDefault => _node.Options.IsLoopbackOnly;

    /// <summary>This worker's counters (written only by this thread, read racily by the scraper).</summary>
    internal WorkerMetrics Metrics { get; } = new();

    /// <summary>This worker's shares of the tenants' quotas.</summary>
    internal WorkerQuotas Quotas { get; }

    internal void Start(Worker[] siblings)
    {
        _siblings = siblings.Where(s => s != this).ToArray();
        _nodeExtensions = NodeExtensions.Acquire(_node);
        _thread = new Thread(Run, StackBytes) { IsBackground = true, Name = $"hybrid-worker-{WorkerIndex}" };
        _thread.Start();
    }

    internal void Stop()
    {
        _stopping = true;
        _signal.Set();
        _thread?.Join();
        _signal.Dispose();
        _nodeExtensions?.Release();
        _nodeExtensions = null;
    }

    /// <summary>Queues a connection to run on this worker (socket threads, other workers). Lock-free.</summary>
    internal void Enqueue(Connection connection)
    {
        _ready.Enqueue(connection);
        if (_sleeping != 0)
            _signal.Set();
    }

    /// <summary>Wakes the worker so it refreshes (a view change, a durable commit).</summary>
    internal void Wake() => _signal.Set();

    /// <summary>True while the storage session has operations to poll (disk reads); not for operations waiting on pulls.</summary>
    private bool StoragePending() => _migrating is { } migrating ? migrating.PolledPendingCount > 0 : _session!.PendingCount > 0;

    private void Run()
    {
        if (_node.Options.Cpus is { Count: > 0 } cpus)
            Hybrid.Transport.ThreadScheduling.PinCurrentThread([cpus[WorkerIndex % cpus.Count]]); // checked at the node's start
        _session = _node.Store.NewSession();
        _migrating = _session as Cluster.MigratingSession;
        if (_migrating is not null)
            _migrating.Wake = _wake;
        // Extensions read through a second session of this worker, so that completing one of their disk reads
        // synchronously never takes another connection's completion (see WorkerExtensionStore).
        _extensionSession = _node.Store.NewSession();
        _extensions = new WorkerExtensions(this, _nodeExtensions!, _extensionSession);
        _extensions.Scheduler.ResultHandedBack = _wake;
        // A long extension step yields early (after its minimum slice) when a connection waits for this worker.
        _extensions.Scheduler.WorkWaiting = () => !_ready.IsEmpty;
        if (_nodeExtensions!.BackgroundStepsRefusal is null)
        {
            _extensions.Scheduler.ThreadId = Hybrid.Transport.ThreadScheduling.CurrentThreadId();
            _extensions.Scheduler.ResumingStep = EnterBackground;
        }
        Acquire();
        try
        {
            Refresh(Stopwatch.GetTimestamp());
            int idle = 0;
            while (!_stopping)
            {
                long now = Stopwatch.GetTimestamp();
                if (now >= _nextRefresh)
                    Refresh(now);
                bool worked = PollPending() | PollDurable() | PollPoked();
                bool ready = _ready.TryDequeue(out var connection) || TrySteal(out connection);
                if (worked | ready)
                    LeaveBackground();
                if (ready)
                {
                    connection!.Drive(this);
                    worked = true;
                }
                worked |= PollExtensions();
                if (worked)
                {
                    idle = 0;
                    continue;
                }
                // Disk reads are polled, so the worker stays awake for them; operations that wait only for a
                // migration's priority pulls wake it when their pull lands (MigratingSession.Wake), so it sleeps.
                if (StoragePending() || _extensions.HasWork || (_durableWaits.Count > 0 && ++idle < IdleSpins))
                {
                    Thread.Yield();
                    continue;
                }
                LeaveBackground();
                bool durableWaits = _durableWaits.Count > 0;
                if (durableWaits)
                    RegisterDurableWake();
                bool pullWaits = _session.PendingCount > 0;
                Volatile.Write(ref _owned, 0);
                Sleep(durableWaits || pullWaits);
                Acquire();
                idle = 0;
                Refresh(Stopwatch.GetTimestamp()); // a worker that slept re-reads the view before running anything
            }
            _session.CompletePending(this, wait: true);
        }
        finally
        {
            _session.Dispose(); // ownership is never released now, so no I/O thread borrows a disposed session
            _extensionSession.Dispose();
        }
    }

    /// <summary>
    /// Before the extension scheduler resumes a long invocation (<see cref="Hybrid.Extensions.ExtensionScheduler.ResumingStep"/>):
    /// the thread runs at background CPU priority from then until it has other work (<see cref="LeaveBackground"/>), so
    /// the kernel hands the CPU at once to any thread that wakes up on it (the poller with a request for this worker,
    /// a client) instead of at the end of the worker's slice, up to a scheduler tick later. Switching lazily keeps it
    /// to two system calls per run of steps rather than per step.
    /// </summary>
    private void EnterBackground()
    {
        if (_background)
            return;
        _background = Hybrid.Transport.ThreadScheduling.SetBackground(true);
    }

    /// <summary>Back to normal priority before the worker runs anything but extension steps, and before it sleeps.</summary>
    private void LeaveBackground()
    {
        if (!_background)
            return;
        // The node probed that it may leave background priority; should the kernel refuse anyway, stop entering it.
        if (!Hybrid.Transport.ThreadScheduling.SetBackground(false))
            _extensions!.Scheduler.ResumingStep = null;
        _background = false;
    }

    /// <summary>True while the worker's thread sleeps waiting for work (a request arriving now runs inline on the thread that saw it).</summary>
    internal bool IsAsleep => _sleeping != 0;

    /// <summary>True on the worker's own thread; false on an I/O thread that borrowed it (<see cref="TryRunInline"/>).</summary>
    internal bool OnOwnThread => Thread.CurrentThread == _thread;

    /// <summary>Takes this worker's ownership back from an I/O thread that borrowed it (held for one short drive).</summary>
    private void Acquire()
    {
        while (Interlocked.CompareExchange(ref _owned, 1, 0) != 0)
            Thread.Yield();
    }

    /// <summary>
    /// Called on the I/O thread whose socket operation completed: when this worker is asleep, that thread borrows the
    /// worker (its storage session, view, quotas, parked table) and drives the connection itself, saving the wake-up
    /// and the thread switch that dominate one-request-at-a-time latency. Ownership is exclusive (<c>_owned</c>), so
    /// the worker's state still has one user at a time; the worker thread takes it back when it wakes. False when the
    /// worker is busy (it will run the connection from its queue).
    /// </summary>
    internal bool TryRunInline(Connection connection)
    {
        if (_sleeping == 0 || _stopping || _extensions is null || Interlocked.CompareExchange(ref _owned, 1, 0) != 0)
            return false;
        bool leftWork;
        try
        {
            long now = Stopwatch.GetTimestamp();
            // A view change with operations pending is left to the worker thread (draining would block this I/O
            // thread until they finish, and their completions may need the thread pool).
            if (now >= _nextRefresh)
                RefreshView(now, mayDrain: false);
            connection.Drive(this);
            // Work the drive left for the worker thread (parked reads, durability waits, queued extension steps),
            // read while this thread still owns the worker's state.
            leftWork = _session!.PendingCount > 0 || _resumed.Count > 0 || _durableWaits.Count > 0 || _extensions.HasWork;
        }
        finally
        {
            Volatile.Write(ref _owned, 0);
        }
        if (leftWork || !_ready.IsEmpty)
            _signal.Set();
        return true;
    }

    /// <summary>
    /// Waits for work. Called with ownership released, so it touches no worker state: <paramref name="soon"/> says (read
    /// under ownership) whether a durable commit or a priority pull must wake it soon (both wakes are registered; the
    /// 1 ms timeout is the backstop).
    /// </summary>
    private void Sleep(bool soon)
    {
        _sleeping = 1;
        Interlocked.MemoryBarrier();
        if (_ready.IsEmpty && _poked.IsEmpty && !_stopping && !_extensions!.HasWork)
            _signal.Wait(soon ? 1 : 50);
        _sleeping = 0;
        _signal.Reset();
    }

    private void RegisterDurableWake()
    {
        long lowest = long.MaxValue;
        foreach (var (_, sequence) in _durableWaits)
            lowest = Math.Min(lowest, sequence);
        var wait = _node.Store.WaitDurableAsync(lowest);
        if (wait.IsCompleted)
            _signal.Set();
        else
            wait.GetAwaiter().UnsafeOnCompleted(_wake);
    }

    private bool TrySteal(out Connection connection)
    {
        foreach (var sibling in _siblings)
        {
            // Steal only from a sibling that is busy (awake with a backlog); a sleeping one is being woken anyway.
            if (sibling._sleeping == 0 && sibling._ready.Count > 1 && sibling._ready.TryDequeue(out connection!))
            {
                Metrics.Steals++;
                return true;
            }
        }
        connection = null!;
        return false;
    }

    /// <summary>Epoch refresh: adopt the node's view, re-read tenant bytes for memory quotas.</summary>
    private void Refresh(long now)
    {
        RefreshView(now);
        Metrics.AllocatedBytes = GC.GetAllocatedBytesForCurrentThread(); // the worker thread's own count, never a borrower's
    }

    /// <summary>
    /// Adopts the node's current view. With <paramref name="mayDrain"/> false (the I/O thread driving this worker
    /// inline) a view change with operations pending is left for the worker thread: nothing is adopted, false.
    /// </summary>
    private bool RefreshView(long now, bool mayDrain = true)
    {
        // A worker leaves a view only when nothing it admitted in that view is still in flight. A write that went
        // pending (its record on disk) and completed after the worker reported the new view would land after the cut:
        // after the source's version floor was read and possibly after the target's pulls passed that part of the
        // log, so an acknowledged write would be lost when the source drops the range. So finish every pending
        // operation first (storage I/O, or a priority pull on a target; rare: only at a view change). The connections
        // they complete resume afterwards, their next batches checked against the new view. The view drained for is
        // the one reported: one read of the published view serves both, so a view published meanwhile waits for the
        // next refresh (two reads once let a worker report a view it had not drained for).
        ulong view = _node.View.Peek(out OwnedSlots owned);
        if (_session!.PendingCount > 0 && view != _view)
        {
            if (!mayDrain)
                return false;
            _session.CompletePending(this, wait: true);
        }
        _node.View.Report(WorkerIndex, view);
        (_view, _ownedSlots) = (view, owned);
        Quotas.Refresh(_node.Store, _node.Tenants, now);
        _nextRefresh = now + _refreshTicks;
        return true;
    }

    private bool PollPending()
    {
        if (_session!.PendingCount == 0 && _resumed.Count == 0)
            return false;
        int done = _session.PendingCount > 0 ? _session.CompletePending(this) : 0;
        if (_resumed.Count > 0)
        {
            done += _resumed.Count; // completed by a view change's drain (RefreshView), resumed here
            foreach (var connection in _resumed)
                Resume(connection);
            _resumed.Clear();
        }
        return done > 0;
    }

    private bool PollExtensions()
    {
        bool worked = _extensions!.Poll();
        if (_extensionResumed.Count > 0)
        {
            foreach (var connection in _extensionResumed)
                Resume(connection);
            _extensionResumed.Clear();
        }
        return worked;
    }

    /// <summary>
    /// Runs a parked connection again after a completion: its park slot goes only when nothing of it is pending any
    /// more (a connection that runs between completions keeps it, so later completions still find it).
    /// </summary>
    private void Resume(Connection connection)
    {
        if (connection.State?.HasPendingOperations != true)
            ReleaseParkSlot(connection);
        connection.Resume(this);
    }

    /// <summary>
    /// From the poller: a connection parked here with operations pending has new input. It runs on this worker (the
    /// holder of its park slot, so its completions and its requests never run on two threads at once).
    /// </summary>
    internal void Poke(Connection connection)
    {
        _poked.Enqueue(connection);
        _signal.Set();
    }

    private bool PollPoked()
    {
        bool any = false;
        for (int n = _poked.Count; n > 0 && _poked.TryDequeue(out var connection); n--)
        {
            // Stale pokes (it ran meanwhile, finished its operations, or parked elsewhere) are dropped: whoever holds
            // it now sees the input.
            if (connection.ParkWorker == this && connection.WaitsForCompletions)
            {
                connection.Resume(this);
                any = true;
            }
        }
        return any;
    }

    /// <summary>
    /// An extension result (invocation finished after its first step, install compiled) for the connection parked
    /// under <paramref name="cookie"/>; the connection resumes after the current poll when nothing else is pending.
    /// </summary>
    internal void DeliverExtensionResult(long cookie, Hybrid.Protocol.Status status, ulong version, ReadOnlySpan<byte> value)
    {
        int slot = (int)((ulong)cookie >> 32);
        var connection = slot < _parked.Count ? _parked[slot] : null;
        if (connection?.State is not IExtensionResultTarget target)
            return;
        if (target.OnExtensionResult(this, connection.Context, (uint)cookie, status, version, value, connection.Output))
            _extensionResumed.Add(connection);
    }

    private bool PollDurable()
    {
        if (_durableWaits.Count == 0)
            return false;
        bool any = false;
        for (int i = _durableWaits.Count - 1; i >= 0; i--)
        {
            var (connection, sequence) = _durableWaits[i];
            if (!_node.Store.IsDurable(sequence))
                continue;
            _durableWaits.RemoveAt(i);
            connection.Drive(this);
            any = true;
        }
        return any;
    }

    /// <summary>Holds a connection's replies until <paramref name="sequence"/> is durable.</summary>
    internal void WaitDurable(Connection connection, long sequence) => _durableWaits.Add((connection, sequence));

    /// <inheritdoc />
    public ulong PendingContext(ConnectionContext connection, uint token)
    {
        var c = connection.Connection ?? throw new InvalidOperationException("context of no connection");
        if (c.ParkSlot < 0)
        {
            int slot;
            if (_freeSlots.Count > 0)
            {
                slot = _freeSlots.Pop();
                _parked[slot] = c;
            }
            else
            {
                slot = _parked.Count;
                _parked.Add(c);
            }
            c.ParkSlot = slot;
            c.ParkWorker = this;
        }
        return ((ulong)(uint)c.ParkSlot << 32) | token;
    }

    /// <summary>Frees the connection's parked slot, if it holds one on this worker.</summary>
    internal void ReleaseParkSlot(Connection connection)
    {
        if (connection.ParkSlot < 0 || connection.ParkWorker != this)
            return;
        _parked[connection.ParkSlot] = null;
        _freeSlots.Push(connection.ParkSlot);
        connection.ParkSlot = -1;
        connection.ParkWorker = null;
    }

    /// <inheritdoc />
    public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
    {
        int slot = (int)(context >> 32);
        var connection = slot < _parked.Count ? _parked[slot] : null;
        if (connection?.State is null)
            return;
        if (connection.State.OnCompleted(this, connection.Context, (uint)context, result, value, connection.Output))
            _resumed.Add(connection);
    }

    /// <inheritdoc />
    public bool TryChargeOps(TenantInfo tenant, int operations) => Quotas.TryChargeOps(tenant, operations, Metrics);

    /// <inheritdoc />
    public bool TryChargeBytes(TenantInfo tenant, long bytes) => Quotas.TryChargeBytes(tenant, bytes, Metrics);

    /// <inheritdoc />
    public void RecordBatch(long startTimestamp) => Metrics.RecordBatch(startTimestamp);

    /// <inheritdoc />
    public void CountRejection(Hybrid.Protocol.Status status) => Metrics.Rejections[(byte)status]++;

    /// <inheritdoc />
    public void CountOps(TenantInfo tenant, OpKind op, int count = 1) => Metrics.For(tenant.Id).Ops[(int)op] += count;
}
