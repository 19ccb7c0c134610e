using System.Buffers;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// The string commands: one storage call per key, the reply written in place. A call that goes pending parks the
/// connection; <see cref="OnCompleted(in StoreResult, ReadOnlySpan{byte}, FrameBuffer)"/> writes its reply.
/// </summary>
public sealed partial class RespSession : ICompletionSink
{
    // Values read only for their length or existence (EXISTS, STRLEN).
    private readonly ArrayBufferWriter<byte> _scratch = new(256);

    // Parking: what the pending operation was, and for multi-key commands where to resume and what was counted.
    private Parked _parked;

    /// <summary>True while a command waits for a pending storage operation (or an extension's result).</summary>
    internal bool IsParked => _parked != Parked.No;
    private PendingOp _pendingOp;
    private int _resumeArg;

    // Size check of an MGET reply: where it starts in the output (-1 once a resume may have sent part of it) and the
    // bytes it has written so far, disk reads' completions included.
    private int _replyStart = -1;
    private long _replyBytes;
    private long _resumeCount;
    private StoreStatus _resumeError;

    // DEL and EXISTS share the counting loop; true while it runs for DEL (its completions are writes).
    private bool _countingDeletes;

    private uint TenantId => _tenant!.Id;

    /// <summary>
    /// Charges a command with keys to the tenant's quotas: one operation per key, and for writes the bytes they may
    /// add (key + value + record overhead; an increment counts 20 digits). A refused command runs nothing and answers
    /// an error, as the native protocol's QuotaExceeded does; the connection stays open.
    /// </summary>
    private bool Admit(IRespAdmission admission, RespCommand command, RespArgs args)
    {
        // An FCALL is one operation whatever it names (its keys are hints; the extension's own reads and writes are
        // charged as storage by its quota): uncharged, it let a tenant over its ops/s quota go on without limit.
        if (RespCommandTable.Info(command).FirstKey == 0 && command is not (RespCommand.FCall or RespCommand.FCallRo))
        {
            return true;
        }
        var keys = command switch
        {
            RespCommand.MSet => (args.Count - 1) / 2,
            RespCommand.MGet or RespCommand.Del or RespCommand.Exists => args.Count - 1,
            _ => 1,
        };
        if (!admission.TryChargeOps(keys))
        {
            Output.WriteError("ERR QUOTA the tenant's ops/s quota is exceeded"u8);
            return false;
        }
        long bytes = 0;
        switch (command)
        {
            case RespCommand.Set:
                bytes = args[1].Length + args[2].Length + StoreOptions.RecordOverheadBytes;
                break;
            case RespCommand.MSet:
                for (var i = 1; i + 1 < args.Count; i += 2)
                {
                    bytes += args[i].Length + args[i + 1].Length + StoreOptions.RecordOverheadBytes;
                }
                break;
            case RespCommand.Append:
                bytes = args[1].Length + args[2].Length + StoreOptions.RecordOverheadBytes;
                break;
            case RespCommand.Incr or RespCommand.IncrBy or RespCommand.Decr or RespCommand.DecrBy:
                bytes = args[1].Length + 20 + StoreOptions.RecordOverheadBytes;
                break;
        }
        if (bytes > 0 && !admission.TryChargeBytes(bytes))
        {
            Output.WriteError("OOM the tenant's memory quota is exceeded"u8);
            return false;
        }
        return true;
    }

    /// <summary>
    /// The pending operation of this connection finished: writes its reply (or its part of a multi-key reply) to
    /// <paramref name="output"/>. Returns true (a connection has at most one operation pending): the host sends and
    /// calls <see cref="Process"/> again with the input left. Must not start storage operations (it runs inside
    /// <see cref="IKvSession.CompletePending"/>).
    /// </summary>
    public bool OnCompleted(in StoreResult result, ReadOnlySpan<byte> value, FrameBuffer output)
    {
        Output.Bind(output);
        var op = _pendingOp;
        _pendingOp = PendingOp.None;
        _parked = Parked.No;
        var status = result.Status;
        switch (op)
        {
            case PendingOp.Get:
                WriteValueOrNull(status, value, errorsInline: true);
                break;
            case PendingOp.MGetKey:
                int before = Output.Length;
                WriteValueOrNull(status, value, errorsInline: false);
                _replyBytes += Output.Length - before;
                break;
            case PendingOp.StrLen:
                WriteIntegerOrError(status is StoreStatus.NotFound ? StoreStatus.Ok : status, status == StoreStatus.Ok ? value.Length : 0);
                break;
            case PendingOp.Set:
                WriteSetReply(status);
                break;
            case PendingOp.Increment:
                WriteIntegerOrError(status, result.Number);
                break;
            case PendingOp.Append:
                WriteIntegerOrError(status, result.ValueLength);
                break;
            case PendingOp.CountKey:
                CountKey(status);
                break;
            case PendingOp.MSetPair:
                if (status != StoreStatus.Ok && _resumeError == StoreStatus.Ok)
                {
                    _resumeError = status;
                }
                break;
        }
        // SET marks its own write in WriteSetReply; a DEL writes a tombstone whatever it found.
        if (op is PendingOp.Increment or PendingOp.Append or PendingOp.MSetPair || (op == PendingOp.CountKey && _countingDeletes))
        {
            WroteSinceFlush = true;
        }
        return true;
    }

    /// <inheritdoc />
    void ICompletionSink.OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value) => OnCompleted(result, value, Output.Target);

    private void Get(RespArgs args)
    {
        var key = args[1];
        if (!OwnsKey(key))
        {
            return;
        }
        var result = _kv.Get(TenantId, RespTable, key, Output.BeginBulkValue(), _pendingContext);
        if (result.Status == StoreStatus.Ok)
        {
            Output.EndBulkValue();
            return;
        }
        Output.CancelBulkValue();
        if (!ParkIfPending(result, PendingOp.Get))
        {
            WriteValueOrNull(result.Status, default, errorsInline: true);
        }
    }

    private void MGet(RespArgs args)
    {
        var i = Resume(1);
        if (i == 1)
        {
            if (!OwnsKeys(args, 1, 1))
            {
                return;
            }
            _replyStart = Output.Length;
            Output.WriteArrayHeader(args.Count - 1);
            _replyBytes = Output.Length - _replyStart;
        }
        else
        {
            _replyStart = -1; // resumed after a disk read: what was written before may have been sent since
        }
        for (; i < args.Count; i++)
        {
            if (_replyBytes > _context.Limits.MaxReplyBytes)
            {
                // A reply this large (the same key a thousand times, say) would hold gigabytes for one small request.
                if (_replyStart >= 0)
                {
                    Output.Truncate(_replyStart);
                    Output.WriteError($"ERR reply of MGET over this node's limit of {_context.Limits.MaxReplyBytes} bytes");
                }
                else
                {
                    ShouldClose = true; // part of it went out already: like Redis over its output limit, close
                }
                return;
            }
            int before = Output.Length;
            var result = _kv.Get(TenantId, RespTable, args[i], Output.BeginBulkValue(), _pendingContext);
            if (result.Status == StoreStatus.Ok)
            {
                Output.EndBulkValue();
                _replyBytes += Output.Length - before;
                continue;
            }
            Output.CancelBulkValue();
            if (ParkMultiIfPending(result, PendingOp.MGetKey, i + 1))
            {
                return; // the completion counts the value it writes
            }
            WriteValueOrNull(result.Status, default, errorsInline: false);
            _replyBytes += Output.Length - before;
        }
    }

    private void Set(RespArgs args)
    {
        var key = args[1];
        var mode = SetMode.Always;
        for (var i = 3; i < args.Count; i++)
        {
            var option = args[i];
            if (RespCommandTable.EqualsUpper(option, "NX"u8) && mode != SetMode.IfExists)
            {
                mode = SetMode.IfAbsent;
            }
            else if (RespCommandTable.EqualsUpper(option, "XX"u8) && mode != SetMode.IfAbsent)
            {
                mode = SetMode.IfExists;
            }
            else if (RespCommandTable.EqualsUpper(option, "KEEPTTL"u8))
            {
                // Keys never expire here, so keeping the TTL is what always happens.
            }
            else if (RespCommandTable.EqualsUpper(option, "EX"u8) || RespCommandTable.EqualsUpper(option, "PX"u8)
                || RespCommandTable.EqualsUpper(option, "EXAT"u8) || RespCommandTable.EqualsUpper(option, "PXAT"u8))
            {
                Output.WriteError("ERR SET EX/PX/EXAT/PXAT is not supported: HybridKV keys do not expire"u8);
                return;
            }
            else
            {
                Output.WriteError("ERR syntax error"u8);
                return;
            }
        }
        if (!OwnsKey(key))
        {
            return;
        }
        var value = args[2];
        var result = mode switch
        {
            SetMode.IfAbsent => _kv.PutIfAbsent(TenantId, RespTable, key, value, _pendingContext),
            SetMode.IfExists => _kv.PutIfExists(TenantId, RespTable, key, value, _pendingContext),
            _ => _kv.Put(TenantId, RespTable, key, value, _pendingContext),
        };
        if (!ParkIfPending(result, PendingOp.Set))
        {
            WriteSetReply(result.Status);
        }
    }

    private void WriteSetReply(StoreStatus status)
    {
        switch (status)
        {
            case StoreStatus.Ok:
                WroteSinceFlush = true;
                Output.WriteOk();
                break;
            case StoreStatus.Exists:
            case StoreStatus.NotFound:
                Output.WriteNull();
                break;
            default:
                WriteStoreError(status);
                break;
        }
    }

    private void MSet(RespArgs args)
    {
        if (args.Count % 2 == 0)
        {
            Output.WriteError("ERR wrong number of arguments for 'mset' command"u8);
            return;
        }
        var i = Resume(1);
        if (i == 1)
        {
            if (!OwnsKeys(args, 1, 2))
            {
                return;
            }
            _resumeError = StoreStatus.Ok;
        }
        for (; i < args.Count && _resumeError == StoreStatus.Ok; i += 2)
        {
            var result = _kv.Put(TenantId, RespTable, args[i], args[i + 1], _pendingContext);
            if (ParkMultiIfPending(result, PendingOp.MSetPair, i + 2))
            {
                return;
            }
            if (result.Status != StoreStatus.Ok)
            {
                _resumeError = result.Status;
            }
            WroteSinceFlush = true;
        }
        if (_resumeError == StoreStatus.Ok)
        {
            Output.WriteOk();
        }
        else
        {
            WriteStoreError(_resumeError);
        }
    }

    private void Del(RespArgs args) => CountKeys(args, deletes: true);

    private void Exists(RespArgs args) => CountKeys(args, deletes: false);

    private void CountKeys(RespArgs args, bool deletes)
    {
        var i = Resume(1);
        if (i == 1)
        {
            if (!OwnsKeys(args, 1, 1))
            {
                return;
            }
            _resumeCount = 0;
            _resumeError = StoreStatus.Ok;
        }
        _countingDeletes = deletes;
        for (; i < args.Count; i++)
        {
            StoreResult result;
            if (deletes)
            {
                result = _kv.Delete(TenantId, RespTable, args[i], _pendingContext);
                WroteSinceFlush = true;
            }
            else
            {
                _scratch.ResetWrittenCount();
                result = _kv.Get(TenantId, RespTable, args[i], _scratch, _pendingContext);
            }
            if (ParkMultiIfPending(result, PendingOp.CountKey, i + 1))
            {
                return;
            }
            CountKey(result.Status);
        }
        if (_resumeError == StoreStatus.Ok)
        {
            Output.WriteInteger(_resumeCount);
        }
        else
        {
            WriteStoreError(_resumeError);
        }
    }

    private void CountKey(StoreStatus status)
    {
        if (status == StoreStatus.Ok)
        {
            _resumeCount++;
        }
        else if (status != StoreStatus.NotFound && _resumeError == StoreStatus.Ok)
        {
            _resumeError = status;
        }
    }

    private void StrLen(RespArgs args)
    {
        if (!OwnsKey(args[1]))
        {
            return;
        }
        _scratch.ResetWrittenCount();
        var result = _kv.Get(TenantId, RespTable, args[1], _scratch, _pendingContext);
        if (!ParkIfPending(result, PendingOp.StrLen))
        {
            WriteIntegerOrError(result.Status is StoreStatus.NotFound ? StoreStatus.Ok : result.Status, result.Status == StoreStatus.Ok ? _scratch.WrittenCount : 0);
        }
    }

    private void IncrementBy(RespArgs args, long fixedDelta, bool negate = false)
    {
        var delta = fixedDelta;
        if (args.Count == 3)
        {
            if (!TryParseInt64(args[2], out delta))
            {
                Output.WriteError("ERR value is not an integer or out of range"u8);
                return;
            }
            if (negate)
            {
                if (delta == long.MinValue)
                {
                    Output.WriteError("ERR decrement would overflow"u8);
                    return;
                }
                delta = -delta;
            }
        }
        if (!OwnsKey(args[1]))
        {
            return;
        }
        var result = _kv.Increment(TenantId, RespTable, args[1], delta, _pendingContext);
        if (!ParkIfPending(result, PendingOp.Increment))
        {
            WroteSinceFlush |= result.Status == StoreStatus.Ok;
            WriteIntegerOrError(result.Status, result.Number);
        }
    }

    private void Append(RespArgs args)
    {
        if (!OwnsKey(args[1]))
        {
            return;
        }
        var result = _kv.Append(TenantId, RespTable, args[1], args[2], _pendingContext);
        if (!ParkIfPending(result, PendingOp.Append))
        {
            WroteSinceFlush |= result.Status == StoreStatus.Ok;
            WriteIntegerOrError(result.Status, result.ValueLength);
        }
    }

    private void WriteIntegerOrError(StoreStatus status, long value)
    {
        if (status == StoreStatus.Ok)
        {
            Output.WriteInteger(value);
        }
        else
        {
            WriteStoreError(status);
        }
    }

    /// <summary>
    /// The reply of a read: the value, null when absent. A storage error is an error reply for GET, but inside an
    /// MGET array (<paramref name="errorsInline"/> false) it is reported as a missing value, except
    /// <see cref="StoreStatus.Unavailable"/> (a key whose pull failed): never answered as absent, it is an error element.
    /// </summary>
    private void WriteValueOrNull(StoreStatus status, ReadOnlySpan<byte> value, bool errorsInline)
    {
        if (status == StoreStatus.Ok)
        {
            Output.WriteBulk(value);
        }
        else if (status == StoreStatus.NotFound || (!errorsInline && status != StoreStatus.Unavailable))
        {
            Output.WriteNull();
        }
        else
        {
            WriteStoreError(status);
        }
    }

    /// <summary>The argument to start a multi-key command at: where it parked, or <paramref name="first"/>.</summary>
    private int Resume(int first)
    {
        var at = _resumeArg;
        _resumeArg = 0;
        return at > 0 ? at : first;
    }

    /// <summary>True (the connection is parked; the completion writes the reply) when the single-key operation went pending.</summary>
    private bool ParkIfPending(in StoreResult result, PendingOp op)
    {
        if (!result.IsPending)
        {
            return false;
        }
        _pendingOp = op;
        _parked = Parked.Command;
        _context.CountParked();
        return true;
    }

    /// <summary>Like <see cref="ParkIfPending"/> for one key of a multi-key command, which then resumes at <paramref name="nextArg"/>.</summary>
    private bool ParkMultiIfPending(in StoreResult result, PendingOp op, int nextArg)
    {
        if (!result.IsPending)
        {
            return false;
        }
        _pendingOp = op;
        _parked = Parked.MultiKey;
        _resumeArg = nextArg;
        _context.CountParked();
        return true;
    }

    /// <summary>
    /// False (after writing <c>-MOVED</c> or <c>-TRYAGAIN</c>) when this node must not execute the key. In a cluster the
    /// worker's view decides (<see cref="OwnedSlots"/>, the slots owned in the view the worker executes in) and the
    /// slot map only says where to go; outside one, the slot map alone decides.
    /// </summary>
    private bool OwnsKey(ReadOnlySpan<byte> key)
    {
        if (OwnedSlots.IsAll && _context.Slots.OwnsAllSlots)
        {
            return true;
        }
        var slot = Slot.Of(key);
        var owner = _context.Slots.RedirectFor(slot);
        if (OwnedSlots.IsAll ? owner is null : OwnedSlots.Contains(slot))
        {
            return true;
        }
        if (owner is null)
        {
            // Not owned in this worker's view, and the map names no other node yet: the slot is changing owner.
            Output.WriteError($"TRYAGAIN slot {slot} is moving between nodes, retry shortly");
            return false;
        }
        Output.WriteError($"MOVED {slot} {owner}");
        return false;
    }

    /// <summary>
    /// For multi-key commands in cluster mode: every key (from <paramref name="first"/>, every <paramref name="step"/>)
    /// must share one slot (<c>-CROSSSLOT</c>) and that slot must be served here (<c>-MOVED</c>).
    /// </summary>
    private bool OwnsKeys(RespArgs args, int first, int step)
    {
        if (OwnedSlots.IsAll && _context.Slots.OwnsAllSlots)
        {
            return true;
        }
        var slot = Slot.Of(args[first]);
        for (var i = first + step; i < args.Count; i += step)
        {
            if (Slot.Of(args[i]) != slot)
            {
                Output.WriteError("CROSSSLOT Keys in request don't hash to the same slot"u8);
                return false;
            }
        }
        return OwnsKey(args[first]);
    }

    private void WriteStoreError(StoreStatus status) => Output.WriteError(status switch
    {
        StoreStatus.NotAnInteger => "ERR value is not an integer or out of range"u8,
        StoreStatus.Overflow => "ERR increment or decrement would overflow"u8,
        StoreStatus.KeyTooLarge => "ERR key is larger than this node's key size limit"u8,
        StoreStatus.ValueTooLarge => "ERR string exceeds this node's value size limit"u8,
        StoreStatus.Unavailable => "TRYAGAIN the key's range is moving here and its pull failed; the command did not run"u8,
        _ => "ERR storage error"u8,
    });

    private enum SetMode : byte
    {
        Always,
        IfAbsent,
        IfExists,
    }

    /// <summary>Whether the connection waits for a pending operation, and whether its command was consumed.</summary>
    private enum Parked : byte
    {
        No,
        Command,
        MultiKey,
    }

    private enum PendingOp : byte
    {
        None,
        Get,
        MGetKey,
        StrLen,
        Set,
        Increment,
        Append,
        CountKey,
        MSetPair,
        Function,
    }
}
