using System.Buffers;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>The string commands: each is one storage call per key, with its reply written in place.</summary>
public sealed partial class RespSession : ICompletionSink
{
    // Values read only to learn their length or existence (EXISTS, STRLEN), and values of reads that went pending.
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private StoreResult _settled;

    private uint TenantId => _tenant!.Id;

    private void Get(RespArgs args)
    {
        var key = args[1];
        if (!OwnsKey(key))
        {
            return;
        }
        var result = _kv.Get(TenantId, RespTable, key, Output.BeginBulkValue(), 0);
        if (result.Status == StoreStatus.Ok)
        {
            Output.EndBulkValue();
            return;
        }
        Output.CancelBulkValue();
        WriteReadResult(Settle(result));
    }

    /// <summary>Writes the reply of a read whose value, if any, is in <see cref="_scratch"/> (it went pending) or that found nothing.</summary>
    private void WriteReadResult(StoreResult result)
    {
        if (result.Status == StoreStatus.Ok)
        {
            Output.WriteBulk(_scratch.WrittenSpan);
        }
        else if (result.Status == StoreStatus.NotFound)
        {
            Output.WriteNull();
        }
        else
        {
            WriteStoreError(result.Status);
        }
    }

    private void MGet(RespArgs args)
    {
        if (!OwnsKeys(args, 1, 1))
        {
            return;
        }
        Output.WriteArrayHeader(args.Count - 1);
        for (var i = 1; i < args.Count; i++)
        {
            var result = _kv.Get(TenantId, RespTable, args[i], Output.BeginBulkValue(), 0);
            if (result.Status == StoreStatus.Ok)
            {
                Output.EndBulkValue();
                continue;
            }
            Output.CancelBulkValue();
            result = Settle(result);
            // Inside an array a per-key error cannot be a top-level error: report it as a missing value.
            if (result.Status == StoreStatus.Ok)
            {
                Output.WriteBulk(_scratch.WrittenSpan);
            }
            else
            {
                Output.WriteNull();
            }
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
            SetMode.IfAbsent => _kv.PutIfAbsent(TenantId, RespTable, key, value, 0),
            SetMode.IfExists => _kv.PutIfExists(TenantId, RespTable, key, value, 0),
            _ => _kv.Put(TenantId, RespTable, key, value, 0),
        };
        result = Settle(result);
        switch (result.Status)
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
                WriteStoreError(result.Status);
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
        if (!OwnsKeys(args, 1, 2))
        {
            return;
        }
        for (var i = 1; i < args.Count; i += 2)
        {
            var result = Settle(_kv.Put(TenantId, RespTable, args[i], args[i + 1], 0));
            if (result.Status != StoreStatus.Ok)
            {
                WriteStoreError(result.Status);
                return;
            }
            WroteSinceFlush = true;
        }
        Output.WriteOk();
    }

    private void Del(RespArgs args)
    {
        if (!OwnsKeys(args, 1, 1))
        {
            return;
        }
        var deleted = 0;
        for (var i = 1; i < args.Count; i++)
        {
            var result = Settle(_kv.Delete(TenantId, RespTable, args[i], 0));
            WroteSinceFlush = true;
            if (result.Status == StoreStatus.Ok)
            {
                deleted++;
            }
            else if (result.Status != StoreStatus.NotFound)
            {
                WriteStoreError(result.Status);
                return;
            }
        }
        Output.WriteInteger(deleted);
    }

    private void Exists(RespArgs args)
    {
        if (!OwnsKeys(args, 1, 1))
        {
            return;
        }
        var found = 0;
        for (var i = 1; i < args.Count; i++)
        {
            if (ReadToScratch(args[i]).Status == StoreStatus.Ok)
            {
                found++;
            }
        }
        Output.WriteInteger(found);
    }

    private void StrLen(RespArgs args)
    {
        if (!OwnsKey(args[1]))
        {
            return;
        }
        var result = ReadToScratch(args[1]);
        if (result.Status is StoreStatus.Ok or StoreStatus.NotFound)
        {
            Output.WriteInteger(result.Status == StoreStatus.Ok ? _scratch.WrittenCount : 0);
        }
        else
        {
            WriteStoreError(result.Status);
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
        var result = Settle(_kv.Increment(TenantId, RespTable, args[1], delta, 0));
        if (result.Status == StoreStatus.Ok)
        {
            WroteSinceFlush = true;
            Output.WriteInteger(result.Number);
        }
        else
        {
            WriteStoreError(result.Status);
        }
    }

    private void Append(RespArgs args)
    {
        if (!OwnsKey(args[1]))
        {
            return;
        }
        var result = Settle(_kv.Append(TenantId, RespTable, args[1], args[2], 0));
        if (result.Status == StoreStatus.Ok)
        {
            WroteSinceFlush = true;
            Output.WriteInteger(result.ValueLength);
        }
        else
        {
            WriteStoreError(result.Status);
        }
    }

    /// <summary>Reads a value into <see cref="_scratch"/> (for EXISTS and STRLEN), settling a pending read.</summary>
    private StoreResult ReadToScratch(ReadOnlySpan<byte> key)
    {
        _scratch.ResetWrittenCount();
        return Settle(_kv.Get(TenantId, RespTable, key, _scratch, 0));
    }

    /// <summary>
    /// The final result of an operation: a pending one (its record is on disk) is waited for here, and a read's
    /// value lands in <see cref="_scratch"/>. Waiting keeps replies in order at the cost of blocking this worker for
    /// one disk read; only reads of records evicted from memory take this path.
    /// </summary>
    private StoreResult Settle(StoreResult result)
    {
        if (!result.IsPending)
        {
            return result;
        }
        _scratch.ResetWrittenCount();
        _settled = StoreResult.Of(StoreStatus.Error);
        _kv.CompletePending(this, wait: true);
        return _settled;
    }

    /// <inheritdoc />
    void ICompletionSink.OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
    {
        _settled = result;
        if (!value.IsEmpty)
        {
            _scratch.Write(value);
        }
    }

    /// <summary>False (after writing <c>-MOVED</c>) when another node serves the key's slot.</summary>
    private bool OwnsKey(ReadOnlySpan<byte> key)
    {
        if (_context.Slots.OwnsAllSlots)
        {
            return true;
        }
        var slot = Slot.Of(key);
        var owner = _context.Slots.RedirectFor(slot);
        if (owner is null)
        {
            return true;
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
        if (_context.Slots.OwnsAllSlots)
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
        _ => "ERR storage error"u8,
    });

    private enum SetMode : byte
    {
        Always,
        IfAbsent,
        IfExists,
    }
}
