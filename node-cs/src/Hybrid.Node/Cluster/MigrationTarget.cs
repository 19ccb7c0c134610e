using System.Threading.Channels;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The target side of a Rocksteady migration: carries out what the F# core decided for this node and decides
/// nothing itself. At <c>TransferOwnership</c> it raises the local version floor (<see cref="RaiseFloor"/>) and
/// starts the pulls of the range (<see cref="StartPulls(string, SlotRange, IMigrationPeer, CancellationToken)"/>): background pulls of N partitions in parallel,
/// pipelined (streams), applied insert-if-newer, at a rate <see cref="PullGovernor"/> adapts to load; and priority pulls, batched up to 64 keys,
/// of keys that reads missed. The coordinator then waits for <see cref="PullJob.CompleteAsync"/> (a catch-up pass
/// included) before it asks the core for <c>FinishPulls</c>.
/// </summary>
public sealed class MigrationTarget(IKvStore store, MigrationTrace trace, int partitions = 4)
{
    /// <summary>The store pulled records are applied to.</summary>
    public IKvStore Store => store;

    /// <summary>Caps each background-pull job at this many payload bytes per second (0 = no cap): an operator's throttle.</summary>
    public long MaxBytesPerSecond { get; init; }

    /// <summary>
    /// True (the default): each job's background pulls adapt their rate to load (<see cref="PullGovernor"/>, under
    /// <see cref="MaxBytesPerSecond"/>); false: they run at <see cref="MaxBytesPerSecond"/> (or unlimited) throughout.
    /// </summary>
    public bool AdaptivePulls { get; init; } = true;

    /// <summary>Decision <c>RaiseFloor</c>: every later write here gets a version above <paramref name="floor"/>.</summary>
    public void RaiseFloor(ulong floor) => store.RaiseVersionFloor(floor);

    /// <summary>
    /// Decision <c>StartPulls(range, source, this node)</c>: starts pulling <paramref name="range"/> through <paramref name="peer"/>.
    /// When the store is a <see cref="MigratingStore"/>, reads that miss in the range wait for priority pulls until the
    /// job completed.
    /// </summary>
    public PullJob StartPulls(string rangeName, SlotRange range, IMigrationPeer peer, CancellationToken cancellationToken = default) =>
        StartPulls(rangeName, range, peer, null, serving: true, cancellationToken);

    /// <summary>
    /// Pulls the records of <paramref name="range"/> found in the source's log after the part <paramref name="after"/>
    /// pulled (<see cref="PullJob.LogEnd"/>; null = the whole log; the whole log too when the source restarted since).
    /// <paramref name="serving"/> = false for a copy made before this node serves the range (stop-and-copy): reads
    /// do not wait for it.
    /// </summary>
    /// <remarks>
    /// A serving job stays registered with a <see cref="MigratingStore"/> until it completes successfully: one that
    /// failed still makes reads of keys not pulled yet wait for priority pulls (or fail, if those fail too), never
    /// answer NotFound, until <see cref="ResumePulls"/> replaces it.
    /// </remarks>
    public PullJob StartPulls(string rangeName, SlotRange range, IMigrationPeer peer, PullJob? after, bool serving, CancellationToken cancellationToken = default)
    {
        // A copy nobody reads yet (stop-and-copy) has no misses to adapt to: it runs as fast as the operator allows.
        PullGovernorOptions governing = serving && AdaptivePulls ? PullGovernorOptions.Default.CappedAt(MaxBytesPerSecond) : PullGovernorOptions.Fixed(MaxBytesPerSecond);
        var job = new PullJob(store, trace, rangeName, range, peer, partitions, after?.LogEnd ?? 0, after?.Incarnation ?? 0,
            new PullGovernor(governing), cancellationToken);
        if (serving && store is MigratingStore migrating)
        {
            migrating.AddIncoming(job);
            // Only a job that pulled everything leaves: after a failure, misses of the range must not answer NotFound.
            _ = job.CompleteAsync().ContinueWith(t =>
            {
                if (t.IsCompletedSuccessfully)
                    migrating.RemoveIncoming(job);
            }, TaskScheduler.Default);
        }
        return job;
    }

    /// <summary>
    /// Pulls for <paramref name="range"/>, which the decision state has in <c>Pulling</c> to this node, when the caller
    /// holds no pull job for it (a re-issued migrate after its pull job failed): the pull job registered for it if one
    /// still runs; else a new one, over the whole range of the failed job it replaces (a job may cover a run of
    /// several ranges), from the log's begin. Node-side mechanics: the StartPulls decision was carried out already,
    /// and pulls are idempotent (insert-if-newer), so pulling again decides nothing.
    /// </summary>
    public PullJob ResumePulls(string rangeName, SlotRange range, IMigrationPeer peer, CancellationToken cancellationToken = default)
    {
        if (store is MigratingStore migrating && migrating.JobFor(range) is { } registered)
        {
            if (!registered.HasFailed)
                return registered;
            range = new SlotRange(Math.Min(range.Lo, registered.Range.Lo), Math.Max(range.Hi, registered.Range.Hi));
        }
        return StartPulls(rangeName, range, peer, null, serving: true, cancellationToken);
    }
}

/// <summary>Counts of one pull job (read them after <see cref="PullJob.CompleteAsync"/>).</summary>
public sealed class PullStats
{
    private long _records, _bytes, _stale, _chunks, _priorityBatches, _priorityKeys, _planned, _scanned, _restarts;
    private long _failingSince; // Stopwatch timestamp of the first failure of the current streak; 0 = the source answers
    private string? _failure;

    /// <summary>Records received by background pulls (catch-up pass included).</summary>
    public long Records => Volatile.Read(ref _records);

    /// <summary>Key + value bytes received by background pulls.</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    /// <summary>Pulled records not installed because the target already had a newer version (insert-if-newer).</summary>
    public long Stale => Volatile.Read(ref _stale);

    /// <summary>Background-pull chunks applied.</summary>
    public long Chunks => Volatile.Read(ref _chunks);

    /// <summary>Priority-pull requests sent.</summary>
    public long PriorityBatches => Volatile.Read(ref _priorityBatches);

    /// <summary>Keys asked for by priority pulls.</summary>
    public long PriorityKeys => Volatile.Read(ref _priorityKeys);

    /// <summary>Bytes of the source's log the background pulls planned to scan (first pass; the catch-up pass adds its own).</summary>
    public long PlannedLogBytes => Volatile.Read(ref _planned);

    /// <summary>Bytes of the source's log scanned so far: <see cref="ScannedLogBytes"/> / <see cref="PlannedLogBytes"/> is the progress.</summary>
    public long ScannedLogBytes => Volatile.Read(ref _scanned);

    /// <summary>
    /// Times the background pulls started over: the source restarted (its log addresses changed, so every cursor was
    /// dropped and the pull began again at the log's begin) or failed a pull (planned again after a back-off).
    /// </summary>
    public long Restarts => Volatile.Read(ref _restarts);

    /// <summary>
    /// How long the source has been unreachable (or failing pulls) with no pull answered since; null while it answers.
    /// Pulls keep retrying meanwhile (a migration is never abandoned for a remote fault), so this is what tells an
    /// operator why a migration stalls.
    /// </summary>
    public TimeSpan? SourceFailingFor
    {
        get
        {
            long since = Volatile.Read(ref _failingSince);
            return since == 0 ? null : System.Diagnostics.Stopwatch.GetElapsedTime(since);
        }
    }

    /// <summary>The last failure to reach the source (or its failure to answer a pull), while <see cref="SourceFailingFor"/> is not null.</summary>
    public string? SourceFailure => SourceFailingFor is null ? null : Volatile.Read(ref _failure);

    /// <summary>Wall time from the start of the background pulls to the end of the catch-up pass.</summary>
    public TimeSpan BackgroundElapsed { get; internal set; }

    /// <summary>A pull could not reach the source, or the source failed it: the failing streak starts now unless it runs already.</summary>
    internal void OnSourceFailure(Exception e)
    {
        Volatile.Write(ref _failure, e.Message);
        Interlocked.CompareExchange(ref _failingSince, System.Diagnostics.Stopwatch.GetTimestamp(), 0);
    }

    /// <summary>A pull was answered: no failing streak.</summary>
    internal void OnSourceAnswered()
    {
        if (Volatile.Read(ref _failingSince) != 0)
            Volatile.Write(ref _failingSince, 0);
    }

    internal void AddChunk(int records, long bytes)
    {
        Interlocked.Add(ref _records, records);
        Interlocked.Add(ref _bytes, bytes);
        Interlocked.Increment(ref _chunks);
    }

    internal void AddPlanned(ScanCursor[] plan)
    {
        foreach (ScanCursor c in plan)
            Interlocked.Add(ref _planned, c.End - c.Next);
    }

    internal void AddScanned(long bytes) => Interlocked.Add(ref _scanned, bytes);

    internal void AddRestart() => Interlocked.Increment(ref _restarts);

    internal void AddStale(long n) => Interlocked.Add(ref _stale, n);

    internal void AddPriority(int keys)
    {
        Interlocked.Increment(ref _priorityBatches);
        Interlocked.Add(ref _priorityKeys, keys);
    }
}

/// <summary>
/// The pulls of one range to this node. Background partitions run on their own threads; read misses queue priority
/// pulls that one batcher thread sends, every queued miss (up to <see cref="MigrationSource.MaxPriorityKeys"/>) in one
/// request, one request at a time.
/// </summary>
public sealed class PullJob
{
    private readonly IKvStore _store;
    private readonly MigrationTrace _trace;
    private readonly string _rangeName;
    private readonly SlotRange _range;
    private readonly IMigrationPeer _peer;
    private readonly int _partitions;
    private readonly long _from, _fromIncarnation;
    private readonly CancellationToken _cancel;

    /// <summary>
    /// Partition streams pulling into one store at a time, over all its jobs: each holds a session of the store and one
    /// of the source's (a node's store has <c>Workers + 16</c>). A partition past it waits for a turn.
    /// </summary>
    internal const int MaxPartitionStreams = 8;

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<IKvStore, SemaphoreSlim> s_partitionTurns = [];
    private readonly Channel<(PullKey Key, TaskCompletionSource Done, long Enqueued)> _priority =
        Channel.CreateUnbounded<(PullKey, TaskCompletionSource, long)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _background;
    private readonly Task _priorityLoop;
    private int _priorityDemand; // misses queued or in a priority pull now
    private Exception? _priorityFailure; // why the priority loop ended, if it failed: later misses fail with it

    internal PullJob(IKvStore store, MigrationTrace trace, string rangeName, SlotRange range, IMigrationPeer peer, int partitions, long from,
        long fromIncarnation, PullGovernor governor, CancellationToken cancellationToken)
    {
        Governor = governor;
        _store = store;
        _trace = trace;
        _rangeName = rangeName;
        _range = range;
        _peer = peer;
        _partitions = partitions;
        _from = from;
        _fromIncarnation = fromIncarnation;
        _cancel = cancellationToken;
        _background = RunOnThread("pull-bg", RunBackground, background: true);
        _priorityLoop = RunOnThread("pull-prio", RunPriority, background: false);
    }

    /// <summary>The range being pulled.</summary>
    public SlotRange Range => _range;

    /// <summary>Sets the background pulls' rate from how long read misses wait.</summary>
    internal PullGovernor Governor { get; }

    /// <summary>After <see cref="CompleteAsync"/>: the source log address up to which every record of the range was pulled.</summary>
    public long LogEnd { get; private set; }

    /// <summary>After <see cref="CompleteAsync"/>: the source store's incarnation <see cref="LogEnd"/> is an address in.</summary>
    public long Incarnation { get; private set; }

    /// <summary>True when the background pulls ended without pulling everything (failed or cancelled).</summary>
    public bool HasFailed => _background.IsFaulted || _background.IsCanceled;

    /// <summary>True when the background pulls ended (every record pulled, or failed).</summary>
    public bool HasEnded => _background.IsCompleted;

    /// <summary>What was pulled so far.</summary>
    public PullStats Stats { get; } = new();

    /// <summary>
    /// A read of <paramref name="key"/> missed locally while the range is being pulled: completes once the key's record
    /// (if the source has one) is installed here, after which the read is retried locally. Completes at once when
    /// pulls already finished (the key is then here if it exists at all).
    /// </summary>
    public Task PullForReadAsync(PullKey key)
    {
        // Continuations run inline on the priority thread when the pull lands: the only ones are a worker's wake-up
        // (MigratingSession.Wake, a signal) and a view change's wait; so the worker is woken without a pool thread.
        var done = new TaskCompletionSource();
        if (!_priority.Writer.TryWrite((key, done, System.Diagnostics.Stopwatch.GetTimestamp())))
        {
            if (Volatile.Read(ref _priorityFailure) is { } failed)
                return Task.FromException(failed);
            // Closed after every record was pulled: the key is here if it exists. Closed otherwise (retired after a
            // failure, see Retire): the read is answered Unavailable (clients resend it), never as if the key were absent.
            return _background.IsCompletedSuccessfully ? Task.CompletedTask
                : Task.FromException(new InvalidOperationException($"the pulls of {_rangeName} were restarted: retry the request"));
        }
        Interlocked.Increment(ref _priorityDemand);
        return done.Task;
    }

    /// <summary>
    /// Completes when every record of the range is here: all background partitions and one catch-up pass from the
    /// planned end are applied and the priority queue is drained (later read misses complete at once). Only then may
    /// the coordinator decide <c>FinishPulls</c>.
    /// </summary>
    public async Task CompleteAsync()
    {
        await _background.ConfigureAwait(false);
        _priority.Writer.TryComplete();
        await _priorityLoop.ConfigureAwait(false);
    }

    /// <summary>
    /// A job that failed and is being replaced by a new one for its range (<see cref="MigratingStore.AddIncoming"/>):
    /// its priority batcher pulls the misses already queued and ends; misses that still reach it fail (a retryable error).
    /// </summary>
    internal void Retire() => _priority.Writer.TryComplete();

    /// <summary>Runs <paramref name="body"/> on a thread of its own; <paramref name="background"/> = below client work when <see cref="BackgroundPriority"/> is on.</summary>
    private static Task RunOnThread(string name, Action body, bool background)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                if (background)
                    BackgroundPriority.LowerCurrentThread();
                body();
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        { IsBackground = true, Name = name };
        thread.Start();
        return done.Task;
    }

    private static T Wait<T>(ValueTask<T> pending) => pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// The background pulls: a plan of the source's log in partitions, pulled in parallel, then one catch-up pass from
    /// the first plan's end. Every cursor and that end are addresses in one incarnation of the source's store: when the
    /// source restarted (<see cref="SourceRestartedException"/>: recovery rebuilt its log at other addresses, so records
    /// may now lie behind a cursor or in a partition already done) the pulls start over from the log's begin, dropping
    /// every cursor and the old end. Re-pulling is harmless: applies are insert-if-newer. A pull the source failed
    /// (<see cref="PeerException"/>) or a reply that could not be read starts the pass over after a back-off, so the job
    /// does not fail (and leave its range half pulled) for a remote fault.
    /// </summary>
    private void RunBackground()
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        long from = _from;
        TimeSpan backoff = RetryDelay;
        while (true)
        {
            try
            {
                PullPlan plan = Retry(() => _peer.PlanPullsAsync(_partitions, from, _cancel));
                if (from != 0 && _fromIncarnation != 0 && plan.Incarnation != _fromIncarnation)
                    throw new SourceRestartedException(plan.Incarnation); // `from` is an address of the source before it restarted
                RunPartitions(plan, 0);
                // Writes made while the first plan was scanned may lie beyond its end: one catch-up pass from that end.
                long end = from;
                foreach (ScanCursor c in plan.Partitions)
                    end = Math.Max(end, c.End);
                PullPlan catchUp = Retry(() => _peer.PlanPullsAsync(_partitions, end, _cancel));
                if (catchUp.Incarnation != plan.Incarnation)
                    throw new SourceRestartedException(catchUp.Incarnation);
                RunPartitions(catchUp, plan.Partitions.Length);
                foreach (ScanCursor c in catchUp.Partitions)
                    end = Math.Max(end, c.End);
                LogEnd = end;
                Incarnation = plan.Incarnation;
                break;
            }
            catch (SourceRestartedException) when (!_cancel.IsCancellationRequested)
            {
                Stats.AddRestart();
                from = 0;
                backoff = RetryDelay;
            }
            catch (Exception e) when (IsRemoteFailure(e) && !_cancel.IsCancellationRequested)
            {
                Stats.OnSourceFailure(e);
                Stats.AddRestart();
                _cancel.WaitHandle.WaitOne(backoff);
                _cancel.ThrowIfCancellationRequested();
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
        Stats.BackgroundElapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    /// <summary>
    /// Pulls every partition of <paramref name="plan"/> in parallel. When one fails for a reason it cannot retry by
    /// itself (the source restarted or failed the pull), the others are stopped and that reason is thrown.
    /// </summary>
    private void RunPartitions(PullPlan plan, int firstIndex)
    {
        Stats.AddPlanned(plan.Partitions);
        if (plan.Partitions.Length == 0)
            return;
        var pass = CancellationTokenSource.CreateLinkedTokenSource(_cancel);
        var threads = new Task[plan.Partitions.Length];
        for (int i = 0; i < plan.Partitions.Length; i++)
        {
            ScanCursor start = plan.Partitions[i];
            int index = firstIndex + i;
            threads[i] = RunOnThread("pull-part", () =>
            {
                try
                {
                    RunPartition(start, index, plan.Incarnation, pass.Token);
                }
                catch
                {
                    pass.Cancel(); // the pass starts over (or the job fails): the other partitions stop now
                    throw;
                }
            }, background: true);
        }
        try
        {
            Task.WaitAll(threads, _cancel);
        }
        catch (AggregateException e) when (_cancel.IsCancellationRequested && e.Flatten().InnerExceptions.All(x => x is OperationCanceledException))
        {
            // The partitions saw the cancel before this wait did: a cancelled job ends with a cancellation, as the caller expects.
            throw new OperationCanceledException(_cancel);
        }
        catch (AggregateException e) when (!_cancel.IsCancellationRequested)
        {
            // Every partition has ended. The first real failure is the reason; the others were stopped because of it.
            pass.Dispose();
            IReadOnlyCollection<Exception> failures = e.Flatten().InnerExceptions;
            Exception reason = failures.FirstOrDefault(x => x is SourceRestartedException)
                ?? failures.FirstOrDefault(x => x is not OperationCanceledException)
                ?? failures.First();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(reason);
        }
        pass.Dispose();
    }

    /// <summary>
    /// Pulls one partition as a stream (<see cref="IMigrationPeer.OpenPulls"/>: the source scans chunk i+1 while this
    /// thread applies chunk i). When the source cannot be reached (or its reply could not be read) the stream is opened
    /// again from the cursor after the last applied chunk, with the source incarnation the cursor belongs to: a source
    /// that restarted meanwhile refuses it (<see cref="SourceRestartedException"/>, which ends the pass).
    /// </summary>
    private void RunPartition(ScanCursor cursor, int index, long incarnation, CancellationToken cancel)
    {
        // A turn among the store's partition streams (MaxPartitionStreams): every job of a migration of many runs of
        // ranges starts at once, and a session each (here and at the source) ran the stores out of sessions.
        SemaphoreSlim turns = s_partitionTurns.GetValue(_store, static _ => new SemaphoreSlim(MaxPartitionStreams, MaxPartitionStreams));
        turns.Wait(cancel);
        try
        {
            RunPartitionStream(cursor, index, incarnation, cancel);
        }
        finally
        {
            turns.Release();
        }
    }

    private void RunPartitionStream(ScanCursor cursor, int index, long incarnation, CancellationToken cancel)
    {
        using var applier = new Applier(_store, Stats);
        while (true)
        {
            try
            {
                using IPullStream stream = _peer.OpenPulls(_range, incarnation, cursor, cancel);
                while (true)
                {
                    PullBuffer chunk = stream.Read(out ScanCursor next);
                    Stats.AddScanned(Math.Min(next.Next, next.End) - cursor.Next);
                    Stats.OnSourceAnswered();
                    applier.Apply(chunk);
                    cursor = next;
                    Stats.AddChunk(chunk.Count, chunk.PayloadBytes);
                    _trace.BackgroundPull(_rangeName, index);
                    if (next.IsDone)
                        return;
                    Throttle(chunk.PayloadBytes);
                    YieldToPriority();
                }
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                // The source is down or restarting: ask again from the cursor after the last chunk applied.
                Stats.OnSourceFailure(e);
                cancel.ThrowIfCancellationRequested();
                cancel.WaitHandle.WaitOne(RetryDelay);
                cancel.ThrowIfCancellationRequested();
            }
        }
    }

    /// <summary>
    /// The priority batcher: takes every queued miss (up to <see cref="MigrationSource.MaxPriorityKeys"/>) into one
    /// request, sends it and waits for the reply on this thread (<see cref="IMigrationPeer.PriorityPull"/>: over the
    /// network a blocking send and receive, no hand-off to the thread pool), applies the records through its one session
    /// and releases that batch's waiters, whose wake-ups run inline here. Misses that arrive meanwhile go into the next
    /// request, so a miss waits at most about two round trips. Ends when the queue is completed and drained.
    /// </summary>
    /// <remarks>
    /// One request at a time, not several: on a small machine every extra thread hop of a request (a pool thread for
    /// the reply, another to wake the worker) costs a scheduling delay while the background pulls keep the cores busy,
    /// and those delays, not the source, made a priority pull take 5-30 ms (2026-12-06, 1M-record migration bench).
    /// </remarks>
    private void RunPriority()
    {
        using var applier = new Applier(_store, Stats);
        var batch = new PriorityBatch();
        ChannelReader<(PullKey Key, TaskCompletionSource Done, long Enqueued)> reader = _priority.Reader;
        while (true)
        {
            if (!reader.TryRead(out (PullKey Key, TaskCompletionSource Done, long Enqueued) first))
            {
                bool more;
                try
                {
                    more = Wait(reader.WaitToReadAsync(_cancel));
                }
                catch (OperationCanceledException e)
                {
                    // The job was cancelled: every miss queued now or later fails with that, instead of parking its
                    // worker for a pull that will never come (found: a node stopping right after a cancelled migration
                    // waited forever for its worker).
                    FailQueued(e);
                    throw;
                }
                if (!more)
                    return; // completed and drained
                continue;
            }
            batch.Add(first);
            while (batch.Count < MigrationSource.MaxPriorityKeys && reader.TryRead(out (PullKey Key, TaskCompletionSource Done, long Enqueued) item))
                batch.Add(item);
            try
            {
                CallWithRetry(batch);
                applier.Apply(batch.Buffer);
            }
            catch (Exception e)
            {
                // The job fails (the coordinator sees it through CompleteAsync). Every miss waiting now or queued
                // later fails too, instead of waiting for a pull that will never come, and the background partitions
                // stop pausing for them.
                // Close the queue first, so that by the time this batch's waiters see the failure every later miss
                // fails at once too.
                FailQueued(e);
                Interlocked.Add(ref _priorityDemand, -batch.Count);
                batch.Release(e);
                throw;
            }
            Stats.AddPriority(batch.Count);
            Governor.OnMiss(System.Diagnostics.Stopwatch.GetElapsedTime(batch.Oldest));
            _trace.PriorityPull(_rangeName);
            Interlocked.Add(ref _priorityDemand, -batch.Count);
            batch.Release(null);
        }
    }

    /// <summary>
    /// Closes the miss queue with <paramref name="failure"/> and fails every miss in it, so later misses fail at once
    /// (<see cref="PullForReadAsync"/>) and no worker waits for a pull that will never come.
    /// </summary>
    private void FailQueued(Exception failure)
    {
        Volatile.Write(ref _priorityFailure, failure);
        _priority.Writer.TryComplete(failure);
        while (_priority.Reader.TryRead(out (PullKey Key, TaskCompletionSource Done, long Enqueued) queued))
        {
            Interlocked.Decrement(ref _priorityDemand);
            queued.Done.TrySetException(failure);
        }
    }

    /// <summary>One priority-pull request: its keys, their waiters, the reply buffer.</summary>
    private sealed class PriorityBatch
    {
        public PullKey[] Keys { get; } = new PullKey[MigrationSource.MaxPriorityKeys];
        public TaskCompletionSource[] Waiters { get; } = new TaskCompletionSource[MigrationSource.MaxPriorityKeys];
        public PullBuffer Buffer { get; } = new(4096);
        public int Count { get; private set; }

        /// <summary>When the batch's oldest miss was queued (its wait is the longest a read waited for this pull).</summary>
        public long Oldest { get; private set; }

        public void Add((PullKey Key, TaskCompletionSource Done, long Enqueued) item)
        {
            if (Count == 0 || item.Enqueued < Oldest)
                Oldest = item.Enqueued;
            Keys[Count] = item.Key;
            Waiters[Count++] = item.Done;
        }

        /// <summary>Completes the waiters (with <paramref name="failure"/> if not null) and empties the batch.</summary>
        public void Release(Exception? failure)
        {
            for (int i = 0; i < Count; i++)
            {
                if (failure is null)
                    Waiters[i].TrySetResult();
                else
                    Waiters[i].TrySetException(failure);
            }
            Array.Clear(Keys, 0, Count);
            Array.Clear(Waiters, 0, Count);
            Count = 0;
        }
    }

    /// <summary>Sends <paramref name="batch"/>'s priority pull, again while the source cannot be reached.</summary>
    private void CallWithRetry(PriorityBatch batch)
    {
        while (true)
        {
            try
            {
                _peer.PriorityPull(batch.Keys.AsMemory(0, batch.Count), batch.Buffer, _cancel);
                Stats.OnSourceAnswered();
                return;
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                Stats.OnSourceFailure(e);
                _cancel.ThrowIfCancellationRequested();
                Thread.Sleep(RetryDelay);
            }
        }
    }

    /// <summary>
    /// Background pulls run below client work: while reads wait for priority pulls, a partition pauses for about a
    /// millisecond after each chunk (the source's scan of it stalls too, once the connection's window is full), so the
    /// priority pull and the worker it wakes find a free core. Each chunk still moves, so a steady trickle of misses
    /// slows the background pulls down but never stops them.
    /// </summary>
    private void YieldToPriority()
    {
        if (Volatile.Read(ref _priorityDemand) > 0)
            Thread.Sleep(1);
    }

    /// <summary>Sleeps as long as the governor's rate asks after a chunk of <paramref name="bytes"/> payload bytes.</summary>
    private void Throttle(long bytes)
    {
        TimeSpan pause = Governor.Charge(bytes, System.Diagnostics.Stopwatch.GetTimestamp());
        if (pause > TimeSpan.Zero)
            Thread.Sleep(pause);
    }

    /// <summary>How long a pull waits before it asks an unreachable source again (and the first back-off after a failed pull).</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest back-off between two passes of background pulls the source failed.</summary>
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);

    /// <summary>The source cannot be reached, or a reply from it could not be read (the connection is dropped): ask again.</summary>
    private static bool IsUnreachable(Exception e) => e is IOException or System.Net.Sockets.SocketException or InvalidDataException;

    /// <summary>A failure of the source or of the way to it, not of this node: the background pulls start their pass over.</summary>
    private static bool IsRemoteFailure(Exception e) => IsUnreachable(e) || e is PeerException or TimeoutException;

    /// <summary>Runs a pull call again while the source cannot be reached (until the job is cancelled).</summary>
    private T Retry<T>(Func<ValueTask<T>> call)
    {
        while (true)
        {
            try
            {
                T result = Wait(call());
                Stats.OnSourceAnswered();
                return result;
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                Stats.OnSourceFailure(e);
                _cancel.ThrowIfCancellationRequested();
                Thread.Sleep(RetryDelay);
            }
        }
    }

    /// <summary>
    /// Installs pulled records insert-if-newer through one session, finishing pending ones before it returns. The
    /// session is opened at the first records (a job's priority batcher may never see a miss), since a store has few.
    /// </summary>
    private sealed class Applier(IKvStore store, PullStats stats) : IScanSink, ICompletionSink, IDisposable
    {
        private IKvSession? _session;

        public void Apply(PullBuffer records)
        {
            if (records.Count == 0)
                return;
            IKvSession session = _session ??= store.NewSession();
            records.ForEach(this);
            if (session.PendingCount > 0)
                session.CompletePending(this, wait: true);
        }

        public void OnRecord(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version)
        {
            StoreResult r = _session!.ApplyPulled(tenant, table, key, value, version, 0);
            if (r.Status == StoreStatus.Stale)
                stats.AddStale(1);
        }

        public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
        {
            if (result.Status == StoreStatus.Stale)
                stats.AddStale(1);
        }

        public void Dispose() => _session?.Dispose();
    }
}
