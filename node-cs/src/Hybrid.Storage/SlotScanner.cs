using System.Buffers;
using System.Runtime.InteropServices;
using FASTER.core;

namespace Hybrid.Storage;

/// <summary>Receives one record found by <see cref="SlotScanner.ScanCore"/>: stored key, meta (version + tombstone bit), data.</summary>
internal delegate void RecordVisitor(ReadOnlySpan<byte> storedKey, ulong meta, ReadOnlySpan<byte> data);

/// <summary>
/// Slot scans over the hybrid log. The cursor is a log address, so the scan keeps no state. A record found at
/// address A is returned only if A is still its key's latest record (checked with a read that reports the record's
/// address), so superseded versions are skipped and each key is returned where its latest record lies.
/// See <see cref="ISlotScanner"/> for the guarantees.
/// </summary>
internal sealed class SlotScanner : ISlotScanner
{
    private readonly FasterKvStore _store;
    private readonly KvSession _session;
    private readonly ArrayBufferWriter<byte> _values = new(64 << 10);
    private IScanSink? _sink;
    private readonly RecordVisitor _toSink;

    public SlotScanner(FasterKvStore store, KvSession session)
    {
        _store = store;
        _session = session;
        _toSink = (key, meta, data) => _sink!.OnRecord(RecordLayout.Tenant(key), RecordLayout.Table(key),
            key[RecordLayout.KeyPrefixBytes..], data, RecordLayout.VersionOf(meta));
    }

    internal SessionFunctions Functions => _session.Functions;

    public ScanCursor ScanChunk(ScanCursor cursor, int slotLo, int slotHi, int maxRecords, int maxBytes, IScanSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        FasterKvStore.CheckSlotRange(slotLo, slotHi);
        if (!cursor.IsDone)
            CheckCursor(cursor);
        _sink = sink;
        try
        {
            return ScanCore(cursor, slotLo, slotHi, maxRecords, maxBytes, includeTombstones: false, _toSink);
        }
        finally
        {
            _sink = null;
        }
    }

    /// <summary>
    /// A cursor comes from a caller (over the network, from a migration target), and one that is not done must lie
    /// within this log (0 &lt;= Next &lt; End &lt;= tail), as every cursor of a <see cref="IKvStore.PlanScan"/> of this
    /// incarnation does (the tail only grows). One planned before a restart may not: recovery rebuilds the log at other
    /// addresses, and FASTER's scan fails on an address beyond the tail with a NullReferenceException. It is refused
    /// here, clearly, instead. (An address below the tail that is no record's start cannot be told apart here: callers
    /// must check <see cref="IKvStore.Incarnation"/>, as migration pulls do.)
    /// </summary>
    private void CheckCursor(ScanCursor cursor)
    {
        long tail = _store.Kv.Log.TailAddress;
        if (cursor.Next < 0 || cursor.End > tail)
        {
            throw new ArgumentOutOfRangeException(nameof(cursor), cursor,
                $"scan cursor [{cursor.Next}, {cursor.End}) does not lie within this log (tail {tail}); was it planned before the store restarted?");
        }
    }

    internal ScanCursor ScanCore(ScanCursor cursor, int slotLo, int slotHi, int maxRecords, long maxBytes, bool includeTombstones, RecordVisitor visitor)
    {
        if (cursor.IsDone)
            return cursor;
        var log = _store.Kv.Log;
        long start = Math.Max(cursor.Next, log.BeginAddress);
        if (start >= cursor.End)
            return cursor with { Next = cursor.End };
        int records = 0;
        long bytes = 0;
        long next = start;
        using var iterator = log.Scan(start, cursor.End);
        while (records < maxRecords && bytes < maxBytes)
        {
            // Gather candidates (records of the range) up to the limits, then check them with one batch of reads,
            // so cold records are read from disk concurrently rather than one by one.
            _batch.Clear();
            _keyUsed = 0;
            _values.ResetWrittenCount();
            long batchBytes = 0;
            bool ended = false;
            while (_batch.Count < Math.Min(BatchSize, maxRecords - records) && bytes + batchBytes < maxBytes)
            {
                if (!iterator.GetNext(out RecordInfo info))
                {
                    ended = true;
                    break;
                }
                long address = iterator.CurrentAddress;
                next = iterator.NextAddress;
                if (info.Tombstone)
                    continue; // a FASTER delete (slot drop): the key is absent
                ReadOnlySpan<byte> key = iterator.GetKey().AsReadOnlySpan();
                if (key.Length < RecordLayout.KeyPrefixBytes)
                    continue;
                int slot = RecordLayout.SlotOf(key);
                if (slot < slotLo || slot > slotHi)
                    continue;
                _batch.Add(new Candidate { Address = address, KeyOffset = AddKey(key), KeyLength = key.Length });
                batchBytes += key.Length + iterator.GetValue().Length;
            }
            CheckBatch();
            foreach (ref readonly Candidate c in CollectionsMarshal.AsSpan(_batch))
            {
                if (!c.Latest || (RecordLayout.IsTombstone(c.Meta) && !includeTombstones))
                    continue;
                ReadOnlySpan<byte> value = _values.WrittenSpan.Slice(c.ValueOffset, c.ValueLength);
                visitor(_keyArena.AsSpan(c.KeyOffset, c.KeyLength), c.Meta, value);
                records++;
                bytes += c.KeyLength + c.ValueLength;
            }
            if (ended)
                return new ScanCursor(cursor.End, cursor.End);
        }
        return new ScanCursor(next, cursor.End);
    }

    private const int BatchSize = 256;

    private struct Candidate
    {
        public long Address;
        public int KeyOffset;
        public int KeyLength;
        public bool Latest;
        public ulong Meta;
        public int ValueOffset;
        public int ValueLength;
    }

    private readonly List<Candidate> _batch = new(BatchSize);
    private byte[] _keyArena = GC.AllocateUninitializedArray<byte>(64 << 10, pinned: true);
    private int _keyUsed;

    private int AddKey(ReadOnlySpan<byte> key)
    {
        if (_keyUsed + key.Length > _keyArena.Length)
        {
            var bigger = GC.AllocateUninitializedArray<byte>(Math.Max(_keyArena.Length * 2, _keyUsed + key.Length), pinned: true);
            _keyArena.AsSpan(0, _keyUsed).CopyTo(bigger);
            _keyArena = bigger;
        }
        key.CopyTo(_keyArena.AsSpan(_keyUsed));
        _keyUsed += key.Length;
        return _keyUsed - key.Length;
    }

    /// <summary>
    /// Reads every candidate's key; a candidate is <see cref="Candidate.Latest"/> if the key's latest record lies at
    /// the candidate's address (then its value is in <see cref="_values"/>). Blocks on disk reads for cold records.
    /// </summary>
    private unsafe void CheckBatch()
    {
        if (_batch.Count == 0)
            return;
        var raw = _session.Raw;
        Span<Candidate> batch = CollectionsMarshal.AsSpan(_batch);
        int pending = 0;
        fixed (byte* arena = _keyArena)
        {
            for (int i = 0; i < batch.Length; i++)
            {
                SpanByte key = SpanByte.FromPointer(arena + batch[i].KeyOffset, batch[i].KeyLength);
                SpanByte input = default;
                StoreOutput output = default;
                output.Writer = _values;
                ReadOptions options = default;
                Status status = raw.Read(ref key, ref input, ref output, ref options, out RecordMetadata record, (ulong)i);
                if (status.IsPending)
                {
                    pending++;
                    _session.Functions.PendingCount++;
                }
                else
                {
                    Resolve(ref batch[i], status, in output, record);
                }
            }
        }
        if (pending == 0)
            return;
        raw.CompletePendingWithOutputs(out var completed, wait: true);
        using (completed)
        {
            while (completed.Next())
            {
                ref var c = ref completed.Current;
                Resolve(ref batch[(int)c.Context], c.Status, in c.Output, c.RecordMetadata);
            }
        }
    }

    private static void Resolve(ref Candidate c, Status status, in StoreOutput output, RecordMetadata record)
    {
        c.Latest = status.Found && record.Address == c.Address;
        if (!c.Latest)
            return;
        c.Meta = output.Status == StoreStatus.NotFound ? output.Version | RecordLayout.TombstoneBit : output.Version;
        c.ValueOffset = output.ValueOffset;
        c.ValueLength = output.Status == StoreStatus.Ok ? output.Length : 0;
    }

    public void Dispose() => _session.Dispose();
}
