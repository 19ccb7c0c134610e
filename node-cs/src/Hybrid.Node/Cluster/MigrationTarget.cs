using System.Threading.Channels;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The target side of a Rocksteady migration: carries out what the F# core decided for this node and decides
/// nothing itself. At <c>TransferOwnership</c> it raises the local version floor (<see cref="RaiseFloor"/>) and
/// starts the pulls of the range (<see cref="StartPulls(string, SlotRange, IMigrationPeer, CancellationToken)"/>): background pulls of N partitions in parallel,
/// pipelined (streams), applied insert-if-newer; and priority pulls, batched up to 16 keys,
/// of keys that reads missed. The coordinator then waits for <see cref="PullJob.CompleteAsync"/> (a catch-up pass
/// included) before it asks the core for <c>FinishPulls</c>.
/// </summary>
public sealed class MigrationTarget(IKvStore store, MigrationTrace trace, int partitions = 4)
{
    /// <summary>The store pulled records are applied to.</summary>
    public IKvStore Store => store;

    /// <summary>Caps each background-pull job at this many payload bytes per second (0 = no cap): an operator's throttle.</summary>
    public long MaxBytesPerSecond { get; init; }

    /// <summary>Decision <c>RaiseFloor</c>: every later write here gets a version above <paramref name="floor"/>.</summary>
    public void RaiseFloor(ulong floor) => store.RaiseVersionFloor(floor);

    /// <summary>
    /// Decision <c>StartPulls(range, source, this node)</c>: starts pulling <paramref name="range"/> through <paramref name="peer"/>.
    /// When the store is a <see cref="MigratingStore"/>, reads that miss in the range wait for priority pulls until the
    /// job completed.
    /// </summary>
    public PullJob StartPulls(string rangeName, SlotRange range, IMigrationPeer peer, CancellationToken cancellationToken = default) =>
        StartPulls(rangeName, range, peer, 0, serving: true, cancellationToken);

    /// <summary>
    /// Pulls the records of <paramref name="range"/> found in the source's log from address <paramref name="from"/> on.
    /// <paramref name="serving"/> = false for a copy made before this node serves the range (stop-and-copy): reads
    /// do not wait for it.
    /// </summary>
    public PullJob StartPulls(string rangeName, SlotRange range, IMigrationPeer peer, long from, bool serving, CancellationToken cancellationToken = default)
    {
        var job = new PullJob(store, trace, rangeName, range, peer, partitions, from, cancellationToken) { MaxBytesPerSecond = MaxBytesPerSecond };
        if (serving && store is MigratingStore migrating)
        {
            migrating.AddIncoming(job);
            _ = job.CompleteAsync().ContinueWith(_ => migrating.RemoveIncoming(job), TaskScheduler.Default);
        }
        return job;
    }
}

/// <summary>Counts of one pull job (read them after <see cref="PullJob.CompleteAsync"/>).</summary>
public sealed class PullStats
{
    private long _records, _bytes, _stale, _chunks, _priorityBatches, _priorityKeys, _planned, _scanned;

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

    /// <summary>Wall time from the start of the background pulls to the end of the catch-up pass.</summary>
    public TimeSpan BackgroundElapsed { get; internal set; }

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

    internal void AddStale(long n) => Interlocked.Add(ref _stale, n);

    internal void AddPriority(int keys)
    {
        Interlocked.Increment(ref _priorityBatches);
        Interlocked.Add(ref _priorityKeys, keys);
    }
}

/// <summary>
/// The pulls of one range to this node. Background partitions run on their own threads; read misses queue priority
/// pulls that one batcher thread sends, up to <see cref="MigrationSource.MaxPriorityKeys"/> keys per request and
/// <see cref="PriorityInFlight"/> requests outstanding.
/// </summary>
public sealed class PullJob
{
    private readonly IKvStore _store;
    private readonly MigrationTrace _trace;
    private readonly string _rangeName;
    private readonly SlotRange _range;
    private readonly IMigrationPeer _peer;
    private readonly int _partitions;
    private readonly long _from;
    private readonly CancellationToken _cancel;
    private readonly Channel<(PullKey Key, TaskCompletionSource Done)> _priority =
        Channel.CreateUnbounded<(PullKey, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _background;
    private readonly Task _priorityLoop;

    internal PullJob(IKvStore store, MigrationTrace trace, string rangeName, SlotRange range, IMigrationPeer peer, int partitions, long from, CancellationToken cancellationToken)
    {
        _store = store;
        _trace = trace;
        _rangeName = rangeName;
        _range = range;
        _peer = peer;
        _partitions = partitions;
        _from = from;
        _cancel = cancellationToken;
        _background = RunOnThread("pull-bg", RunBackground, background: true);
        _priorityLoop = RunOnThread("pull-prio", RunPriority, background: false);
    }

    /// <summary>The range being pulled.</summary>
    public SlotRange Range => _range;

    /// <summary>Caps the background pulls' payload bytes per second (0 = no cap).</summary>
    internal long MaxBytesPerSecond { get; init; }

    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>After <see cref="CompleteAsync"/>: the source log address up to which every record of the range was pulled.</summary>
    public long LogEnd { get; private set; }

    /// <summary>What was pulled so far.</summary>
    public PullStats Stats { get; } = new();

    /// <summary>
    /// A read of <paramref name="key"/> missed locally while the range is being pulled: completes once the key's record
    /// (if the source has one) is installed here, after which the read is retried locally. Completes at once when
    /// pulls already finished (the key is then here if it exists at all).
    /// </summary>
    public Task PullForReadAsync(PullKey key)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return _priority.Writer.TryWrite((key, done)) ? done.Task : Task.CompletedTask;
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

    private void RunBackground()
    {
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        ScanCursor[] plan = Retry(() => _peer.PlanPullsAsync(_partitions, _from, _cancel));
        RunPartitions(plan, 0);
        // Writes made while the first plan was scanned may lie beyond its end: one catch-up pass from that end.
        long end = _from;
        foreach (ScanCursor c in plan)
            end = Math.Max(end, c.End);
        ScanCursor[] catchUp = Retry(() => _peer.PlanPullsAsync(_partitions, end, _cancel));
        RunPartitions(catchUp, plan.Length);
        foreach (ScanCursor c in catchUp)
            end = Math.Max(end, c.End);
        LogEnd = end;
        Stats.BackgroundElapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
    }

    private void RunPartitions(ScanCursor[] plan, int firstIndex)
    {
        Stats.AddPlanned(plan);
        if (plan.Length == 0)
            return;
        var threads = new Task[plan.Length];
        for (int i = 0; i < plan.Length; i++)
        {
            ScanCursor start = plan[i];
            int index = firstIndex + i;
            threads[i] = RunOnThread("pull-part", () => RunPartition(start, index), background: true);
        }
        Task.WaitAll(threads, _cancel);
    }

    /// <summary>
    /// Pulls one partition as a stream (<see cref="IMigrationPeer.OpenPulls"/>: the source scans chunk i+1 while this
    /// thread applies chunk i). When the source cannot be reached the stream is opened again from the cursor after the
    /// last applied chunk (cursors are stateless, applies idempotent).
    /// </summary>
    private void RunPartition(ScanCursor cursor, int index)
    {
        using var applier = new Applier(_store.NewSession(), Stats);
        while (true)
        {
            try
            {
                using IPullStream stream = _peer.OpenPulls(_range, cursor, _cancel);
                while (true)
                {
                    PullBuffer chunk = stream.Read(out ScanCursor next);
                    Stats.AddScanned(Math.Min(next.Next, next.End) - cursor.Next);
                    applier.Apply(chunk);
                    cursor = next;
                    Stats.AddChunk(chunk.Count, chunk.PayloadBytes);
                    _trace.BackgroundPull(_rangeName, index);
                    if (next.IsDone)
                        return;
                    Throttle();
                }
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                // The source is down or restarting: ask again from the cursor after the last chunk applied.
                _cancel.ThrowIfCancellationRequested();
                Thread.Sleep(RetryDelay);
            }
        }
    }

    /// <summary>
    /// The priority batcher: takes up to <see cref="MigrationSource.MaxPriorityKeys"/> queued misses per request and
    /// keeps up to <see cref="PriorityInFlight"/> requests outstanding, so a miss waits about one round trip rather
    /// than for every batch queued ahead of it; applies each reply through its one session as it arrives and releases
    /// that batch's waiters. Ends when the queue is completed and drained.
    /// </summary>
    private void RunPriority()
    {
        using var applier = new Applier(_store.NewSession(), Stats);
        var free = new Stack<PriorityBatch>(Enumerable.Range(0, PriorityInFlight).Select(_ => new PriorityBatch()));
        var inFlight = new List<PriorityBatch>(PriorityInFlight);
        var waits = new List<Task>(PriorityInFlight + 1);
        ChannelReader<(PullKey Key, TaskCompletionSource Done)> reader = _priority.Reader;
        bool open = true;
        Task<bool>? more = null; // the one outstanding "more misses queued" wait, kept across rounds
        while (open || inFlight.Count > 0)
        {
            while (free.Count > 0 && reader.TryRead(out (PullKey Key, TaskCompletionSource Done) first))
            {
                PriorityBatch batch = free.Pop();
                batch.Add(first);
                while (batch.Count < MigrationSource.MaxPriorityKeys && reader.TryRead(out (PullKey Key, TaskCompletionSource Done) item))
                    batch.Add(item);
                batch.Call = CallWithRetryAsync(batch);
                inFlight.Add(batch);
            }
            waits.Clear();
            foreach (PriorityBatch b in inFlight)
                waits.Add(b.Call!);
            if (open && free.Count > 0)
                waits.Add(more ??= reader.WaitToReadAsync(_cancel).AsTask());
            if (waits.Count == 0)
                break;
            Task.WaitAny([.. waits], _cancel);
            if (more is { IsCompleted: true })
            {
                open = more.GetAwaiter().GetResult();
                more = null;
            }
            for (int i = 0; i < inFlight.Count; i++)
            {
                PriorityBatch b = inFlight[i];
                if (!b.Call!.IsCompleted)
                    continue;
                inFlight.RemoveAt(i--);
                if (b.Call.IsCompletedSuccessfully)
                {
                    applier.Apply(b.Buffer);
                    Stats.AddPriority(b.Count);
                    _trace.PriorityPull(_rangeName);
                    b.Release(null);
                    free.Push(b);
                    continue;
                }
                Exception failure = b.Call.Exception?.InnerException ?? new OperationCanceledException(_cancel);
                b.Release(failure);
                foreach (PriorityBatch other in inFlight)
                    other.Release(failure);
                throw failure;
            }
        }
    }

    /// <summary>Priority-pull requests outstanding at once (each up to <see cref="MigrationSource.MaxPriorityKeys"/> keys).</summary>
    public const int PriorityInFlight = 4;

    /// <summary>One priority-pull request: its keys, their waiters, the reply buffer, the call.</summary>
    private sealed class PriorityBatch
    {
        public PullKey[] Keys { get; } = new PullKey[MigrationSource.MaxPriorityKeys];
        public TaskCompletionSource[] Waiters { get; } = new TaskCompletionSource[MigrationSource.MaxPriorityKeys];
        public PullBuffer Buffer { get; } = new(4096);
        public int Count { get; private set; }
        public Task? Call { get; set; }

        public void Add((PullKey Key, TaskCompletionSource Done) item)
        {
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
            Call = null;
        }
    }

    /// <summary>Sends <paramref name="batch"/>'s priority pull, again while the source cannot be reached.</summary>
    private async Task CallWithRetryAsync(PriorityBatch batch)
    {
        while (true)
        {
            try
            {
                await _peer.PriorityPullAsync(batch.Keys.AsMemory(0, batch.Count), batch.Buffer, _cancel).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                _cancel.ThrowIfCancellationRequested();
                await Task.Delay(RetryDelay, _cancel).ConfigureAwait(false);
            }
        }
    }

    /// <summary>With a cap, sleeps while the bytes pulled so far are ahead of the cap's schedule.</summary>
    private void Throttle()
    {
        if (MaxBytesPerSecond <= 0)
            return;
        double due = (double)Stats.Bytes / MaxBytesPerSecond - System.Diagnostics.Stopwatch.GetElapsedTime(_started).TotalSeconds;
        if (due > 0)
            Thread.Sleep(TimeSpan.FromSeconds(Math.Min(due, 1)));
    }

    /// <summary>How long a pull waits before it asks an unreachable source again.</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);

    private static bool IsUnreachable(Exception e) => e is IOException or System.Net.Sockets.SocketException;

    /// <summary>Runs a pull call again while the source cannot be reached (until the job is cancelled).</summary>
    private T Retry<T>(Func<ValueTask<T>> call)
    {
        while (true)
        {
            try
            {
                return Wait(call());
            }
            catch (Exception e) when (IsUnreachable(e))
            {
                _cancel.ThrowIfCancellationRequested();
                Thread.Sleep(RetryDelay);
            }
        }
    }

    /// <summary>Installs pulled records insert-if-newer through one session, finishing pending ones before it returns.</summary>
    private sealed class Applier(IKvSession session, PullStats stats) : IScanSink, ICompletionSink, IDisposable
    {
        public void Apply(PullBuffer records)
        {
            records.ForEach(this);
            if (session.PendingCount > 0)
                session.CompletePending(this, wait: true);
        }

        public void OnRecord(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version)
        {
            StoreResult r = session.ApplyPulled(tenant, table, key, value, version, 0);
            if (r.Status == StoreStatus.Stale)
                stats.AddStale(1);
        }

        public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
        {
            if (result.Status == StoreStatus.Stale)
                stats.AddStale(1);
        }

        public void Dispose() => session.Dispose();
    }
}
