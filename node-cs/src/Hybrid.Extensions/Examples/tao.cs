// Facebook TAO's object and association API as one extension (Splinter ships the same as "tao").
// An object and all its association lists share the Redis-style tag {id}, so they live in the same
// slot and therefore on the same node: every call below touches only local records.
//
// Keys:   object               "{<id as 16 hex>}o"
//         association list     "{<id1 as 16 hex>}a<atype as 4 hex>"
// Values: object               opaque bytes
//         association list     entries of 24 bytes: id2 u64 | time u64 | data u64, newest first
//
//   tao.obj_put     args: id u64 | data...                          response: (none)
//   tao.obj_get     args: id u64                                    response: data (empty when absent)
//   tao.assoc_add   args: id1 u64 | atype u16 | id2 u64 | time u64 | data u64   response: count i64
//   tao.assoc_get   args: id1 u64 | atype u16 | id2 u64             response: the entry (24 bytes) or nothing
//   tao.assoc_range args: id1 u64 | atype u16 | pos u32 | limit u32 response: entries, newest first
//   tao.assoc_count args: id1 u64 | atype u16                       response: count i64
using System;
using System.Buffers.Binary;
using Hybrid.Extensions.Abstractions;

public static class Tao
{
    private const uint Objects = 1;
    private const uint Assocs = 2;
    private const int Entry = 24;

    [Extension("obj_put")]
    public static ExtensionTask ObjPut(ExtensionContext ctx)
    {
        ctx.Put(Objects, ObjectKey(BinaryPrimitives.ReadUInt64LittleEndian(ctx.Args)), ctx.Args.Slice(8));
        return ExtensionTask.CompletedTask;
    }

    [Extension("obj_get")]
    public static ExtensionTask ObjGet(ExtensionContext ctx)
    {
        ctx.Write(ctx.Get(Objects, ObjectKey(BinaryPrimitives.ReadUInt64LittleEndian(ctx.Args))));
        return ExtensionTask.CompletedTask;
    }

    [Extension("assoc_add")]
    public static ExtensionTask AssocAdd(ExtensionContext ctx)
    {
        var args = ctx.Args;
        var key = AssocKey(BinaryPrimitives.ReadUInt64LittleEndian(args), BinaryPrimitives.ReadUInt16LittleEndian(args.Slice(8)));
        var id2 = BinaryPrimitives.ReadUInt64LittleEndian(args.Slice(10));
        var time = BinaryPrimitives.ReadUInt64LittleEndian(args.Slice(18));
        var old = ctx.Get(Assocs, key);
        var list = new byte[old.Length + Entry];
        // Keep newest first: copy the entries newer than 'time', the new one, then the rest.
        // An existing entry for id2 is replaced (dropped from the copy).
        var at = 0;
        var inserted = false;
        for (var i = 0; i + Entry <= old.Length; i += Entry)
        {
            var entry = old.Slice(i, Entry);
            if (BinaryPrimitives.ReadUInt64LittleEndian(entry) == id2)
            {
                continue;
            }
            if (!inserted && BinaryPrimitives.ReadUInt64LittleEndian(entry.Slice(8)) <= time)
            {
                args.Slice(10, Entry).CopyTo(list.AsSpan(at));
                at += Entry;
                inserted = true;
            }
            entry.CopyTo(list.AsSpan(at));
            at += Entry;
        }
        if (!inserted)
        {
            args.Slice(10, Entry).CopyTo(list.AsSpan(at));
            at += Entry;
        }
        ctx.Put(Assocs, key, list.AsSpan(0, at));
        ctx.WriteInt64(at / Entry);
        return ExtensionTask.CompletedTask;
    }

    [Extension("assoc_get")]
    public static ExtensionTask AssocGet(ExtensionContext ctx)
    {
        var args = ctx.Args;
        var list = ctx.Get(Assocs, AssocKey(BinaryPrimitives.ReadUInt64LittleEndian(args), BinaryPrimitives.ReadUInt16LittleEndian(args.Slice(8))));
        var id2 = BinaryPrimitives.ReadUInt64LittleEndian(args.Slice(10));
        for (var i = 0; i + Entry <= list.Length; i += Entry)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(list.Slice(i)) == id2)
            {
                ctx.Write(list.Slice(i, Entry));
                break;
            }
        }
        return ExtensionTask.CompletedTask;
    }

    [Extension("assoc_range")]
    public static ExtensionTask AssocRange(ExtensionContext ctx)
    {
        var args = ctx.Args;
        var list = ctx.Get(Assocs, AssocKey(BinaryPrimitives.ReadUInt64LittleEndian(args), BinaryPrimitives.ReadUInt16LittleEndian(args.Slice(8))));
        var pos = (long)BinaryPrimitives.ReadUInt32LittleEndian(args.Slice(10));
        var limit = (long)BinaryPrimitives.ReadUInt32LittleEndian(args.Slice(14));
        var count = list.Length / Entry;
        var end = Math.Min(count, pos + limit);
        if (pos < end)
        {
            ctx.Write(list.Slice((int)pos * Entry, (int)(end - pos) * Entry));
        }
        return ExtensionTask.CompletedTask;
    }

    [Extension("assoc_count")]
    public static ExtensionTask AssocCount(ExtensionContext ctx)
    {
        var args = ctx.Args;
        var list = ctx.Get(Assocs, AssocKey(BinaryPrimitives.ReadUInt64LittleEndian(args), BinaryPrimitives.ReadUInt16LittleEndian(args.Slice(8))));
        ctx.WriteInt64(list.Length / Entry);
        return ExtensionTask.CompletedTask;
    }

    private static byte[] ObjectKey(ulong id)
    {
        var key = new byte[19];
        Tag(key, id);
        key[18] = (byte)'o';
        return key;
    }

    private static byte[] AssocKey(ulong id1, ushort atype)
    {
        var key = new byte[23];
        Tag(key, id1);
        key[18] = (byte)'a';
        for (var i = 0; i < 4; i++)
        {
            key[19 + i] = Hex((atype >> (12 - (4 * i))) & 0xF);
        }
        return key;
    }

    private static void Tag(byte[] key, ulong id)
    {
        key[0] = (byte)'{';
        for (var i = 0; i < 16; i++)
        {
            key[1 + i] = Hex((int)(id >> (60 - (4 * i))) & 0xF);
        }
        key[17] = (byte)'}';
    }

    private static byte Hex(int nibble) => (byte)(nibble < 10 ? '0' + nibble : 'a' + nibble - 10);
}
