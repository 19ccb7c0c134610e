using System.Collections.Concurrent;
using System.Diagnostics;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>Receives the outcome of invocations; called on the worker that submitted them.</summary>
public interface IExtensionResultSink
{
    /// <summary>
    /// One invocation ended (or was refused). <paramref name="response"/> is valid only during the call;
    /// <paramref name="error"/> is set when <paramref name="status"/> is not <see cref="ExtensionStatus.Ok"/>.
    /// </summary>
    void OnCompleted(long cookie, ExtensionStatus status, ReadOnlySpan<byte> response, string? error);
}

/// <summary>
/// Optionally implemented by an <see cref="IExtensionStore"/> that hands out spans over a scratch area it reuses:
/// the scheduler calls <see cref="BeginStep"/> before every step, the only moment when no span an extension got
/// from <see cref="IExtensionStore.TryGet"/> can still be alive (spans never cross a yield point).
/// </summary>
public interface IExtensionStepStore
{
    /// <summary>A step of some invocation starts on this store: earlier spans are dead and their memory may be reused.</summary>
    void BeginStep();

    /// <summary>
    /// The step's extension code has run for one meter quantum (<see cref="Meter.FuelQuantum"/> checks, microseconds):
    /// a store that holds something for the step's reads (the storage epoch) should let it go now, and take it again
    /// at the next read. Bounds how long extension code runs while the store is held.
    /// </summary>
    void PauseStep()
    {
    }

    /// <summary>The step ended (finished, yielded or aborted): release whatever the step's reads held.</summary>
    void EndStep()
    {
    }

    /// <summary>
    /// The commit sequence of the latest write made through this store (0: none, or not tracked). An invocation keeps
    /// the highest one of the stores its steps ran on, so that the worker answering it waits for the right commit in
    /// Sync mode even when a thief ran the step that wrote (<see cref="ExtensionScheduler.DeliveredWriteSequence"/>).
    /// </summary>
    long WriteSequence => 0;
}

/// <summary>
/// One worker's extension scheduler: runs invocations as stackless coroutines on the calling thread.
/// Create one per worker with <see cref="ExtensionHost.CreateScheduler"/>; call <c>Invoke</c> and
/// <see cref="Run"/> only from that worker's thread.
/// </summary>
/// <remarks>
/// An invocation runs its first step inside <c>Invoke</c> (most finish there, with no queueing).
/// One that yields goes to the tail of this worker's run queue; <see cref="Run"/> resumes queued
/// invocations round-robin and, when the local queue is empty, steals one from a sibling. Stolen
/// invocations resume against the thief's store session; their results still go to the origin's sink,
/// on the origin's thread (the origin delivers them in its next <see cref="Run"/>). The run queues are
/// lock-free; the only cross-worker traffic is stealing and handing results back.
/// </remarks>
public sealed class ExtensionScheduler
{
    private readonly ExtensionHost _host;
    private readonly IExtensionStore _store;
    private readonly IExtensionResultSink _sink;
    private readonly ConcurrentQueue<Invocation> _runnable = new();
    private readonly ConcurrentQueue<Invocation> _finishedElsewhere = new();
    private readonly Stack<Invocation> _pool = new();
    // Written by this worker's thread only (results are delivered where they were submitted); read by a scrape. Keyed by
    // name, not handle: a handle would keep an uninstalled extension's code loaded.
    private readonly ConcurrentDictionary<(ulong Tenant, string Name), ExtensionUsage> _usage = new();
    /// <summary>
    /// Steps between checks of an invocation's CPU total at resumption: an invocation that runs long without reaching a
    /// meter quantum must take many steps. Not every step: the budget is wall-clock, and a loaded CI run stopped a
    /// well-behaved extension of a few yields (its steps at background priority had waited for a CPU).
    /// </summary>
    internal const int ResumptionsPerCpuCheck = 64;

    private long _stepStartTicks;
    private Invocation? _running;
    private long _steps;
    private long _stolen;
    private bool _stuck;
    private long _watchedStepStart;
    private long _watchedAt;
    private long _watchedRunNanos;
    private long _watchedStuckTicks;
    private TimeSpan _watchedGcPause;
    private long _watchedAsleepTicks;
    private long _watchedCountedTicks;
    private double _watchedAsleepWeight;
    private char _watchedState;
    private int _watchedHostWaits;
    private bool _watchedUnreadable;

    internal ExtensionScheduler(ExtensionHost host, int index, IExtensionStore store, IExtensionResultSink sink)
    {
        _host = host;
        Index = index;
        _store = store;
        _sink = sink;
    }

    /// <summary>
    /// Called on the thief's thread when an invocation this worker submitted finished on a sibling and waits here
    /// for the next <see cref="Run"/>: a sleeping worker should wake up for it.
    /// </summary>
    public Action? ResultHandedBack { get; set; }

    /// <summary>
    /// Asked by the meters (every quantum, once a step has run its <see cref="ExtensionLimits.MinSlice"/>) on this
    /// worker's thread: true when requests wait for this worker, so the running step yields at its next preemption
    /// point instead of finishing its slice. Must be cheap and allocation-free.
    /// </summary>
    public Func<bool>? WorkWaiting { get; set; }

    /// <summary>
    /// Called on this worker's thread before <see cref="Run"/> resumes an invocation (or steals one): the node moves the
    /// thread to background CPU priority until it next has other work, so that the kernel preempts a long
    /// invocation's steps the moment any other thread wakes up on that CPU. First steps, run inline by
    /// <see cref="Invoke(ExtensionHandle, ReadOnlySpan{byte}, long, bool)"/>, are not announced (most invocations end in
    /// them). Must not throw or allocate.
    /// </summary>
    public Action? ResumingStep { get; set; }

    /// <summary>
    /// The kernel id of the thread that runs this scheduler's steps (0 = unknown). With it the watchdog reads the
    /// thread's <c>/proc/self/task/&lt;id&gt;</c> files and does not count time the thread spent waiting for a CPU (a
    /// background step starved by other work) as time stuck in a step.
    /// </summary>
    public int ThreadId
    {
        get => _threadFiles?.Id ?? 0;
        // The paths follow the id: a scheduler whose steps move to another thread must not read the old one's files.
        set => _threadFiles = value == 0 ? null : new ThreadFiles(value, $"/proc/self/task/{value}/stat", $"/proc/self/task/{value}/schedstat");
    }

    private volatile ThreadFiles? _threadFiles;

    private sealed record ThreadFiles(int Id, string Stat, string SchedStat);

    /// <summary>
    /// The highest <see cref="IExtensionStepStore.WriteSequence"/> of any invocation delivered by this scheduler so far
    /// (set before the sink hears of it): in Sync mode a reply waits for this commit, which covers writes a stolen
    /// step made through another worker's store. An over-estimate only makes a reply wait for a commit already due.
    /// </summary>
    public long DeliveredWriteSequence { get; private set; }

    /// <summary>Position of this scheduler among the host's schedulers.</summary>
    public int Index { get; }

    /// <summary>Invocations waiting to be resumed on this worker.</summary>
    public int QueueLength => _runnable.Count + _finishedElsewhere.Count;

    /// <summary>Steps run by this worker (the watchdog's progress counter).</summary>
    public long Steps => Volatile.Read(ref _steps);

    /// <summary>Invocations this worker took from siblings.</summary>
    public long Stolen => Volatile.Read(ref _stolen);

    /// <summary>True while the watchdog considers this worker stuck inside one step.</summary>
    public bool IsStuck => Volatile.Read(ref _stuck);

    /// <summary>What this worker's invocations of each extension came to so far (for metrics; any thread).</summary>
    internal IEnumerable<KeyValuePair<(ulong Tenant, string Name), ExtensionUsage>> Usage => _usage;

    /// <summary>Drops the counters of an extension no longer installed (any thread; a count racing with it may be lost).</summary>
    internal void Forget(ulong tenant, string name) => _usage.TryRemove((tenant, name), out _);

    private void Count(ExtensionHandle handle, ExtensionStatus status, long cpuTicks)
    {
        // The last extension's counters are kept at hand: invocations of one extension in a row cost no lookup.
        if (!ReferenceEquals(handle, _countedHandle))
        {
            _countedUsage = _usage.GetOrAdd((handle.Tenant, handle.Name), static _ => new ExtensionUsage());
            _countedHandle = handle;
        }
        _countedUsage!.Add(status, cpuTicks);
    }

    private ExtensionHandle? _countedHandle;
    private ExtensionUsage? _countedUsage;

    /// <summary>Resolves and invokes by name; an unknown name completes at once with <see cref="ExtensionStatus.NotFound"/>.</summary>
    public void Invoke(ulong tenant, string name, ReadOnlySpan<byte> args, long cookie)
    {
        if (_host.Resolve(tenant, name) is { } handle)
        {
            Invoke(handle, args, cookie);
        }
        else
        {
            _sink.OnCompleted(cookie, ExtensionStatus.NotFound, default, $"no extension '{name}' for tenant {tenant}");
        }
    }

    /// <summary>
    /// Starts an invocation and runs its first step now (unless <paramref name="runFirstStep"/> is false: then it only
    /// queues it, for a caller that is not on the worker's own thread and stack). The arguments are copied; the result
    /// reaches the sink with <paramref name="cookie"/>, during this call or a later <see cref="Run"/>.
    /// </summary>
    public void Invoke(ExtensionHandle handle, ReadOnlySpan<byte> args, long cookie, bool runFirstStep = true)
    {
        if (handle.IsQuarantined)
        {
            Count(handle, ExtensionStatus.Quarantined, 0);
            _sink.OnCompleted(cookie, ExtensionStatus.Quarantined, default, $"extension '{handle.Name}' was quarantined by the watchdog");
            return;
        }
        if (handle.TenantState.Throttled)
        {
            Count(handle, ExtensionStatus.Throttled, 0);
            _sink.OnCompleted(cookie, ExtensionStatus.Throttled, default, $"tenant {handle.Tenant} is over its extension CPU quota");
            return;
        }
        var invocation = _pool.Count > 0 ? _pool.Pop() : new Invocation(this, _host.Options.Limits);
        invocation.Reset(handle, args, cookie);
        if (runFirstStep && Step(invocation))
        {
            Deliver(invocation);
        }
        else
        {
            _runnable.Enqueue(invocation);
        }
    }

    /// <summary>
    /// Resumes up to <paramref name="maxSteps"/> queued invocations (stealing when idle) and delivers
    /// results finished on other workers. Returns the number of steps run; 0 means nothing was runnable.
    /// </summary>
    public int Run(int maxSteps = 64)
    {
        while (_finishedElsewhere.TryDequeue(out var done))
        {
            Deliver(done);
        }
        var steps = 0;
        while (steps < maxSteps && (_runnable.TryDequeue(out var invocation) || TrySteal(out invocation)))
        {
            steps++;
            ResumingStep?.Invoke();
            if (Step(invocation))
            {
                Finish(invocation);
            }
            else
            {
                _runnable.Enqueue(invocation);
            }
        }
        return steps;
    }

    private bool TrySteal(out Invocation invocation)
    {
        var all = _host.Schedulers;
        // A stuck sibling first: its queue would otherwise wait for the stuck step.
        for (var pass = 0; pass < 2; pass++)
        {
            for (var k = 1; k < all.Length; k++)
            {
                var victim = all[(Index + k) % all.Length];
                if ((pass == 1 || victim.IsStuck) && victim._runnable.TryDequeue(out invocation!))
                {
                    Interlocked.Increment(ref _stolen);
                    return true;
                }
            }
        }
        invocation = null!;
        return false;
    }

    /// <summary>Runs one step; true when the invocation has ended (its status is then set).</summary>
    private bool Step(Invocation invocation)
    {
        var context = invocation.Context;
        var stepStore = _store as IExtensionStepStore;
        stepStore?.BeginStep();
        context.Bind(_store);
        context.IsScheduled = true;
        ExtensionContext.Current = context;
        var start = Stopwatch.GetTimestamp();
        invocation.BeginStep(start);
        _running = invocation;
        Volatile.Write(ref _stepStartTicks, start);
        Meter.Begin(invocation, stepStore, WorkWaiting);
        try
        {
            if (invocation.Abort is { } abort)
            {
                throw abort;
            }
            if (++invocation.Resumptions % ResumptionsPerCpuCheck == 0 && invocation.CpuTicks > invocation.Limits.CpuTicks)
            {
                // The meters check the CPU budget once per quantum of checks (Meter.FuelQuantum), and each step starts
                // a fresh quantum: an extension that yields every few checks never reached that check and ran for ever
                // (found by an exploratory run: `while (true) { i++; await ctx.Yield(); }`). Its total is checked here
                // every ResumptionsPerCpuCheck steps, as a quantum of its own.
                throw Meter.OverCpuBudget(invocation);
            }
            if (!invocation.Started)
            {
                invocation.Started = true;
                invocation.Root = invocation.Handle.Entry(context);
            }
            else
            {
                var pending = context.Pending!;
                context.Pending = null;
                pending.MoveNext();
            }
            if (invocation.Root.IsCompleted)
            {
                // A watchdog verdict reached while the step was stuck outside any meter check still wins.
                if ((invocation.Root.Exception ?? invocation.Abort) is { } e)
                {
                    SetFault(invocation, e);
                }
                return true;
            }
            if (context.Pending is null)
            {
                SetFault(invocation, new InvalidOperationException("the extension suspended without a yield point"));
                return true;
            }
            return false;
        }
        catch (Exception e)
        {
            SetFault(invocation, e);
            return true;
        }
        finally
        {
            stepStore?.EndStep();
            invocation.WriteSequence = Math.Max(invocation.WriteSequence, stepStore?.WriteSequence ?? 0);
            Meter.End();
            ExtensionContext.Current = null;
            context.IsScheduled = false;
            var used = invocation.StepTicks(Stopwatch.GetTimestamp());
            invocation.CpuTicks += used;
            invocation.Handle.TenantState.Charge(used);
            _running = null;
            Volatile.Write(ref _stepStartTicks, 0);
            Volatile.Write(ref _stuck, false);
            Interlocked.Increment(ref _steps);
        }
    }

    private static void SetFault(Invocation invocation, Exception e)
    {
        // A watchdog or budget verdict wins over whatever the extension threw afterwards (finally blocks).
        if ((invocation.Abort ?? e) is ExtensionAbortedException aborted)
        {
            invocation.Status = aborted.Status;
            invocation.Error = aborted.Message;
        }
        else
        {
            invocation.Status = ExtensionStatus.Faulted;
            invocation.Error = $"{e.GetType().Name}: {e.Message}";
        }
    }

    private void Finish(Invocation invocation)
    {
        if (invocation.Origin == this)
        {
            Deliver(invocation);
        }
        else
        {
            invocation.Origin._finishedElsewhere.Enqueue(invocation);
            invocation.Origin.ResultHandedBack?.Invoke();
        }
    }

    private void Deliver(Invocation invocation)
    {
        var ok = invocation.Status == ExtensionStatus.Ok;
        DeliveredWriteSequence = Math.Max(DeliveredWriteSequence, invocation.WriteSequence);
        Count(invocation.Handle, invocation.Status, invocation.CpuTicks);
        try
        {
            _sink.OnCompleted(invocation.Cookie, invocation.Status, ok ? invocation.Context.Response : default, invocation.Error);
        }
        finally
        {
            invocation.Root = default;
            invocation.Context.Pending = null;
            _pool.Push(invocation);
        }
    }

    /// <summary>
    /// Watchdog probe: the invocation stuck in one step, if any. With <see cref="ThreadId"/> known, only the time the
    /// step ran or was blocked counts (see <see cref="StuckTicks"/>), not time its thread waited for a CPU, and time
    /// blocked counts at the rate <paramref name="limitTicks"/> / <paramref name="asleepLimitTicks"/>; without it, all
    /// the time since the step started. Siblings may steal this worker's queue (<see cref="IsStuck"/>) as soon as the
    /// step ran and slept <paramref name="limitTicks"/> together: that only helps, whoever is to blame for the sleep.
    /// </summary>
    internal Invocation? StuckInvocation(long now, long limitTicks, long asleepLimitTicks)
    {
        var start = Volatile.Read(ref _stepStartTicks);
        if (start == 0)
        {
            return null;
        }
        long held = ThreadId == 0 ? now - start : StuckTicks(start, now, _running);
        if (held < limitTicks)
        {
            return null;
        }
        Volatile.Write(ref _stuck, true);
        if (Volatile.Read(ref _stepStartTicks) != start)
        {
            // The step ended (its finally cleared the flag) between the read above and the write: the flag set now
            // would stay until this worker's next step, and siblings would keep stealing from a worker that is not
            // stuck (a CI run saw it still set after the step had returned).
            Volatile.Write(ref _stuck, false);
            return null;
        }
        return Counted(held, limitTicks, asleepLimitTicks) >= limitTicks ? _running : null;
    }

    /// <summary>
    /// Watchdog thread only: the step's time as the quarantine counts it, CPU time plus sleep scaled by
    /// <paramref name="limitTicks"/> / <paramref name="asleepLimitTicks"/> (<see cref="ExtensionHostOptions.StuckAsleepAfter"/>),
    /// or <paramref name="held"/> when the thread's files were not read.
    /// </summary>
    private long Counted(long held, long limitTicks, long asleepLimitTicks)
    {
        if (ThreadId == 0 || _watchedUnreadable)
        {
            return held;
        }
        _watchedAsleepWeight = (double)limitTicks / Math.Max(1, asleepLimitTicks);
        _watchedCountedTicks = _watchedStuckTicks - _watchedAsleepTicks + (long)(_watchedAsleepTicks * _watchedAsleepWeight);
        return _watchedCountedTicks;
    }

    /// <summary>
    /// Watchdog thread only: how long the step that started at <paramref name="start"/> has run or been blocked, from
    /// the thread's <c>/proc/self/task/&lt;id&gt;</c> files at each pass: between two passes it adds the CPU time the
    /// thread used when it was runnable, and the whole interval when it was asleep (blocked in a call). A thread at
    /// background priority starved by other work adds nothing while it waits. The time before the watchdog first sees
    /// a step (at most one <see cref="ExtensionHostOptions.WatchdogInterval"/> when its thread runs) does not count, nor
    /// does sleep that is not the extension's doing: a wait of the host's on its behalf (<see cref="Meter.BeginHostWait"/>:
    /// a record read from a busy disk slept 210 ms in a loaded test run and quarantined a well-behaved extension), and
    /// time the runtime held every thread for a garbage collection (a precaution: a collection waits for a starved
    /// background step to reach a safe point while every other worker sleeps; not seen to matter so far).
    /// </summary>
    private long StuckTicks(long start, long now, Invocation? running)
    {
        int hostWaits = running is null ? 0 : Volatile.Read(ref running.HostWaits);
        _watchedUnreadable = !ReadThread(out char state, out long runNanos);
        if (_watchedUnreadable)
        {
            return now - start;
        }
        TimeSpan gcPause = GC.GetTotalPauseDuration();
        if (start != _watchedStepStart)
        {
            // Not now - start: a thread starved between reading the clock and publishing the step looks old at once.
            _watchedStepStart = start;
            _watchedStuckTicks = 0;
            _watchedAsleepTicks = 0;
        }
        else if (state is 'S' or 'D' && ((hostWaits & 1) == 1 || hostWaits != _watchedHostWaits))
        {
            // Asleep in (or since the last look, through) a wait of the host's on the extension's behalf: a record
            // read from a slow disk, not the extension stuck.
        }
        else if (state is 'S' or 'D')
        {
            long paused = (long)((gcPause - _watchedGcPause).TotalSeconds * Stopwatch.Frequency);
            long asleep = Math.Max(0, now - _watchedAt - paused);
            _watchedStuckTicks += asleep;
            _watchedAsleepTicks += asleep;
        }
        else
        {
            _watchedStuckTicks += (long)((runNanos - _watchedRunNanos) * (Stopwatch.Frequency / 1e9));
        }
        _watchedAt = now;
        _watchedRunNanos = runNanos;
        _watchedGcPause = gcPause;
        _watchedState = state;
        _watchedHostWaits = hostWaits;
        return _watchedStuckTicks;
    }

    /// <summary>
    /// Watchdog thread only: what the last <see cref="StuckInvocation"/> counted for the step, for the quarantine's
    /// message (the time on a CPU and asleep, and the thread's state at the last look), or null without the thread id.
    /// </summary>
    internal string? StuckDetail() => ThreadId == 0 || _watchedUnreadable ? null
        : FormattableString.Invariant($"counted {Ms(_watchedCountedTicks):F0} ms: {Ms(_watchedStuckTicks - _watchedAsleepTicks):F0} on a CPU, {Ms(_watchedAsleepTicks):F0} asleep at weight {_watchedAsleepWeight:0.###}, state {_watchedState}");

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    /// <summary>The thread's state letter (<c>stat</c>) and CPU time in nanoseconds (first field of <c>schedstat</c>).</summary>
    private bool ReadThread(out char state, out long runNanos)
    {
        state = '?';
        runNanos = 0;
        if (_threadFiles is not { } files)
        {
            return false;
        }
        Span<byte> text = stackalloc byte[512];
        try
        {
            // "<tid> (<comm>) <state> ...": the name may hold spaces and parentheses, the state follows the last ')'.
            int length;
            using (var stat = File.OpenHandle(files.Stat))
            {
                length = RandomAccess.Read(stat, text, 0);
            }
            int close = text[..length].LastIndexOf((byte)')');
            if (close < 0 || close + 2 >= length)
            {
                return false;
            }
            state = (char)text[close + 2];
            using (var schedStat = File.OpenHandle(files.SchedStat))
            {
                length = RandomAccess.Read(schedStat, text, 0);
            }
            int space = text[..length].IndexOf((byte)' ');
            return space > 0 && System.Buffers.Text.Utf8Parser.TryParse(text[..space], out runNanos, out _);
        }
        catch (IOException)
        {
            return false; // the thread ended
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
