using System.Buffers.Binary;
using System.Text.Json;
using FASTER.core;

namespace Hybrid.Storage;

/// <summary>
/// <see cref="IKvStore"/> over Microsoft.FASTER.Core: a FasterKV (SpanByte keys and values, hybrid log spilling
/// to <c>DataDirectory/hlog</c>) holds the data; in Async/Sync modes a FasterLog (<c>DataDirectory/oplog</c>) is
/// the operation log with group commit, and periodic FASTER checkpoints (<c>DataDirectory/checkpoints</c>) bound
/// recovery. Recovery = recover the last checkpoint, then replay the operation log after the position that
/// checkpoint covers. See README.md for each mode's exact promise.
/// </summary>
public sealed class FasterKvStore : IKvStore
{
    private const string MetaFileName = "checkpoint.json";

    private readonly IDevice _logDevice;
    private readonly FasterKV<SpanByte, SpanByte> _kv;

    /// <summary>The FASTER store (internal: nothing outside this project sees FASTER types).</summary>
    internal FasterKV<SpanByte, SpanByte> Kv => _kv;

    private BucketPrefetch? _prefetch;

    /// <summary>Prefetches hash-index buckets for batched reads (found once, after recovery, at first use).</summary>
    internal BucketPrefetch Prefetch => _prefetch ??= BucketPrefetch.Of(_kv);
    private readonly OffThreadCheckpointCommits? _checkpointManager;
    private readonly IDevice? _opLogDevice;
    private readonly FasterLog? _opLog;
    private readonly object _sessionsLock = new();
    private readonly List<SessionFunctions> _sessions = [];
    private readonly Stack<int> _freeSlots = new();
    private readonly SemaphoreSlim _checkpointGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly ManualResetEventSlim _commitWake = new(false);
    private readonly Thread? _committer;
    private readonly Thread? _checkpointer;
    private int _committerSleeping;
    private long _durableUntil; // operation-log address below which commits and their directory entries are on disk
    private TaskCompletionSource _durableAdvanced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _syncedSegment = -1; // the last operation-log segment whose file's directory entry was flushed
    private readonly Lock _durableGate = new(); // the commit thread and a checkpoint may both advance durability
    private readonly string _opLogDirectory, _opLogCommitsDirectory; // flushed after commits (AdvanceDurable)
    private long _floor;
    private long _retiredMaxVersion;
    private long _lastCheckpointSequence;
    private Guid _lastCheckpointToken;
    private bool _disposed;

    /// <summary>Per-tenant stored bytes, one cell per session slot.</summary>
    internal TenantCounters Counters { get; }

    /// <summary>The version floor: every new write gets a version above it.</summary>
    internal ulong Floor => (ulong)Volatile.Read(ref _floor);

    /// <inheritdoc />
    public StoreOptions Options { get; }

    /// <summary>
    /// Thread-pool threads the pool starts without delay. FASTER's local devices write with blocking calls on pool
    /// threads, and its log commit waits on a pool thread for a write queued behind it; with the default minimum (one
    /// per core) a burst of writes left every pool thread blocked and the next write waited for the pool's thread
    /// injection, about 0.5 s per thread. Writers blocked meanwhile in the operation log (full until it flushes), and so
    /// did the workers running them (seen in the migrate bench as 0.2-0.9 s worker stalls).
    /// </summary>
    internal const int MinPoolThreads = 32;

    static FasterKvStore()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        if (workers < MinPoolThreads)
            ThreadPool.SetMinThreads(MinPoolThreads, Math.Max(io, MinPoolThreads));
    }

    private FasterKvStore(StoreOptions options)
    {
        Options = options;
        Counters = new TenantCounters(options.MaxSessions);
        for (int i = options.MaxSessions - 1; i >= 0; i--)
            _freeSlots.Push(i);

        string dir = Path.GetFullPath(options.DataDirectory);
        _opLogDirectory = Path.Combine(dir, OpLogFolder);
        _opLogCommitsDirectory = Path.Combine(_opLogDirectory, "log-commits");
        if (options.Durability == DurabilityMode.Memory && Directory.Exists(dir))
        {
            RefuseToClearADurableStore(dir);
            ClearDirectory(dir);
        }
        Directory.CreateDirectory(dir);

        _logDevice = Devices.CreateLogDevice(Path.Combine(dir, LogFolder, "data.log"), recoverDevice: options.Durability != DurabilityMode.Memory);
        int pageBits = Log2(options.PageSizeBytes);
        _segmentBits = Math.Max(pageBits, 28);
        var logSettings = new LogSettings
        {
            LogDevice = _logDevice,
            PageSizeBits = pageBits,
            MemorySizeBits = Log2(options.MemoryBudgetBytes),
            SegmentSizeBits = _segmentBits,
            MutableFraction = 0.9,
            ReadCopyOptions = new ReadCopyOptions { CopyFrom = ReadCopyFrom.None, CopyTo = ReadCopyTo.None },
        };
        CheckpointSettings? checkpointSettings = null;
        if (options.Durability != DurabilityMode.Memory)
        {
            _checkpointManager = new OffThreadCheckpointCommits(new DeviceLogCommitCheckpointManager(
                new LocalStorageNamedDeviceFactory(), new DefaultCheckpointNamingScheme(Path.Combine(dir, CheckpointsFolder)), removeOutdated: false));
            checkpointSettings = new CheckpointSettings { CheckpointManager = _checkpointManager };
        }
        _kv = new FasterKV<SpanByte, SpanByte>(options.IndexBuckets, logSettings, checkpointSettings);

        if (options.Durability == DurabilityMode.Memory)
            return;

        // An entry (header + key + value with their lengths) must fit in one operation-log page.
        int opLogPageBits = Math.Max(20, Log2(options.MaxKeyBytes + options.MaxValueBytes + StoreOptions.RecordOverheadBytes) + 1);
        _opLogDevice = Devices.CreateLogDevice(Path.Combine(dir, OpLogFolder, "data.log"), recoverDevice: true);
        _opLog = new FasterLog(new FasterLogSettings
        {
            LogDevice = _opLogDevice,
            LogCommitDir = Path.Combine(dir, OpLogFolder),
            PageSizeBits = opLogPageBits,
            MemorySizeBits = opLogPageBits + 3,
            SegmentSizeBits = OpLogSegmentBits,
        });
        Recover(dir);
        _durableUntil = _opLog.CommittedUntilAddress; // recovered from disk: durable already
        _committer = new Thread(CommitLoop) { IsBackground = true, Name = "hybrid-storage-commit" };
        _committer.Start();
        if (options.CheckpointInterval > TimeSpan.Zero)
        {
            _checkpointer = new Thread(CheckpointLoop) { IsBackground = true, Name = "hybrid-storage-checkpoint" };
            _checkpointer.Start();
        }
    }

    /// <summary>
    /// Opens (and in Async/Sync modes recovers) the store in <see cref="StoreOptions.DataDirectory"/>. In Memory mode
    /// the directory's previous content is deleted. Blocks during recovery.
    /// </summary>
    public static FasterKvStore Open(StoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new FasterKvStore(options);
    }

    /// <inheritdoc />
    public IKvSession NewSession() => CreateSession();

    internal KvSession CreateSession()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int slot;
        lock (_sessionsLock)
        {
            if (!_freeSlots.TryPop(out slot))
                throw new InvalidOperationException($"more than MaxSessions ({Options.MaxSessions}) sessions open");
        }
        var functions = new SessionFunctions(this, slot);
        var session = _kv.For(functions).NewSession<SessionFunctions>(functions,
            sessionVariableLengthStructSettings: new SessionVariableLengthStructSettings<SpanByte, SpanByte> { valueLength = functions });
        lock (_sessionsLock)
            _sessions.Add(functions);
        return new KvSession(this, functions, session);
    }

    /// <summary>Called by a disposed session: keeps its max version and returns its counter slot.</summary>
    internal void Release(SessionFunctions functions)
    {
        lock (_sessionsLock)
        {
            _sessions.Remove(functions);
            _retiredMaxVersion = Math.Max(_retiredMaxVersion, Volatile.Read(ref functions.MaxIssued));
            _freeSlots.Push(functions.Slot);
        }
    }

    /// <inheritdoc />
    public ISlotScanner NewScanner() => new SlotScanner(this, CreateSession());

    /// <inheritdoc />
    public ScanCursor[] PlanScan(int partitions, long from = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        long end = _kv.Log.TailAddress;
        // Make everything below `end` immutable and wait until no operation that began before can still be writing
        // there: after this no record below `end` changes or becomes valid later, so a scan cannot skip a record
        // that was being written while it passed.
        _kv.Log.ShiftReadOnlyAddress(end, wait: true);
        long begin = Math.Max(from, _kv.Log.BeginAddress);
        if (begin >= end)
            return [];
        long pageSize = Options.PageSizeBytes;
        long per = Math.Max(pageSize, ((end - begin) / partitions + pageSize - 1) / pageSize * pageSize);
        var cursors = new List<ScanCursor>(partitions);
        long start = begin;
        while (start < end)
        {
            long stop = Math.Min(end, (start / pageSize * pageSize) + per);
            if (cursors.Count == partitions - 1)
                stop = end;
            cursors.Add(new ScanCursor(start, stop));
            start = stop;
        }
        return [.. cursors];
    }

    /// <inheritdoc />
    public long Incarnation { get; } = Random.Shared.NextInt64(1, long.MaxValue);

    /// <inheritdoc />
    public ulong MaxVersion
    {
        get
        {
            long max = Math.Max(Volatile.Read(ref _floor), Volatile.Read(ref _retiredMaxVersion));
            lock (_sessionsLock)
            {
                foreach (var s in _sessions)
                    max = Math.Max(max, Volatile.Read(ref s.MaxIssued));
            }
            return (ulong)max;
        }
    }

    /// <inheritdoc />
    public void RaiseVersionFloor(ulong floor)
    {
        if (floor >= RecordLayout.VersionLimit)
            throw new ArgumentOutOfRangeException(nameof(floor));
        if (!RaiseFloorInMemory(floor))
            return;
        // Logged, not waited for: it is durable with the next group commit, and every write logged after it (so every
        // write a Sync-mode client has been told is durable) commits after it. A migration target that crashes before
        // that commit raises its floor from the source again when it recovers (ClusterMember.Recover), so the wait
        // (one commit, 0.2-1 s while the disk is busy) no longer delays the moment the target serves.
        var header = new LogEntryHeader { Kind = LogEntryKind.Floor, Arg = floor };
        LogEntry(header, default, default, wait: false);
    }

    private bool RaiseFloorInMemory(ulong floor)
    {
        long current;
        do
        {
            current = Volatile.Read(ref _floor);
            if ((ulong)current >= floor)
                return false;
        }
        while (Interlocked.CompareExchange(ref _floor, (long)floor, current) != current);
        return true;
    }

    /// <inheritdoc />
    public long DropSlots(int slotLo, int slotHi)
    {
        long removed = DropSlotsCore(slotLo, slotHi);
        LogEntry(new LogEntryHeader { Kind = LogEntryKind.Drop, SlotLo = (ushort)slotLo, SlotHi = (ushort)slotHi }, default, default);
        return removed;
    }

    private long DropSlotsCore(int slotLo, int slotHi)
    {
        CheckSlotRange(slotLo, slotHi);
        var victims = new List<(byte[] Key, long LiveBytes)>();
        using (var scanner = new SlotScanner(this, CreateSession()))
        {
            foreach (var cursor in PlanScan(1))
            {
                var c = cursor;
                while (!c.IsDone)
                {
                    c = scanner.ScanCore(c, slotLo, slotHi, int.MaxValue, int.MaxValue, includeTombstones: true,
                        (key, meta, data) => victims.Add((key.ToArray(),
                            RecordLayout.IsTombstone(meta) ? 0 : key.Length - RecordLayout.KeyPrefixBytes + data.Length + RecordLayout.AccountingOverhead)));
                }
            }
        }
        using var session = CreateSession();
        foreach (var (key, liveBytes) in victims)
        {
            unsafe
            {
                fixed (byte* p = key)
                {
                    var k = SpanByte.FromPointer(p, key.Length);
                    session.Raw.Delete(ref k);
                }
            }
            if (liveBytes != 0)
                session.Functions.AddTenantBytes(RecordLayout.Tenant(key), -liveBytes, -1);
        }
        session.Raw.CompletePending(wait: true);
        return victims.Count;
    }

    internal static void CheckSlotRange(int slotLo, int slotHi)
    {
        if (slotLo < 0 || slotHi >= Slot.Count || slotLo > slotHi)
            throw new ArgumentOutOfRangeException(nameof(slotLo), $"slot range [{slotLo}, {slotHi}] is not within [0, {Slot.Count - 1}]");
    }

    /// <inheritdoc />
    public long TenantBytes(uint tenant) => Counters.Total(tenant);

    /// <inheritdoc />
    public long TenantRecords(uint tenant) => Counters.Total(tenant, field: 1);

    /// <inheritdoc />
    public StoreMetrics GetMetrics() => new(
        _kv.Log.MemorySizeBytes + _kv.IndexSize * 64,
        _kv.Log.TailAddress - _kv.Log.BeginAddress,
        _opLog is null ? 0 : _opLog.TailAddress - _opLog.BeginAddress,
        _opLog is null ? 0 : Volatile.Read(ref _durableUntil),
        MaxVersion,
        Volatile.Read(ref _lastCheckpointSequence));

    // ------------------------------------------------------------------ operation log and durability

    /// <summary>
    /// Appends a record's new state to the operation log; returns its commit sequence (0 in Memory mode).
    /// Called inside FASTER callbacks with the record locked, so the log order of one key is its write order.
    /// </summary>
    internal long LogRecord(ref SpanByte key, ref SpanByte value)
    {
        if (_opLog is null)
            return 0;
        _opLog.Enqueue(new LogEntryHeader { Kind = LogEntryKind.Record }, ref key, ref value, out long address);
        if (Options.Durability == DurabilityMode.Sync && Volatile.Read(ref _committerSleeping) != 0)
            _commitWake.Set();
        return address + 1;
    }

    /// <summary>Logs a floor raise or slot drop and returns once it is durable (these calls are rare and blocking).</summary>
    private unsafe void LogEntry(LogEntryHeader header, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, bool wait = true)
    {
        if (_opLog is null)
            return;
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var ks = SpanByte.FromPointer(k, key.Length);
            var vs = SpanByte.FromPointer(v, value.Length);
            _opLog.Enqueue(header, ref ks, ref vs, out long address);
            _commitWake.Set();
            if (wait)
                WaitDurableAsync(address + 1).AsTask().GetAwaiter().GetResult();
        }
    }

    /// <inheritdoc />
    public bool IsDurable(long sequence) => _opLog is null || sequence <= Volatile.Read(ref _durableUntil);

    /// <inheritdoc />
    public ValueTask WaitDurableAsync(long sequence, CancellationToken cancellationToken = default)
    {
        if (IsDurable(sequence))
            return ValueTask.CompletedTask;
        _commitWake.Set();
        return WaitAdvancedAsync(sequence, cancellationToken);
    }

    private async ValueTask WaitAdvancedAsync(long sequence, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Read the signal before the address: AdvanceDurable writes the address before it completes the signal.
            Task advanced = Volatile.Read(ref _durableAdvanced).Task;
            if (IsDurable(sequence))
                return;
            await advanced.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Commits the operation log and makes what it committed durable: FASTER writes each commit's metadata into a new
    /// file (<c>oplog/log-commits/commit.N.0</c>) and each 256 MB of log into a new segment file, and a new file
    /// survives a machine crash only once its directory is flushed. Only then does <see cref="IsDurable"/> cover it.
    /// </summary>
    private async ValueTask CommitDurablyAsync(CancellationToken cancellationToken)
    {
        var log = _opLog!;
        await log.CommitAsync(cancellationToken).ConfigureAwait(false);
        AdvanceDurable(log.CommittedUntilAddress);
    }

    private void AdvanceDurable(long committed)
    {
        lock (_durableGate)
        {
            // Under the gate: a caller that finds the segment's entry claimed knows it is flushed, not just claimed.
            if (Options.SyncDirectory is { } sync)
            {
                long segment = Math.Max(0, committed - 1) >> OpLogSegmentBits;
                if (segment != _syncedSegment)
                {
                    sync(_opLogDirectory);
                    _syncedSegment = segment;
                }
                sync(_opLogCommitsDirectory);
            }
            if (committed > _durableUntil)
                Volatile.Write(ref _durableUntil, committed);
        }
        Interlocked.Exchange(ref _durableAdvanced, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    /// <summary>
    /// Group commit. Sync: commits whenever the log has uncommitted entries, sleeping only when it has none (writers
    /// wake it). Async: commits every <see cref="StoreOptions.CommitInterval"/>.
    /// </summary>
    private void CommitLoop()
    {
        var log = _opLog!;
        bool sync = Options.Durability == DurabilityMode.Sync;
        int idleMs = sync ? 10 : Math.Max(1, (int)Options.CommitInterval.TotalMilliseconds);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (log.TailAddress > Volatile.Read(ref _durableUntil))
                {
                    CommitDurablyAsync(_stop.Token).AsTask().GetAwaiter().GetResult();
                    if (sync)
                        continue;
                }
                _commitWake.Reset();
                Interlocked.Exchange(ref _committerSleeping, 1); // full fence before re-reading the tail (Dekker with writers)
                if (!sync || log.TailAddress <= Volatile.Read(ref _durableUntil))
                    _commitWake.Wait(idleMs, _stop.Token);
                Volatile.Write(ref _committerSleeping, 0);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (Exception e) when (Options.OnCommitFailure is { } failed)
            {
                // A failed commit (FASTER's CommitFailureException: "error code 4294967295" on a full disk) leaves the
                // log's tail undurable for good: nothing waiting for it is acknowledged; the owner stops.
                failed(e);
                return;
            }
        }
    }

    private void CheckpointLoop()
    {
        while (!_stop.Token.WaitHandle.WaitOne(Options.CheckpointInterval))
        {
            try
            {
                CheckpointAsync(_stop.Token).AsTask().GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        if (_opLog is null)
            return 0;
        await _checkpointGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Every write logged below `covered` changed the KV before this point, hence before the checkpoint's
            // version switch, so the checkpoint contains it. Writes logged later may also be in it; replaying them
            // again is harmless (install-if-newer).
            _checkpointManager!.BeginCheckpoint();
            long covered = _opLog.TailAddress;
            var (success, token) = await _kv.TakeFullCheckpointAsync(CheckpointType.FoldOver, cancellationToken).ConfigureAwait(false);
            if (!success)
            {
                // FASTER refuses to start while a checkpoint runs: one whose caller was cancelled goes on inside FASTER
                // after the gate is released (seen when a node stopped right after a cancelled migration's checkpoint).
                // Let it finish, then take ours.
                await _kv.CompleteCheckpointAsync(cancellationToken).ConfigureAwait(false);
                _checkpointManager.BeginCheckpoint();
                (success, token) = await _kv.TakeFullCheckpointAsync(CheckpointType.FoldOver, cancellationToken).ConfigureAwait(false);
            }
            if (!success)
                throw new InvalidOperationException("FASTER checkpoint failed: another checkpoint was still running");
            await _checkpointManager!.WhenCommitted().WaitAsync(cancellationToken).ConfigureAwait(false);
            // Read now, not before the version switch: FASTER puts into the checkpoint every write made until each
            // thread acknowledged the switch, and a write whose log entry is at or above `covered` replays as refused
            // (its record is already there), so only this value counts its version after a crash. Every such write
            // has issued its version by now; a later one only makes the floor higher, which is harmless.
            ulong maxVersion = MaxVersion;
            SyncCheckpointFiles(token);
            WriteMeta(new CheckpointMeta(token, covered, maxVersion));
            _lastCheckpointToken = token;
            PurgeUnnamedCheckpoints();
            _opLog.TruncateUntil(covered);
            await CommitDurablyAsync(cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _lastCheckpointSequence, covered);
            return covered;
        }
        finally
        {
            _checkpointGate.Release();
        }
    }

    private sealed record CheckpointMeta(Guid Token, long CoveredSequence, ulong MaxVersion);

    /// <summary>The operation log's first address: its begin until a checkpoint truncates it.</summary>
    private const long FirstOpLogAddress = 64;

    /// <summary>
    /// After a checkpoint's recovery: every hybrid-log segment file below the recovered log's flushed address is there
    /// and long enough. FASTER recovers a missing or shortened segment silently (a new empty file): its records would
    /// read as absent, or a value cut by the end of the file as zeros with status Ok.
    /// </summary>
    private void CheckLogFiles(string dir) => CheckSegmentFiles(Path.Combine(dir, LogFolder), _kv.Log.BeginAddress, _kv.Log.ReadOnlyAddress, _segmentBits, "the checkpoint's log");

    /// <summary>
    /// Every segment file of the log in <paramref name="folder"/> that holds addresses <paramref name="begin"/> to
    /// <paramref name="end"/> is there and reaches <paramref name="end"/>: a file cut inside a page reads as zeros
    /// (FASTER replays it as the log's end, or as torn records), so its length is what tells.
    /// </summary>
    private static void CheckSegmentFiles(string folder, long begin, long end, int segmentBits, string what)
    {
        for (long segment = begin >> segmentBits; end > begin && segment <= (end - 1) >> segmentBits; segment++)
        {
            string file = Path.Combine(folder, "data.log." + segment.ToString(System.Globalization.CultureInfo.InvariantCulture));
            long needed = Math.Min(1L << segmentBits, end - (segment << segmentBits));
            var info = new FileInfo(file);
            if (!info.Exists || info.Length < needed)
            {
                // A missing segment is there by now, empty: the log device creates the files it opens.
                throw new InvalidDataException($"{file} is {(info.Exists && info.Length > 0 ? $"{info.Length} bytes, cut short" : "missing or empty")}: {what} needs "
                    + $"{needed} bytes of it, and the store would open with records missing or torn. Restore it (or the whole data directory "
                    + "from a backup), or move the data directory away to start empty");
            }
        }
    }

    /// <summary>
    /// Memory durability starts empty and deletes what its directory holds: refused when that is a durable store (a
    /// checkpoint or an operation log), which a mistyped <c>--durability</c> would otherwise wipe.
    /// </summary>
    private static void RefuseToClearADurableStore(string dir)
    {
        bool opLog = Directory.Exists(Path.Combine(dir, OpLogFolder))
            && Directory.EnumerateFiles(Path.Combine(dir, OpLogFolder), "*", SearchOption.AllDirectories).Any(f => new FileInfo(f).Length > 0);
        if (File.Exists(Path.Combine(dir, MetaFileName)) || opLog)
        {
            throw new InvalidOperationException($"{dir} holds a durable store (async or sync durability); memory durability starts empty and "
                + "would delete it. Open it with its durability, or give memory durability another data directory");
        }
    }

    /// <summary>
    /// Flushes the directory entries of the files checkpoint <paramref name="token"/> created (its folders under
    /// <c>checkpoints/</c>, and the <c>hlog/</c> segments its fold-over wrote) before <c>checkpoint.json</c> names it:
    /// the operation log below it is truncated next, so after a machine crash the checkpoint is all there is.
    /// </summary>
    private void SyncCheckpointFiles(Guid token)
    {
        if (Options.SyncDirectory is not { } sync)
            return;
        foreach (string part in s_checkpointParts)
        {
            string folder = Path.Combine(CheckpointDirectory, part);
            string mine = Path.Combine(folder, token.ToString());
            if (Directory.Exists(mine))
                sync(mine);
            if (Directory.Exists(folder))
                sync(folder);
        }
        sync(CheckpointDirectory);
        sync(Path.Combine(Options.DataDirectory, LogFolder));
        sync(Options.DataDirectory);
    }

    private void WriteMeta(CheckpointMeta meta)
    {
        string path = Path.Combine(Options.DataDirectory, MetaFileName);
        string tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
        {
            JsonSerializer.Serialize(f, meta);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
        // The old checkpoint is deleted and the op log truncated next: the rename must be on disk first.
        Options.SyncDirectory?.Invoke(Options.DataDirectory);
    }

    private void Recover(string dir)
    {
        string metaPath = Path.Combine(dir, MetaFileName);
        long replayFrom = _opLog!.BeginAddress;
        if (!File.Exists(metaPath) && replayFrom > FirstOpLogAddress)
        {
            // The operation log is truncated only after checkpoint.json names the checkpoint that covers what was cut:
            // without it the store would open without those writes, and then purge the checkpoint that holds them.
            throw new InvalidDataException($"{metaPath} is missing, but the operation log was truncated after a checkpoint named there: "
                + "opening would lose every write up to that checkpoint. Restore the file (or the whole data directory from a backup), "
                + "or move the data directory away to start empty");
        }
        if (File.Exists(metaPath))
        {
            CheckpointMeta meta;
            try
            {
                meta = JsonSerializer.Deserialize<CheckpointMeta>(File.ReadAllText(metaPath))
                    ?? throw new InvalidDataException($"{metaPath} is empty");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{metaPath} is damaged ({e.Message}): it names the checkpoint to recover from", e);
            }
            try
            {
                _kv.Recover(meta.Token);
            }
            catch (Exception e) when (e is FasterException or IOException or ArgumentException)
            {
                throw new InvalidDataException($"checkpoint {meta.Token} that {metaPath} names cannot be recovered: {e.Message}", e);
            }
            CheckLogFiles(dir);
            _lastCheckpointToken = meta.Token;
            _lastCheckpointSequence = meta.CoveredSequence;
            _floor = (long)meta.MaxVersion;
            replayFrom = Math.Max(replayFrom, meta.CoveredSequence);
        }
        using (var session = CreateSession())
        {
            session.Functions.LogWrites = false;
            long committed = _opLog.CommittedUntilAddress;
            ulong replayed = 0;
            CheckSegmentFiles(Path.Combine(dir, OpLogFolder), replayFrom, committed, OpLogSegmentBits, "the operation log up to its last commit");
            try
            {
                using var it = _opLog.Scan(replayFrom, committed);
                while (it.GetNext(out byte[] entry, out int length, out _))
                    replayed = Math.Max(replayed, ReplayEntry(session, entry.AsSpan(0, length)));
            }
            catch (FasterException e)
            {
                // A segment deleted or cut short below the committed address ("Uninitialized page found during scan").
                throw new InvalidDataException($"the operation log in {Path.Combine(dir, OpLogFolder)} is damaged below its last commit ({e.Message}): "
                    + "the writes logged since the last checkpoint cannot be replayed. Restore it (or the whole data directory from a backup), "
                    + "or move the data directory away to start empty", e);
            }
            // A refused entry (its record, or a newer one, is in the checkpoint) was issued all the same.
            _retiredMaxVersion = Math.Max(_retiredMaxVersion, Math.Max(session.Functions.MaxIssued, (long)replayed));
        }
        // Recovery treats every version seen as issued: later writes get larger versions whichever path
        // (checkpoint or replay) restored them, as after a clean close.
        RaiseFloorInMemory((ulong)Math.Max(_retiredMaxVersion, _floor));
        RebuildTenantCounters();
        PurgeUnnamedCheckpoints();
    }

    /// <summary>
    /// Deletes every checkpoint but the one the metadata names (<see cref="_lastCheckpointToken"/>): the one it replaced,
    /// and any a cancelled caller left behind (FASTER finishes a checkpoint whose caller went away, and nothing names
    /// it), each a full copy of the hash index. Runs only while no checkpoint is under way: after recovery, and after a
    /// checkpoint completed under the gate.
    /// </summary>
    /// <remarks>
    /// The folders are listed and deleted here rather than through FASTER's token listing and purge: the listing throws
    /// on any folder not named as a checkpoint (so an operator's folder there would stop the store from opening; those
    /// are left alone), and the purge spins for seconds on a folder it cannot delete. Purging is housekeeping: what
    /// cannot be listed or deleted now is tried again at the next checkpoint or open, and never fails either.
    /// </remarks>
    private void PurgeUnnamedCheckpoints()
    {
        if (_checkpointManager is null)
            return;
        foreach (string part in s_checkpointParts)
        {
            try
            {
                string folder = Path.Combine(CheckpointDirectory, part);
                if (!Directory.Exists(folder))
                    continue;
                foreach (string dir in Directory.GetDirectories(folder))
                {
                    if (Guid.TryParse(Path.GetFileName(dir), out Guid token) && token != _lastCheckpointToken)
                        Directory.Delete(dir, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for the next attempt (see remarks).
            }
        }
    }

    /// <summary>Where FASTER's default naming scheme puts a checkpoint's index and log parts, one folder per token.</summary>
    private static readonly string[] s_checkpointParts = ["index-checkpoints", "cpr-checkpoints"];

    /// <summary>Folders of the data directory: FASTER's hybrid log, the operation log of async/sync durability, checkpoints.</summary>
    private const string LogFolder = "hlog", OpLogFolder = "oplog", CheckpointsFolder = "checkpoints";

    private readonly int _segmentBits;
    private const int OpLogSegmentBits = 28;

    private string CheckpointDirectory => Path.Combine(Options.DataDirectory, CheckpointsFolder);

    /// <summary>Replays one operation-log entry; returns the version of a record entry (applied or refused), else 0.</summary>
    private ulong ReplayEntry(KvSession session, ReadOnlySpan<byte> entry)
    {
        var kind = (LogEntryKind)entry[0];
        ulong arg = BinaryPrimitives.ReadUInt64LittleEndian(entry[8..]);
        ReadOnlySpan<byte> rest = entry[LogEntryHeader.Size..];
        int keyLength = BinaryPrimitives.ReadInt32LittleEndian(rest);
        ReadOnlySpan<byte> key = rest.Slice(4, keyLength);
        rest = rest[(4 + keyLength)..];
        int valueLength = BinaryPrimitives.ReadInt32LittleEndian(rest);
        ReadOnlySpan<byte> value = rest.Slice(4, valueLength);
        switch (kind)
        {
            case LogEntryKind.Record:
                session.Replay(key, RecordLayout.Meta(value), value[RecordLayout.MetaBytes..]);
                return RecordLayout.VersionOf(RecordLayout.Meta(value));
            case LogEntryKind.Floor:
                RaiseFloorInMemory(arg);
                return 0;
            case LogEntryKind.Drop:
                DropSlotsCore(BinaryPrimitives.ReadUInt16LittleEndian(entry[4..]), BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]));
                return 0;
            default:
                throw new InvalidDataException($"unknown operation-log entry kind {kind}");
        }
    }

    /// <summary>After recovery the per-tenant bytes and records are recomputed from the live records (one pass over the log).</summary>
    private void RebuildTenantCounters()
    {
        Counters.Clear(); // replay counted its own writes; the pass below counts every live record once
        using var scanner = new SlotScanner(this, CreateSession());
        foreach (var cursor in PlanScan(1))
        {
            var c = cursor;
            while (!c.IsDone)
            {
                c = scanner.ScanCore(c, 0, Slot.Count - 1, int.MaxValue, int.MaxValue, includeTombstones: false,
                    (key, _, data) => scanner.Functions.AddTenantBytes(RecordLayout.Tenant(key),
                        key.Length - RecordLayout.KeyPrefixBytes + data.Length + RecordLayout.AccountingOverhead, 1));
            }
        }
    }

    // ------------------------------------------------------------------ lifetime

    /// <summary>
    /// Clean close: in Async/Sync modes commits the operation log and takes a checkpoint, so nothing acknowledged is
    /// lost and the next open replays little. Sessions must be disposed first.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        if (_opLog is not null)
        {
            CommitDurablyAsync(default).AsTask().GetAwaiter().GetResult();
            CheckpointAsync().AsTask().GetAwaiter().GetResult();
        }
        Shutdown();
    }

    /// <summary>
    /// Test hook for crash tests: stops the background threads and releases files WITHOUT committing the operation
    /// log or checkpointing, as if the process died (what is on disk is what a crash would leave).
    /// </summary>
    internal void SimulateCrash() => Shutdown();

    private void Shutdown()
    {
        _disposed = true;
        _stop.Cancel();
        _committer?.Join();
        _checkpointer?.Join();
        _opLog?.Dispose();
        _opLogDevice?.Dispose();
        _kv.Dispose();
        _logDevice.Dispose();
        _checkpointManager?.Dispose();
        _commitWake.Dispose();
        _checkpointGate.Dispose();
        _stop.Dispose();
    }

    private static int Log2(long value) => 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)value);

    private static void ClearDirectory(string dir)
    {
        foreach (var sub in new[] { LogFolder, OpLogFolder, CheckpointsFolder })
        {
            string path = Path.Combine(dir, sub);
            if (Directory.Exists(path))
                Directory.Delete(path, recursive: true);
        }
        File.Delete(Path.Combine(dir, MetaFileName));
    }
}
