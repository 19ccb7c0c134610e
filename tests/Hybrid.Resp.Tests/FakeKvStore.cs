using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using Hybrid.Storage;

namespace Hybrid.Resp.Tests;

/// <summary>
/// An in-memory stand-in for the FASTER store with the semantics IKvSession documents (versions, NX/XX,
/// INCRBY/APPEND rules), for testing the RESP layer alone. <see cref="PendingReads"/> makes every read go
/// Pending so the completion path is exercised.
/// </summary>
internal sealed class FakeKvStore : IKvStore
{
    private readonly ConcurrentDictionary<(uint Tenant, uint Table, string Key), (byte[] Value, ulong Version)> _data = new();
    private long _version;

    public bool PendingReads { get; set; }

    /// <summary>A key every read of which the store answers Unavailable (a key of a range moving here whose pull failed).</summary>
    public string? UnavailableKey { get; set; }

    /// <summary>Prefetch hints and reads, in call order ("prefetch k", "get k"), when set.</summary>
    public List<string>? Log { get; set; }

    public StoreOptions Options { get; } = new() { DataDirectory = "/nonexistent", Durability = DurabilityMode.Memory };

    public long Incarnation => 1;

    public ulong MaxVersion => (ulong)Interlocked.Read(ref _version);

    public int Count => _data.Count;

    public IKvSession NewSession() => new Session(this);

    public ISlotScanner NewScanner() => throw new NotSupportedException("not needed by the RESP tests");

    public ScanCursor[] PlanScan(int partitions, long from = 0) => throw new NotSupportedException("not needed by the RESP tests");

    public void RaiseVersionFloor(ulong floor) => throw new NotSupportedException("not needed by the RESP tests");

    public long DropSlots(int slotLo, int slotHi) => throw new NotSupportedException("not needed by the RESP tests");

    public long TenantBytes(uint tenant) => _data.Where(p => p.Key.Tenant == tenant).Sum(p => (long)Convert.FromBase64String(p.Key.Key).Length + p.Value.Value.Length);

    public long TenantRecords(uint tenant) => _data.Count(p => p.Key.Tenant == tenant);

    public StoreMetrics GetMetrics() => new(0, 0, 0, 0, MaxVersion, 0);

    public bool IsDurable(long sequence) => true;

    public ValueTask WaitDurableAsync(long sequence, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask<long> CheckpointAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(0L);

    public void Dispose()
    {
    }

    private ulong NextVersion() => (ulong)Interlocked.Increment(ref _version);

    private static string K(ReadOnlySpan<byte> key) => Convert.ToBase64String(key);

    private sealed class Session(FakeKvStore store) : IKvSession
    {
        private readonly Queue<(ulong Context, StoreResult Result, byte[] Value)> _pending = new();

        public int PendingCount => _pending.Count;

        public long LastWriteSequence => 0;

        public void Prefetch(uint tenant, uint table, ReadOnlySpan<byte> packedKeys, int keySize)
        {
            Assert.Equal(packedKeys.Length, keySize); // the RESP layer hints one key at a time
            store.Log?.Add("prefetch " + System.Text.Encoding.UTF8.GetString(packedKeys));
        }

        public StoreResult Get(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, ulong context)
        {
            store.Log?.Add("get " + System.Text.Encoding.UTF8.GetString(key));
            if (store.UnavailableKey is { } refused && key.SequenceEqual(System.Text.Encoding.UTF8.GetBytes(refused)))
                return StoreResult.Of(StoreStatus.Unavailable);
            var found = store._data.TryGetValue((tenant, table, K(key)), out var record);
            if (store.PendingReads)
            {
                _pending.Enqueue((context, found ? new StoreResult(StoreStatus.Ok, record.Version, record.Value.Length) : StoreResult.Of(StoreStatus.NotFound), found ? record.Value : []));
                return StoreResult.Of(StoreStatus.Pending);
            }
            if (!found)
            {
                return StoreResult.Of(StoreStatus.NotFound);
            }
            output.Write(record.Value);
            return new StoreResult(StoreStatus.Ok, record.Version, record.Value.Length);
        }

        public int MultiGet(uint tenant, uint table, ReadOnlySpan<ReadOnlyMemory<byte>> keys, ulong firstContext, ICompletionSink sink) =>
            throw new NotSupportedException("the RESP layer reads keys one by one");

        public StoreResult Put(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        {
            var version = store.NextVersion();
            store._data[(tenant, table, K(key))] = (value.ToArray(), version);
            return new StoreResult(StoreStatus.Ok, version);
        }

        public StoreResult PutIfVersion(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion, ulong context) =>
            throw new NotSupportedException("not used by RESP");

        public StoreResult PutIfAbsent(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        {
            var version = store.NextVersion();
            return store._data.TryAdd((tenant, table, K(key)), (value.ToArray(), version))
                ? new StoreResult(StoreStatus.Ok, version)
                : StoreResult.Of(StoreStatus.Exists);
        }

        public StoreResult PutIfExists(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context) =>
            store._data.ContainsKey((tenant, table, K(key))) ? Put(tenant, table, key, value, context) : StoreResult.Of(StoreStatus.NotFound);

        public StoreResult Delete(uint tenant, uint table, ReadOnlySpan<byte> key, ulong context) =>
            StoreResult.Of(store._data.TryRemove((tenant, table, K(key)), out _) ? StoreStatus.Ok : StoreStatus.NotFound);

        public StoreResult Increment(uint tenant, uint table, ReadOnlySpan<byte> key, long delta, ulong context)
        {
            var k = (tenant, table, K(key));
            long current = 0;
            if (store._data.TryGetValue(k, out var record)
                && !(Utf8Parser.TryParse(record.Value, out current, out var used) && used == record.Value.Length))
            {
                return StoreResult.Of(StoreStatus.NotAnInteger);
            }
            long next;
            try
            {
                next = checked(current + delta);
            }
            catch (OverflowException)
            {
                return StoreResult.Of(StoreStatus.Overflow);
            }
            var version = store.NextVersion();
            store._data[k] = (System.Text.Encoding.ASCII.GetBytes(next.ToString(System.Globalization.CultureInfo.InvariantCulture)), version);
            return new StoreResult(StoreStatus.Ok, version, Number: next);
        }

        public StoreResult Append(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context)
        {
            var k = (tenant, table, K(key));
            var old = store._data.TryGetValue(k, out var record) ? record.Value : [];
            var next = old.Concat(value.ToArray()).ToArray();
            var version = store.NextVersion();
            store._data[k] = (next, version);
            return new StoreResult(StoreStatus.Ok, version, next.Length);
        }

        public StoreResult ApplyPulled(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version, ulong context) =>
            throw new NotSupportedException("not used by RESP");

        public int CompletePending(ICompletionSink sink, bool wait = false)
        {
            var n = 0;
            while (_pending.TryDequeue(out var p))
            {
                sink.OnCompleted(p.Context, p.Result, p.Value);
                n++;
            }
            return n;
        }

        public void Dispose()
        {
        }
    }
}
