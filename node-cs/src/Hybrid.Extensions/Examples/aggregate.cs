// Sums a little-endian int64 field over many records (Splinter's "aggregate").
//   aggregate      args: table u32 | first id u64 | count u32 | field offset u32; keys are ids as 8-byte LE.
//   aggregate.keys args: table u32 | key size u32 | field offset u32 | packed keys.
//   aggregate.list args: table u32 | key size u32 | field offset u32 | list key. Splinter's own shape: the record
//                  under the list key holds the packed keys to sum over (a client doing the same needs two
//                  dependent round trips: a get of the list, then a multi-get of its keys). A missing list, or one
//                  whose length is not a multiple of the key size, faults with an error; as in the others, a record that
//                  is absent or too short for the field counts 0.
// Response: the sum as int64 LE.
using System;
using System.Buffers.Binary;
using Hybrid.Extensions.Abstractions;

public static class AggregateExtension
{
    [Extension]
    public static async ExtensionTask Range(ExtensionContext ctx)
    {
        var table = BinaryPrimitives.ReadUInt32LittleEndian(ctx.Args);
        var first = BinaryPrimitives.ReadUInt64LittleEndian(ctx.Args.Slice(4));
        var count = BinaryPrimitives.ReadUInt32LittleEndian(ctx.Args.Slice(12));
        var offset = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(16));
        // The ids are packed as keys, 64 at a time, and summed by the multi-key helper: the store reads a batch of
        // keys together (their index lookups overlap) instead of one TryGet after another.
        const int Batch = 64;
        var keys = new byte[Batch * 8];
        long sum = 0;
        ulong end = first + count;
        for (ulong id = first; id < end; id += Batch)
        {
            // A preemption point is inserted here at install: long ranges give the worker back between batches.
            int n = Pack(keys, id, end);
            sum += ctx.SumInt64Field(table, keys.AsSpan(0, n * 8), 8, offset);
        }
        ctx.WriteInt64(sum);
    }

    // Not async, so its loop gets no preemption point (one per batch above is enough).
    private static int Pack(byte[] keys, ulong id, ulong end)
    {
        int n = (int)Math.Min((ulong)(keys.Length / 8), end - id);
        for (int k = 0; k < n; k++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(keys.AsSpan(k * 8), id + (ulong)k);
        }
        return n;
    }

    [Extension("keys")]
    public static ExtensionTask Keys(ExtensionContext ctx)
    {
        var table = BinaryPrimitives.ReadUInt32LittleEndian(ctx.Args);
        var keySize = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(4));
        var offset = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(8));
        ctx.WriteInt64(ctx.SumInt64Field(table, ctx.Args.Slice(12), keySize, offset));
        return ExtensionTask.CompletedTask;
    }

    [Extension("list")]
    public static ExtensionTask List(ExtensionContext ctx)
    {
        var table = BinaryPrimitives.ReadUInt32LittleEndian(ctx.Args);
        var keySize = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(4));
        var offset = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(8));
        // The list's span stays valid while the sum reads the records it names (no await in between; were the list's
        // page evicted meanwhile, the store would stop the invocation with Evicted before it reads it again).
        if (!ctx.TryGet(table, ctx.Args.Slice(12), out var keys))
        {
            throw new InvalidOperationException("aggregate.list: no key list under that key");
        }
        if (keySize <= 0 || keys.Length % keySize != 0)
        {
            throw new InvalidOperationException("aggregate.list: the list's length is not a multiple of the key size");
        }
        ctx.WriteInt64(ctx.SumInt64Field(table, keys, keySize, offset));
        return ExtensionTask.CompletedTask;
    }
}
