using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FASTER.core;

namespace Hybrid.Storage;

/// <summary>
/// The FASTER callbacks of one session, plus that session's private state (max version issued, last log
/// sequence, tenant-counter slot, completion sink). One instance per session, so nothing here is shared between
/// threads except through the store's read-mostly fields.
/// </summary>
/// <remarks>
/// Every write is an RMW so the old version is visible: new version = max(old + 1, floor + 1). Side effects of a
/// write (version tracking, tenant bytes, operation-log append) happen once the new value is in place:
/// in <see cref="InPlaceUpdater"/>, <see cref="PostCopyUpdater"/> or <see cref="PostInitialUpdater"/>
/// (FASTER may retry CopyUpdater/InitialUpdater, never the Post* callbacks).
/// </remarks>
internal sealed unsafe class SessionFunctions : FunctionsBase<SpanByte, SpanByte, SpanByte, StoreOutput, ulong>, IVariableLengthStruct<SpanByte, SpanByte>
{
    private readonly FasterKvStore _store;
    private readonly int _maxValueBytes;
    private uint _cachedTenant = uint.MaxValue;
    private long[]? _cachedCells;

    /// <summary>Sink for completions, set only while <see cref="IKvSession.CompletePending"/> runs.</summary>
    public ICompletionSink? Sink;

    /// <summary>True while completing pending operations: readers then copy into <see cref="Scratch"/>.</summary>
    public bool Completing;

    /// <summary>Where completed reads put their value before the sink sees it.</summary>
    public readonly ArrayBufferWriter<byte> Scratch = new(256);

    /// <summary>Operations that returned Pending and were not completed yet.</summary>
    public int PendingCount;

    /// <summary>Completions handed to the sink during the current CompletePending call.</summary>
    public int Completed;

    /// <summary>Highest version this session wrote or installed (read by <see cref="FasterKvStore.MaxVersion"/>).</summary>
    public long MaxIssued;

    /// <summary>Operation-log sequence (entry address + 1) of this session's last logged write.</summary>
    public long LastSequence;

    /// <summary>This session's cell index in <see cref="TenantCounters"/>.</summary>
    public readonly int Slot;

    /// <summary>False for the recovery session: replayed records are not logged again.</summary>
    public bool LogWrites = true;

    public SessionFunctions(FasterKvStore store, int slot)
    {
        _store = store;
        Slot = slot;
        _maxValueBytes = store.Options.MaxValueBytes;
    }

    // ---------------------------------------------------------------- reads

    // SingleReader: the immutable in-memory region (no write changes these records in place), or a record read from
    // disk (Completing: its buffer is FASTER's, so it is always copied).
    public override bool SingleReader(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput dst, ref ReadInfo readInfo)
        => Read(ref value, ref dst, mutable: false, readInfo.Address);

    // ConcurrentReader: the mutable region, under FASTER's shared lock of the record (in-place writers take it
    // exclusively), which is what makes setting the pinned bit here safe.
    public override bool ConcurrentReader(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput dst, ref ReadInfo readInfo)
        => Read(ref value, ref dst, mutable: true, readInfo.Address);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Read(ref SpanByte value, ref StoreOutput dst, bool mutable, long address)
    {
        ReadOnlySpan<byte> stored = value.AsReadOnlySpan();
        ulong meta = RecordLayout.Meta(stored);
        dst.Version = RecordLayout.VersionOf(meta);
        if (RecordLayout.IsTombstone(meta))
        {
            dst.Status = StoreStatus.NotFound;
            dst.Length = 0;
            return true;
        }
        ReadOnlySpan<byte> data = stored[RecordLayout.MetaBytes..];
        if (dst.InPlace && !Completing && address > 0)
        {
            // In place (IKvSession.GetInPlace): the caller holds the epoch, so the page stays; pinned, so the bytes stay.
            if (mutable && !RecordLayout.IsPinned(meta))
                RecordLayout.Pin(value.AsSpan());
            dst.Data = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(data));
            dst.Address = address;
            dst.Status = StoreStatus.Ok;
            dst.Length = data.Length;
            return true;
        }
        IBufferWriter<byte>? writer = Completing ? Scratch : dst.Writer;
        if (writer is not null)
        {
            if (writer is ArrayBufferWriter<byte> array)
                dst.ValueOffset = array.WrittenCount;
            data.CopyTo(writer.GetSpan(data.Length));
            writer.Advance(data.Length);
        }
        dst.Status = StoreStatus.Ok;
        dst.Length = data.Length;
        return true;
    }

    public override void ReadCompletionCallback(ref SpanByte key, ref SpanByte input, ref StoreOutput output, ulong ctx, Status status, RecordMetadata recordMetadata)
    {
        PendingCount--;
        StoreResult result = status.IsFaulted ? StoreResult.Of(StoreStatus.Error)
            : status.Found ? output.ToResult() : StoreResult.Of(StoreStatus.NotFound);
        Completed++;
        // A Get started by the sink must write to its own output, not to Scratch.
        bool completing = Completing;
        Completing = false;
        Sink?.OnCompleted(ctx, result, Scratch.WrittenSpan);
        Completing = completing;
        Scratch.ResetWrittenCount();
    }

    public override void RMWCompletionCallback(ref SpanByte key, ref SpanByte input, ref StoreOutput output, ulong ctx, Status status, RecordMetadata recordMetadata)
    {
        PendingCount--;
        StoreResult result = status.IsFaulted ? StoreResult.Of(StoreStatus.Error) : output.ToResult();
        Completed++;
        Sink?.OnCompleted(ctx, result, default);
    }

    // ---------------------------------------------------------------- upserts (only FASTER-internal copies: compaction)

    public override bool SingleWriter(ref SpanByte key, ref SpanByte input, ref SpanByte src, ref SpanByte dst, ref StoreOutput output, ref UpsertInfo upsertInfo, WriteReason reason)
    {
        RepairAbandoned();
        src.CopyTo(ref dst);
        return true;
    }

    public override bool ConcurrentWriter(ref SpanByte key, ref SpanByte input, ref SpanByte src, ref SpanByte dst, ref StoreOutput output, ref UpsertInfo upsertInfo)
        => false;

    public override bool SingleDeleter(ref SpanByte key, ref SpanByte value, ref DeleteInfo deleteInfo)
    {
        RepairAbandoned();
        return true;
    }

    public override bool ConcurrentDeleter(ref SpanByte key, ref SpanByte value, ref DeleteInfo deleteInfo)
    {
        RepairAbandoned();
        return true;
    }

    // ---------------------------------------------------------------- records FASTER abandons after a failed insert

    /// <summary>
    /// The record laid out by <see cref="Abandoning"/> whose size FASTER may still read back (see there), its logical
    /// address and size. One is enough: <see cref="Abandoning"/> repairs the previous one before it notes the next.
    /// </summary>
    private byte* _abandoned;
    private long _abandonedAddress;
    private int _abandonedSize;

    private const int RecordInfoBytes = sizeof(ulong);

    /// <summary>
    /// Lays out a new record whose insert lost a race, in FASTER's Dispose callback, so that every walk of the log parses
    /// it, whatever FASTER 2.6.5 does with it next. Then FASTER keeps the allocation for the retry
    /// (<c>SaveAllocationForRetry</c>): it clears the record's valid bit and writes the record's allocated size where the
    /// key's length is; a retry that does not reuse it leaves it so. Left as FASTER leaves it, a log walk (scans,
    /// recovery's page passes) takes that size for a key length, loses the record boundaries and reads out of bounds: a
    /// node could not restart, and a migration scan could crash. Laid out here (<see cref="LayOutSkippable"/>), the
    /// record parses both before and after FASTER writes the size, at any moment its page is flushed or scanned. The
    /// record is remembered until a later callback (<see cref="RepairAbandoned"/>) takes the size away from FASTER.
    /// <paramref name="size"/> is FASTER's allocated size for the record (checked by <c>AbandonedRecordTests</c>).
    /// </summary>
    private void Abandoning(ref SpanByte key, int size, long address)
    {
        RepairAbandoned(); // the previous one, if any (under the epoch here too)
        byte* record = (byte*)Unsafe.AsPointer(ref key) - RecordInfoBytes;
        LayOutSkippable(record, size);
        _abandoned = record;
        _abandonedAddress = address;
        _abandonedSize = size;
    }

    private static int Align8(int n) => (n + 7) & ~7;

    /// <summary>FASTER's allocated size of a record with this key and value (record info, key and value, each 8-aligned).</summary>
    private static int AllocatedSize(ref SpanByte key, int valueTotalSize) => RecordInfoBytes + Align8(key.TotalSize) + Align8(valueTotalSize);

    /// <summary>
    /// Lays out the <paramref name="size"/> bytes at <paramref name="record"/> (at least 32; the smallest record here is)
    /// so that every walk of the log steps over them: a null record info (walks skip 8 bytes), then an invalid record whose
    /// info word holds <paramref name="size"/> in its low half (where FASTER writes and reads back a kept allocation's
    /// size) and 1 in its high half (so the word is never null), with an empty key and a value filling the rest. Written
    /// back to front, so that the record parses after each store too (value length, key, then the null info before the
    /// word that would otherwise be read as a key length).
    /// </summary>
    private static void LayOutSkippable(byte* record, int size)
    {
        *(int*)(record + (3 * RecordInfoBytes)) = SkippableValueLength(size); // value: the rest
        *(ulong*)(record + (2 * RecordInfoBytes)) = 0; // key: length 0, padded to 8
        *(ulong*)record = 0;
        *(ulong*)(record + RecordInfoBytes) = KeptSizeWord | (uint)size;
    }

    /// <summary>The value length of a laid-out record of <paramref name="size"/> bytes (info, info word, empty key, length).</summary>
    private static int SkippableValueLength(int size) => size - (3 * RecordInfoBytes) - sizeof(int);

    /// <summary>The high half of a laid-out record's info word: non-zero, valid bit clear.</summary>
    private const ulong KeptSizeWord = 1UL << 32;

    /// <summary>
    /// Takes the kept size away from FASTER for the record <see cref="Abandoning"/> remembered: one aligned 4-byte
    /// store of 0 to the low half of the record's info word (its high half keeps the word non-null), so the record still
    /// parses and FASTER, reading size 0, allocates anew instead of putting a record of another size in the slot (its
    /// rest would not parse). Runs in a callback, under the epoch: a record still at or above the head is in memory and
    /// stays there meanwhile; one below it is on disk, as laid out. A slot no longer as laid out (FASTER reused it) is
    /// left alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void RepairAbandoned()
    {
        if (_abandoned != null)
            RepairAbandonedCore();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RepairAbandonedCore()
    {
        byte* record = _abandoned;
        int size = _abandonedSize;
        _abandoned = null;
        if (_abandonedAddress < _store.Kv.Log.HeadAddress)
            return; // on disk, as laid out
        if (*(ulong*)record != 0 || *(int*)(record + (3 * RecordInfoBytes)) != SkippableValueLength(size))
            return; // reused
        ulong word = *(ulong*)(record + RecordInfoBytes);
        if (word != (KeptSizeWord | (uint)size))
        {
            if ((word & ~0xFFFF_FFFFUL) == KeptSizeWord && (uint)word != 0)
                SizeMismatches++; // FASTER kept another size than the one laid out
            return;
        }
        Volatile.Write(ref *(int*)(record + RecordInfoBytes), 0);
        RepairedRecords++;
    }

    /// <summary>Records whose kept size <see cref="RepairAbandonedCore"/> took away (for tests).</summary>
    public long RepairedRecords;

    /// <summary>Kept sizes that differed from the one laid out (for tests: expected 0).</summary>
    public long SizeMismatches;

    public override void DisposeCopyUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte oldValue, ref SpanByte newValue, ref StoreOutput output, ref RMWInfo rmwInfo)
        => Abandoning(ref key, AllocatedSize(ref key, newValue.TotalSize), rmwInfo.Address);

    public override void DisposeInitialUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput output, ref RMWInfo rmwInfo)
        => Abandoning(ref key, AllocatedSize(ref key, value.TotalSize), rmwInfo.Address);

    public override void DisposeSingleWriter(ref SpanByte key, ref SpanByte input, ref SpanByte src, ref SpanByte dst, ref StoreOutput output, ref UpsertInfo upsertInfo, WriteReason reason)
        => Abandoning(ref key, AllocatedSize(ref key, dst.TotalSize), upsertInfo.Address);

    /// <summary>A tombstone's value is FASTER's default one (a bare length: 4 bytes); its bytes in the log are not read.</summary>
    public override void DisposeSingleDeleter(ref SpanByte key, ref SpanByte value, ref DeleteInfo deleteInfo)
        => Abandoning(ref key, AllocatedSize(ref key, sizeof(int)), deleteInfo.Address);

    // ---------------------------------------------------------------- RMW: decisions

    /// <summary>
    /// Decides whether the operation writes, given the current record (absent: <paramref name="exists"/> false).
    /// On refusal sets the output's status; on success computes the new data length and, for Increment, the number.
    /// </summary>
    private bool Decide(ReadOnlySpan<byte> input, bool exists, ulong oldMeta, ReadOnlySpan<byte> oldData, ref StoreOutput output, out int newDataLength)
    {
        bool live = exists && !RecordLayout.IsTombstone(oldMeta);
        ulong oldVersion = exists ? RecordLayout.VersionOf(oldMeta) : 0;
        long arg = StoreInput.Arg(input);
        ReadOnlySpan<byte> data = StoreInput.Data(input);
        newDataLength = data.Length;
        switch (StoreInput.Op(input))
        {
            case OpKind.Put:
                return true;
            case OpKind.PutIfVersion:
                ulong expected = (ulong)arg;
                if (expected == 0 ? !live : live && oldVersion == expected)
                    return true;
                return Refuse(ref output, StoreStatus.VersionMismatch, live ? oldVersion : 0);
            case OpKind.PutIfAbsent:
                return !live || Refuse(ref output, StoreStatus.Exists, oldVersion);
            case OpKind.PutIfExists:
                return live || Refuse(ref output, StoreStatus.NotFound, 0);
            case OpKind.Delete:
                newDataLength = 0;
                return true;
            case OpKind.Increment:
                long current = 0;
                if (live && !IntegerText.TryParse(oldData, out current))
                    return Refuse(ref output, StoreStatus.NotAnInteger, oldVersion);
                long next;
                try
                {
                    next = checked(current + arg);
                }
                catch (OverflowException)
                {
                    return Refuse(ref output, StoreStatus.Overflow, oldVersion);
                }
                output.Number = next;
                newDataLength = IntegerText.Length(next);
                return true;
            case OpKind.Append:
                newDataLength = (live ? oldData.Length : 0) + data.Length;
                return newDataLength <= _maxValueBytes || Refuse(ref output, StoreStatus.ValueTooLarge, oldVersion);
            case OpKind.ApplyPulled:
                return !exists || oldVersion < (ulong)arg || Refuse(ref output, StoreStatus.Stale, oldVersion);
            case OpKind.Replay:
                return !exists || oldVersion < RecordLayout.VersionOf((ulong)arg) || Refuse(ref output, StoreStatus.Stale, oldVersion);
            default:
                return Refuse(ref output, StoreStatus.Error, 0);
        }
    }

    private static bool Refuse(ref StoreOutput output, StoreStatus status, ulong versionFound)
    {
        output.Status = status;
        output.Version = versionFound;
        return false;
    }

    /// <summary>Writes meta and data of the new value into <paramref name="dst"/> (sized by <see cref="Decide"/>).</summary>
    private void Write(ReadOnlySpan<byte> input, bool exists, ulong oldMeta, ReadOnlySpan<byte> oldData, Span<byte> dst, ref StoreOutput output, bool inPlace)
    {
        OpKind op = StoreInput.Op(input);
        long arg = StoreInput.Arg(input);
        ReadOnlySpan<byte> data = StoreInput.Data(input);
        bool live = exists && !RecordLayout.IsTombstone(oldMeta);
        ulong meta;
        if (op is OpKind.ApplyPulled or OpKind.Replay)
            meta = (ulong)arg & ~RecordLayout.PinnedBit; // a new record starts unpinned
        else
        {
            ulong version = Math.Max(exists ? RecordLayout.VersionOf(oldMeta) + 1 : 1, _store.Floor + 1);
            meta = op == OpKind.Delete ? version | RecordLayout.TombstoneBit : version;
        }
        Span<byte> body = dst[RecordLayout.MetaBytes..];
        switch (op)
        {
            case OpKind.Delete:
                break;
            case OpKind.Increment:
                IntegerText.Format(output.Number, body);
                break;
            case OpKind.Append:
                int kept = live ? oldData.Length : 0;
                if (!inPlace && kept > 0)
                    oldData.CopyTo(body);
                data.CopyTo(body[kept..]);
                break;
            default:
                data.CopyTo(body);
                break;
        }
        RecordLayout.WriteMeta(dst, meta);
        output.Status = op == OpKind.Delete && !live ? StoreStatus.NotFound : StoreStatus.Ok;
        output.Version = RecordLayout.VersionOf(meta);
        output.Length = dst.Length - RecordLayout.MetaBytes;
    }

    // ---------------------------------------------------------------- RMW: FASTER callbacks

    public override bool NeedInitialUpdate(ref SpanByte key, ref SpanByte input, ref StoreOutput output, ref RMWInfo rmwInfo)
    {
        RepairAbandoned();
        return Decide(input.AsReadOnlySpan(), false, 0, default, ref output, out _);
    }

    public override bool InitialUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput output, ref RMWInfo rmwInfo)
    {
        RepairAbandoned();
        ReadOnlySpan<byte> inp = input.AsReadOnlySpan();
        Decide(inp, false, 0, default, ref output, out int newLength);
        value.Length = RecordLayout.MetaBytes + newLength;
        Write(inp, false, 0, default, value.AsSpan(), ref output, inPlace: false);
        return true;
    }

    public override void PostInitialUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput output, ref RMWInfo rmwInfo)
        => Applied(ref key, ref input, 0, ref value);

    public override bool NeedCopyUpdate(ref SpanByte key, ref SpanByte input, ref SpanByte oldValue, ref StoreOutput output, ref RMWInfo rmwInfo)
    {
        RepairAbandoned();
        ReadOnlySpan<byte> old = oldValue.AsReadOnlySpan();
        return Decide(input.AsReadOnlySpan(), true, RecordLayout.Meta(old), old[RecordLayout.MetaBytes..], ref output, out _);
    }

    public override bool CopyUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte oldValue, ref SpanByte newValue, ref StoreOutput output, ref RMWInfo rmwInfo)
    {
        RepairAbandoned();
        ReadOnlySpan<byte> inp = input.AsReadOnlySpan();
        ReadOnlySpan<byte> old = oldValue.AsReadOnlySpan();
        ulong oldMeta = RecordLayout.Meta(old);
        Decide(inp, true, oldMeta, old[RecordLayout.MetaBytes..], ref output, out int newLength);
        newValue.Length = RecordLayout.MetaBytes + newLength;
        Write(inp, true, oldMeta, old[RecordLayout.MetaBytes..], newValue.AsSpan(), ref output, inPlace: false);
        return true;
    }

    public override void PostCopyUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte oldValue, ref SpanByte newValue, ref StoreOutput output, ref RMWInfo rmwInfo)
        => Applied(ref key, ref input, RecordLayout.LiveSize(key.Length, oldValue.AsReadOnlySpan()), ref newValue);

    public override bool InPlaceUpdater(ref SpanByte key, ref SpanByte input, ref SpanByte value, ref StoreOutput output, ref RMWInfo rmwInfo)
    {
        RepairAbandoned();
        ReadOnlySpan<byte> inp = input.AsReadOnlySpan();
        ReadOnlySpan<byte> old = value.AsReadOnlySpan();
        ulong oldMeta = RecordLayout.Meta(old);
        if (!Decide(inp, true, oldMeta, old[RecordLayout.MetaBytes..], ref output, out int newLength))
            return true; // refused: the record stays as it is
        // A reader holds this value in place: write a new record instead (FASTER then calls CopyUpdater).
        if (RecordLayout.IsPinned(oldMeta))
            return false;
        int oldPayload = value.Length;
        int newPayload = RecordLayout.MetaBytes + newLength;
        // The record's allocated size is fixed by its 8-byte-rounded value size; stay in that class or copy.
        if (((sizeof(int) + newPayload + 7) & ~7) != ((sizeof(int) + oldPayload + 7) & ~7))
            return false;
        long oldLive = RecordLayout.LiveSize(key.Length, old);
        value.Length = newPayload;
        // old's span was taken before the length change, so it still covers exactly the old data.
        Write(inp, true, oldMeta, old[RecordLayout.MetaBytes..], value.AsSpan(), ref output, inPlace: true);
        Applied(ref key, ref input, oldLive, ref value);
        return true;
    }

    /// <summary>Side effects of a write that took effect: version tracking, tenant bytes, operation log.</summary>
    private void Applied(ref SpanByte key, ref SpanByte input, long oldLive, ref SpanByte newValue)
    {
        ReadOnlySpan<byte> storedKey = key.AsReadOnlySpan();
        ReadOnlySpan<byte> stored = newValue.AsReadOnlySpan();
        long version = (long)RecordLayout.VersionOf(RecordLayout.Meta(stored));
        if (version > MaxIssued)
            Volatile.Write(ref MaxIssued, version);
        long newLive = RecordLayout.LiveSize(storedKey.Length, stored);
        if (newLive != oldLive)
            AddTenantBytes(RecordLayout.Tenant(storedKey), newLive - oldLive, (newLive > 0 ? 1 : 0) - (oldLive > 0 ? 1 : 0));
        // Replays come from the log; pulled records are made durable by the target's next checkpoint instead, which is
        // what the migration waits for (Checkpoint) before the source may drop its copy: a target that crashes
        // before it pulls them again (the model's Crash keeps only the keys written at the target).
        if (LogWrites && StoreInput.Op(input.AsReadOnlySpan()) is not (OpKind.Replay or OpKind.ApplyPulled))
        {
            long sequence = _store.LogRecord(ref key, ref newValue);
            if (sequence > LastSequence)
                LastSequence = sequence;
        }
    }

    /// <summary>Adds to this session's cell of a tenant's counters: live bytes and live records.</summary>
    public void AddTenantBytes(uint tenant, long delta, long records)
    {
        if (tenant != _cachedTenant || _cachedCells is null)
        {
            _cachedCells = _store.Counters.CellsOf(tenant);
            _cachedTenant = tenant;
        }
        TenantCounters.Add(_cachedCells, Slot, delta, records);
    }

    // ---------------------------------------------------------------- value lengths for RMW allocation

    public int GetInitialLength(ref SpanByte input)
    {
        StoreOutput scratch = default;
        Decide(input.AsReadOnlySpan(), false, 0, default, ref scratch, out int newLength);
        return sizeof(int) + RecordLayout.MetaBytes + newLength;
    }

    public int GetLength(ref SpanByte t, ref SpanByte input)
    {
        ReadOnlySpan<byte> old = t.AsReadOnlySpan();
        StoreOutput scratch = default;
        Decide(input.AsReadOnlySpan(), true, RecordLayout.Meta(old), old[RecordLayout.MetaBytes..], ref scratch, out int newLength);
        return sizeof(int) + RecordLayout.MetaBytes + newLength;
    }
}
