using System.Buffers;
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
    private readonly ArrayBufferWriter<byte> _value = new(256);
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
        while (true)
        {
            if (records >= maxRecords || bytes >= maxBytes)
                return new ScanCursor(next, cursor.End);
            if (!iterator.GetNext(out RecordInfo info))
                return new ScanCursor(cursor.End, cursor.End);
            long address = iterator.CurrentAddress;
            next = iterator.NextAddress;
            if (info.Tombstone)
                continue; // a FASTER delete (slot drop): the key is absent
            ref SpanByte key = ref iterator.GetKey();
            ReadOnlySpan<byte> keySpan = key.AsReadOnlySpan();
            if (keySpan.Length < RecordLayout.KeyPrefixBytes)
                continue;
            int slot = RecordLayout.SlotOf(keySpan);
            if (slot < slotLo || slot > slotHi)
                continue;
            if (!ReadLatest(ref key, address, out ulong meta))
                continue;
            if (RecordLayout.IsTombstone(meta) && !includeTombstones)
                continue;
            visitor(keySpan, meta, _value.WrittenSpan);
            records++;
            bytes += keySpan.Length + _value.WrittenCount;
        }
    }

    /// <summary>
    /// Reads the key's latest record; true if it lies at <paramref name="address"/> (then its value is in
    /// <see cref="_value"/>). Blocks on a disk read if the record is cold.
    /// </summary>
    private bool ReadLatest(ref SpanByte key, long address, out ulong meta)
    {
        _value.ResetWrittenCount();
        meta = 0;
        SpanByte input = default;
        StoreOutput output = default;
        output.Writer = _value;
        ReadOptions options = default;
        var raw = _session.Raw;
        Status status = raw.Read(ref key, ref input, ref output, ref options, out RecordMetadata record, 0);
        if (status.IsPending)
        {
            _session.Functions.PendingCount++;
            raw.CompletePendingWithOutputs(out var completed, wait: true);
            using (completed)
            {
                if (!completed.Next())
                    return false;
                ref var c = ref completed.Current;
                status = c.Status;
                output = c.Output;
                record = c.RecordMetadata;
            }
        }
        if (!status.Found || record.Address != address)
            return false;
        meta = output.Status == StoreStatus.NotFound ? output.Version | RecordLayout.TombstoneBit : output.Version;
        return true;
    }

    public void Dispose() => _session.Dispose();
}
