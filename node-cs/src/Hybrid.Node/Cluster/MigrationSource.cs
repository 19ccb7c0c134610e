using System.Buffers;
using System.Collections.Concurrent;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The source side of a Rocksteady migration: serves pulls of a slot range from the local store. Stateless per
/// request (cursors are log addresses), thread-safe; scanners and sessions are pooled, so a steady stream of pulls
/// allocates nothing but what the caller's <see cref="PullBuffer"/> needs to grow. Every call may block on disk:
/// never call it from a worker thread.
/// </summary>
public sealed class MigrationSource(IKvStore store) : IDisposable
{
    /// <summary>Most keys in one priority pull.</summary>
    public const int MaxPriorityKeys = 64;

    /// <summary>Target size of one background-pull chunk (keys + values).</summary>
    public const int ChunkBytes = 20 * 1024;

    private const int ChunkRecords = 4096;
    private readonly ConcurrentBag<ISlotScanner> _scanners = [];
    private readonly ConcurrentBag<Reader> _readers = [];

    /// <summary>The version floor this source reports at Prepare: every version it ever issued is at most this.</summary>
    public ulong VersionFloor => store.MaxVersion;

    /// <summary>This opening of the store (<see cref="IKvStore.Incarnation"/>): the cursors of its plans mean something only in it.</summary>
    public long Incarnation => store.Incarnation;

    /// <summary>Plans a background pull from <paramref name="from"/> to the log's current tail (see <see cref="IKvStore.PlanScan"/>).</summary>
    public PullPlan PlanPulls(int partitions, long from) => new(store.Incarnation, store.PlanScan(partitions, from));

    /// <summary>
    /// One chunk of <paramref name="range"/>'s records from <paramref name="cursor"/> (≤ about <see cref="ChunkBytes"/>),
    /// written into <paramref name="into"/> after clearing it. Returns the cursor to pass next. A cursor planned in
    /// another <paramref name="incarnation"/> of the store is not scanned: <see cref="SourceRestartedException"/>.
    /// </summary>
    public ScanCursor Pull(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into)
    {
        into.Clear();
        if (incarnation != store.Incarnation)
            throw new SourceRestartedException(store.Incarnation);
        if (!_scanners.TryTake(out ISlotScanner? scanner))
            scanner = store.NewScanner();
        try
        {
            return scanner.ScanChunk(cursor, range.Lo, range.Hi, ChunkRecords, ChunkBytes, into);
        }
        finally
        {
            _scanners.Add(scanner);
        }
    }

    /// <summary>
    /// The live records of <paramref name="keys"/> (at most <see cref="MaxPriorityKeys"/>) into <paramref name="into"/>
    /// after clearing it; keys without a live record are left out.
    /// </summary>
    public void PriorityPull(ReadOnlySpan<PullKey> keys, PullBuffer into)
    {
        if (keys.Length > MaxPriorityKeys)
            throw new ArgumentOutOfRangeException(nameof(keys), keys.Length, $"at most {MaxPriorityKeys} keys per priority pull");
        into.Clear();
        if (!_readers.TryTake(out Reader? reader))
            reader = new Reader(store.NewSession());
        try
        {
            reader.Read(keys, into);
        }
        finally
        {
            _readers.Add(reader);
        }
    }

    /// <summary>DropSource: deletes every record of <paramref name="range"/> here (durable when it returns).</summary>
    public long Drop(SlotRange range) => store.DropSlots(range.Lo, range.Hi);

    /// <summary>Releases the pooled scanners and sessions (not the store).</summary>
    public void Dispose()
    {
        while (_scanners.TryTake(out ISlotScanner? s))
            s.Dispose();
        while (_readers.TryTake(out Reader? r))
            r.Dispose();
    }

    /// <summary>A pooled session with its reusable output buffer and completion sink for priority reads.</summary>
    private sealed class Reader(IKvSession session) : ICompletionSink, IDisposable
    {
        private readonly ArrayBufferWriter<byte> _value = new(1024);
        private readonly PullKey[] _keys = new PullKey[MaxPriorityKeys];
        private PullBuffer? _into;

        public void Read(ReadOnlySpan<PullKey> keys, PullBuffer into)
        {
            keys.CopyTo(_keys);
            _into = into;
            for (int i = 0; i < keys.Length; i++)
            {
                PullKey k = keys[i];
                _value.ResetWrittenCount();
                StoreResult r = session.Get(k.Tenant, k.Table, k.Key.Span, _value, (ulong)i);
                if (r.Status == StoreStatus.Ok)
                    into.Add(k.Tenant, k.Table, k.Key.Span, _value.WrittenSpan, r.Version);
            }
            if (session.PendingCount > 0)
                session.CompletePending(this, wait: true);
            _into = null;
            Array.Clear(_keys);
        }

        public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
        {
            if (result.Status == StoreStatus.Ok)
            {
                PullKey k = _keys[(int)context];
                _into!.Add(k.Tenant, k.Table, k.Key.Span, value, result.Version);
            }
        }

        public void Dispose() => session.Dispose();
    }
}
