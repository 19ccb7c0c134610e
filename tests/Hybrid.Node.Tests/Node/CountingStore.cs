using System.Buffers;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Node;

/// <summary>Wraps the real store to count operations that went pending (so a test can prove the cold-read path ran).</summary>
internal sealed class CountingStore(IKvStore inner) : IKvStore
{
    private long _pending;

    internal long PendingOperations => Interlocked.Read(ref _pending);

    private long _lent;

    /// <summary>Makes <see cref="IKvSession.RetainInPlace"/> answer false: as if the log's head had passed a lent value.</summary>
    internal volatile bool EvictUnderLentValues;

    /// <summary>How many <see cref="IKvSession.RetainInPlace"/> calls answer true before one answers false (once; then true again).</summary>
    internal int RetainsBeforeEviction = int.MaxValue;

    /// <summary>Values read in place (<see cref="IKvSession.GetInPlace"/> lent them, no copy).</summary>
    internal long LentValues => Interlocked.Read(ref _lent);

    private int _maxPendingAtOnce;

    /// <summary>The most operations one session had pending at once (issued, not yet completed by CompletePending).</summary>
    internal int MaxPendingAtOnce => Volatile.Read(ref _maxPendingAtOnce);

    private volatile bool _holdCompletions;

    /// <summary>
    /// While true, completions wait: a worker's polling CompletePending finishes nothing (a waiting one, at a view change
    /// or a stop, still does), so a test can keep a cold read pending as long as it needs to.
    /// </summary>
    internal bool HoldCompletions
    {
        get => _holdCompletions;
        set => _holdCompletions = value;
    }

    private long _prefetches;

    /// <summary>
    /// A key whose gets and puts the store answers <see cref="StoreStatus.Unavailable"/> (as a key of a range moving here
    /// whose pull failed: nothing runs) <see cref="UnavailableAnswers"/> times, then runs as usual.
    /// </summary>
    internal byte[]? UnavailableKey;

    /// <summary>How many more of <see cref="UnavailableKey"/>'s operations are answered Unavailable.</summary>
    internal int UnavailableAnswers;

    private bool Refuses(ReadOnlySpan<byte> key) =>
        UnavailableKey is { } k && key.SequenceEqual(k) && Interlocked.Decrement(ref UnavailableAnswers) >= 0;

    /// <summary>Keys hinted through <see cref="IKvSession.Prefetch"/>.</summary>
    internal long Prefetches => Interlocked.Read(ref _prefetches);

    public StoreOptions Options => inner.Options;

    public long Incarnation => inner.Incarnation;

    public ulong MaxVersion => inner.MaxVersion;

    public IKvSession NewSession() => new Session(inner.NewSession(), this);

    public ISlotScanner NewScanner() => inner.NewScanner();

    public ScanCursor[] PlanScan(int partitions, long from = 0) => inner.PlanScan(partitions, from);

    public void RaiseVersionFloor(ulong floor) => inner.RaiseVersionFloor(floor);

    public long DropSlots(int slotLo, int slotHi) => inner.DropSlots(slotLo, slotHi);

    public long TenantBytes(uint tenant) => inner.TenantBytes(tenant);

    public long TenantRecords(uint tenant) => inner.TenantRecords(tenant);

    public StoreMetrics GetMetrics() => inner.GetMetrics();

    public bool IsDurable(long sequence) => inner.IsDurable(sequence);

    public ValueTask WaitDurableAsync(long sequence, CancellationToken cancellationToken = default) => inner.WaitDurableAsync(sequence, cancellationToken);

    public ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default) => inner.CheckpointAsync(cancellationToken);

    public void Dispose() => inner.Dispose();

    private sealed class Session(IKvSession inner, CountingStore owner) : IKvSession
    {
        public int PendingCount => inner.PendingCount;

        public long LastWriteSequence => inner.LastWriteSequence;

        private StoreResult Count(StoreResult result)
        {
            if (result.IsPending)
            {
                Interlocked.Increment(ref owner._pending);
                int now = inner.PendingCount, max;
                while ((max = Volatile.Read(ref owner._maxPendingAtOnce)) < now && Interlocked.CompareExchange(ref owner._maxPendingAtOnce, now, max) != max)
                {
                }
            }
            return result;
        }

        public void Prefetch(uint tenant, uint table, ReadOnlySpan<byte> packedKeys, int keySize)
        {
            Interlocked.Add(ref owner._prefetches, keySize > 0 ? packedKeys.Length / keySize : 0);
            inner.Prefetch(tenant, table, packedKeys, keySize);
        }

        public StoreResult Get(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, ulong context) =>
            owner.Refuses(key) ? StoreResult.Of(StoreStatus.Unavailable) : Count(inner.Get(tenant, table, key, output, context));

        public void BeginReadRun() => inner.BeginReadRun();

        public void PauseReadRun() => inner.PauseReadRun();

        public void EndReadRun() => inner.EndReadRun();

        public void ReleaseReadRun() => inner.ReleaseReadRun();

        public bool RetainInPlace() =>
            inner.RetainInPlace() && !owner.EvictUnderLentValues && Interlocked.Decrement(ref owner.RetainsBeforeEviction) != -1;

        public StoreResult GetInPlace(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, out ReadOnlySpan<byte> value, out bool inPlace)
        {
            if (owner.Refuses(key))
            {
                value = default;
                inPlace = false;
                return StoreResult.Of(StoreStatus.Unavailable);
            }
            var result = Count(inner.GetInPlace(tenant, table, key, output, out value, out inPlace));
            if (inPlace)
                Interlocked.Increment(ref owner._lent);
            return result;
        }

        public int MultiGet(uint tenant, uint table, ReadOnlySpan<ReadOnlyMemory<byte>> keys, ulong firstContext, ICompletionSink sink) =>
            inner.MultiGet(tenant, table, keys, firstContext, sink);

        public StoreResult Put(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
            owner.Refuses(key) ? StoreResult.Of(StoreStatus.Unavailable) : Count(inner.Put(tenant, table, key, value, context));

        public StoreResult PutIfVersion(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion, ulong context) =>
            Count(inner.PutIfVersion(tenant, table, key, value, expectedVersion, context));

        public StoreResult PutIfAbsent(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
            Count(inner.PutIfAbsent(tenant, table, key, value, context));

        public StoreResult PutIfExists(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
            Count(inner.PutIfExists(tenant, table, key, value, context));

        public StoreResult Delete(uint tenant, uint table, ReadOnlySpan<byte> key, ulong context) =>
            Count(inner.Delete(tenant, table, key, context));

        public StoreResult Increment(uint tenant, uint table, ReadOnlySpan<byte> key, long delta, ulong context) =>
            Count(inner.Increment(tenant, table, key, delta, context));

        public StoreResult Append(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
            Count(inner.Append(tenant, table, key, value, context));

        public StoreResult ApplyPulled(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version, ulong context) =>
            Count(inner.ApplyPulled(tenant, table, key, value, version, context));

        public int CompletePending(ICompletionSink sink, bool wait = false) =>
            owner.HoldCompletions && !wait ? 0 : inner.CompletePending(sink, wait);

        public void Dispose() => inner.Dispose();
    }
}
