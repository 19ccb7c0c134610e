using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FASTER.core;

namespace Hybrid.Storage;

/// <summary>
/// A worker's session: a FASTER client session plus pinned scratch buffers for the stored key
/// ([tenant][table][key]) and the RMW input, so an operation builds both without allocating.
/// </summary>
internal sealed unsafe class KvSession : IKvSession
{
    private readonly FasterKvStore _store;
    private readonly SessionFunctions _functions;
    private readonly ClientSession<SpanByte, SpanByte, SpanByte, StoreOutput, ulong, SessionFunctions> _session;
    private readonly UnsafeContext<SpanByte, SpanByte, SpanByte, StoreOutput, ulong, SessionFunctions> _run;
    private readonly BucketPrefetch _prefetch;
    private readonly byte[] _keyBuffer;
    private readonly byte[] _inputBuffer;
    private readonly byte* _keyPtr;
    private readonly byte* _inputPtr;
    private readonly int _maxKeyBytes;
    private readonly int _maxValueBytes;
    private bool _disposed;

    /// <summary>Reads between a refresh of a read run's epoch protection (lets the store's epoch advance).</summary>
    private const int ReadsPerRefresh = 256;

    /// <summary>A read run is open (<see cref="BeginReadRun"/>): reads go through <see cref="_run"/>.</summary>
    private bool _inRun;

    /// <summary>This thread holds the epoch through <see cref="_run"/> (taken at a run's first read).</summary>
    private bool _protected;

    private int _readsSinceRefresh;

    /// <summary>When the run's protection was taken or last refreshed (<see cref="Stopwatch"/> ticks).</summary>
    private long _protectedSince;

    /// <summary>Longest a run holding values near the log's head keeps the epoch without a refresh (<see cref="RefreshRun"/>).</summary>
    internal static readonly TimeSpan DefaultHoldNearHead = TimeSpan.FromMilliseconds(1);

    private long _holdNearHeadTicks = Ticks(DefaultHoldNearHead);

    /// <summary>This session's <see cref="DefaultHoldNearHead"/> (tests change it to take timing out of their checks).</summary>
    internal TimeSpan HoldNearHead
    {
        get => TimeSpan.FromSeconds((double)_holdNearHeadTicks / Stopwatch.Frequency);
        set => _holdNearHeadTicks = Ticks(value);
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Lowest log address of a value this run handed out in place (<see cref="GetInPlace"/>); <see cref="long.MaxValue"/>: none.</summary>
    private long _inPlaceFrom = long.MaxValue;

    internal KvSession(FasterKvStore store, SessionFunctions functions,
        ClientSession<SpanByte, SpanByte, SpanByte, StoreOutput, ulong, SessionFunctions> session)
    {
        _store = store;
        _functions = functions;
        _session = session;
        _run = session.UnsafeContext;
        _prefetch = store.Prefetch;
        _maxKeyBytes = store.Options.MaxKeyBytes;
        _maxValueBytes = store.Options.MaxValueBytes;
        _keyBuffer = GC.AllocateUninitializedArray<byte>(RecordLayout.KeyPrefixBytes + _maxKeyBytes, pinned: true);
        _inputBuffer = GC.AllocateUninitializedArray<byte>(StoreInput.HeaderBytes + _maxValueBytes, pinned: true);
        _keyPtr = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_keyBuffer));
        _inputPtr = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_inputBuffer));
    }

    internal SessionFunctions Functions => _functions;

    internal ClientSession<SpanByte, SpanByte, SpanByte, StoreOutput, ulong, SessionFunctions> Raw => _session;

    public int PendingCount => _functions.PendingCount;

    public long LastWriteSequence => _functions.LastSequence;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private SpanByte StoredKey(uint tenant, uint table, ReadOnlySpan<byte> key)
    {
        RecordLayout.WriteKeyPrefix(_keyBuffer, tenant, table);
        key.CopyTo(_keyBuffer.AsSpan(RecordLayout.KeyPrefixBytes));
        return SpanByte.FromPointer(_keyPtr, RecordLayout.KeyPrefixBytes + key.Length);
    }

    /// <inheritdoc />
    public void BeginReadRun()
    {
        _inRun = true;
        _inPlaceFrom = long.MaxValue;
    }

    /// <inheritdoc />
    public void PauseReadRun()
    {
        if (_inPlaceFrom == long.MaxValue)
            Unprotect();
        else if (_protected)
            RefreshRun();
    }

    /// <inheritdoc />
    public void EndReadRun()
    {
        _inRun = false;
        _inPlaceFrom = long.MaxValue;
        Unprotect();
    }

    /// <inheritdoc />
    public void ReleaseReadRun() => Unprotect();

    /// <summary>
    /// Lets the store's epoch move on while the run keeps its protection. With values out in place and one of them in
    /// the lowest quarter of the in-memory log (the part the next evictions take), not until the protection has been
    /// held for <see cref="HoldNearHead"/> (1 ms): the epoch waits for this run meanwhile (when the log is full, so do page
    /// flips and other threads' writes), which keeps a short step from losing its values; a longer one refreshes
    /// and may find one evicted (<see cref="RetainInPlace"/>).
    /// </summary>
    private void RefreshRun()
    {
        _readsSinceRefresh = 0;
        long now = Stopwatch.GetTimestamp();
        if (_inPlaceFrom != long.MaxValue && now - _protectedSince < _holdNearHeadTicks)
        {
            var log = _store.Kv.Log;
            if (_inPlaceFrom - log.HeadAddress < log.MemorySizeBytes / 4)
                return;
        }
        _run.Refresh();
        _protectedSince = now;
    }

    /// <inheritdoc />
    public bool RetainInPlace()
    {
        if (_inPlaceFrom == long.MaxValue)
            return true;
        if (!_protected)
        {
            Protect();
            // The protection is a plain store; the head must not be read before other threads can see it.
            Interlocked.MemoryBarrier();
        }
        // A page is evicted only after the head passed it, and (with this thread protected) only once this thread
        // refreshes its epoch again: a head at or below every value read in place means none of their pages can go.
        return _store.Kv.Log.HeadAddress <= _inPlaceFrom;
    }

    /// <inheritdoc />
    public void Prefetch(uint tenant, uint table, ReadOnlySpan<byte> packedKeys, int keySize)
    {
        if (!_prefetch.Enabled || keySize <= 0 || keySize > _maxKeyBytes)
            return;
        for (int at = 0; at + keySize <= packedKeys.Length; at += keySize)
            PrefetchKey(tenant, table, packedKeys.Slice(at, keySize));
    }

    /// <inheritdoc />
    public long PrefetchKey(uint tenant, uint table, ReadOnlySpan<byte> key)
    {
        if (!_prefetch.Enabled || key.IsEmpty || key.Length > _maxKeyBytes)
            return 0;
        SpanByte storedKey = StoredKey(tenant, table, key);
        long hash = _run.GetKeyHash(ref storedKey);
        _prefetch.Prefetch(hash);
        return hash;
    }

    /// <inheritdoc />
    public void PrefetchRecords(long token)
    {
        if (token != 0)
            _prefetch.PrefetchRecords(token);
    }

    /// <summary>Takes the read run's epoch protection (not held).</summary>
    private void Protect()
    {
        _run.BeginUnsafe();
        _protected = true;
        _readsSinceRefresh = 0;
        _protectedSince = Stopwatch.GetTimestamp();
    }

    /// <summary>Releases a read run's epoch protection, if held: every operation but a run's Get calls this first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Unprotect()
    {
        if (_protected)
        {
            _protected = false;
            _run.EndUnsafe();
        }
    }

    public StoreResult Get(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, ulong context)
    {
        StoreOutput result = default;
        result.Writer = output;
        return Read(tenant, table, key, ref result, context);
    }

    /// <inheritdoc />
    public StoreResult GetInPlace(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, out ReadOnlySpan<byte> value, out bool inPlace)
    {
        value = default;
        inPlace = false;
        if (!_inRun)
            throw new InvalidOperationException("an in-place read needs an open read run");
        StoreOutput result = default;
        result.Writer = output;
        result.InPlace = true;
        StoreResult read = Read(tenant, table, key, ref result, 0);
        if (read.Status == StoreStatus.Ok && result.Data != 0)
        {
            value = new ReadOnlySpan<byte>((void*)result.Data, result.Length);
            inPlace = true;
            if (result.Address < _inPlaceFrom)
                _inPlaceFrom = result.Address;
        }
        return read;
    }

    /// <summary>A read into <paramref name="result"/>: through the run's protection when a run is open.</summary>
    private StoreResult Read(uint tenant, uint table, ReadOnlySpan<byte> key, ref StoreOutput result, ulong context)
    {
        if (key.Length > _maxKeyBytes)
            return StoreResult.Of(StoreStatus.KeyTooLarge);
        SpanByte storedKey = StoredKey(tenant, table, key);
        SpanByte input = default;
        Status status;
        if (_inRun)
        {
            if (!_protected)
                Protect();
            else if (++_readsSinceRefresh >= ReadsPerRefresh)
                RefreshRun();
            status = _run.Read(ref storedKey, ref input, ref result, context);
        }
        else if (_functions.Completing)
        {
            // Started by a sink inside CompletePending, which holds the epoch: the session's own Read would release it
            // when done (FASTER's release does not count nesting), and the completions after this one would run unprotected.
            status = _run.Read(ref storedKey, ref input, ref result, context);
        }
        else
        {
            status = _session.Read(ref storedKey, ref input, ref result, context);
        }
        if (status.IsPending)
        {
            _functions.PendingCount++;
            return StoreResult.Of(StoreStatus.Pending);
        }
        if (status.IsFaulted)
            return StoreResult.Of(StoreStatus.Error);
        return status.Found ? result.ToResult() : StoreResult.Of(StoreStatus.NotFound);
    }

    public int MultiGet(uint tenant, uint table, ReadOnlySpan<ReadOnlyMemory<byte>> keys, ulong firstContext, ICompletionSink sink)
    {
        Unprotect();
        int pending = 0;
        ArrayBufferWriter<byte> scratch = _functions.Scratch;
        for (int i = 0; i < keys.Length; i++)
        {
            scratch.ResetWrittenCount();
            ulong context = firstContext + (ulong)i;
            StoreResult result = Get(tenant, table, keys[i].Span, scratch, context);
            if (result.IsPending)
                pending++;
            else
                sink.OnCompleted(context, result, scratch.WrittenSpan);
        }
        scratch.ResetWrittenCount();
        return pending;
    }

    public StoreResult Put(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        => Rmw(OpKind.Put, tenant, table, key, value, 0, context);

    public StoreResult PutIfVersion(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion, ulong context)
        => Rmw(OpKind.PutIfVersion, tenant, table, key, value, (long)expectedVersion, context);

    public StoreResult PutIfAbsent(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        => Rmw(OpKind.PutIfAbsent, tenant, table, key, value, 0, context);

    public StoreResult PutIfExists(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        => Rmw(OpKind.PutIfExists, tenant, table, key, value, 0, context);

    public StoreResult Delete(uint tenant, uint table, ReadOnlySpan<byte> key, ulong context)
        => Rmw(OpKind.Delete, tenant, table, key, default, 0, context);

    public StoreResult Increment(uint tenant, uint table, ReadOnlySpan<byte> key, long delta, ulong context)
        => Rmw(OpKind.Increment, tenant, table, key, default, delta, context);

    public StoreResult Append(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        => Rmw(OpKind.Append, tenant, table, key, value, 0, context);

    public StoreResult ApplyPulled(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version, ulong context)
    {
        if (version == 0 || version >= RecordLayout.VersionLimit)
            throw new ArgumentOutOfRangeException(nameof(version), "a pulled version is in 1..2^62-1");
        return Rmw(OpKind.ApplyPulled, tenant, table, key, value, (long)version, context);
    }

    /// <summary>Recovery: installs a logged (meta, data) for a stored key if newer. Blocks on disk reads.</summary>
    internal void Replay(ReadOnlySpan<byte> storedKey, ulong meta, ReadOnlySpan<byte> data)
    {
        Unprotect();
        storedKey.CopyTo(_keyBuffer);
        SpanByte key = SpanByte.FromPointer(_keyPtr, storedKey.Length);
        RmwRaw(OpKind.Replay, ref key, data, (long)meta, 0);
        if (_functions.PendingCount > 0)
            _session.CompletePending(wait: true);
    }

    private StoreResult Rmw(OpKind op, uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, long arg, ulong context)
    {
        if (key.Length > _maxKeyBytes)
            return StoreResult.Of(StoreStatus.KeyTooLarge);
        if (data.Length > _maxValueBytes)
            return StoreResult.Of(StoreStatus.ValueTooLarge);
        SpanByte storedKey = StoredKey(tenant, table, key);
        return RmwRaw(op, ref storedKey, data, arg, context);
    }

    private StoreResult RmwRaw(OpKind op, ref SpanByte storedKey, ReadOnlySpan<byte> data, long arg, ulong context)
    {
        // Copy first: the data may be a value this run lent in place (GetInPlace), valid only while it is protected.
        StoreInput.WriteHeader(_inputBuffer, op, arg);
        data.CopyTo(_inputBuffer.AsSpan(StoreInput.HeaderBytes));
        Unprotect();
        SpanByte input = SpanByte.FromPointer(_inputPtr, StoreInput.HeaderBytes + data.Length);
        StoreOutput result = default;
        result.Status = StoreStatus.Error;
        // From a sink inside CompletePending: under its epoch, like a read there (see Read).
        Status status = _functions.Completing ? _run.RMW(ref storedKey, ref input, ref result, context) : _session.RMW(ref storedKey, ref input, ref result, context);
        if (status.IsPending)
        {
            _functions.PendingCount++;
            return StoreResult.Of(StoreStatus.Pending);
        }
        return status.IsFaulted ? StoreResult.Of(StoreStatus.Error) : result.ToResult();
    }

    public int CompletePending(ICompletionSink sink, bool wait = false)
    {
        Unprotect();
        if (_functions.PendingCount == 0)
            return 0;
        // The sink runs inside FASTER's own protection: a Get it starts must not take the run's protection again.
        bool inRun = _inRun;
        _inRun = false;
        _functions.Sink = sink;
        _functions.Completing = true;
        _functions.Completed = 0;
        try
        {
            _session.CompletePending(wait);
            return _functions.Completed;
        }
        finally
        {
            _functions.Completing = false;
            _functions.Sink = null;
            _inRun = inRun;
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        EndReadRun();
        _session.Dispose();
        _store.Release(_functions);
    }
}
