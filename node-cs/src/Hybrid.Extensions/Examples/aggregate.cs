// Sums a little-endian int64 field over many records (Splinter's "aggregate").
//   aggregate      args: table u32 | first id u64 | count u32 | field offset u32; keys are ids as 8-byte LE.
//   aggregate.keys args: table u32 | key size u32 | field offset u32 | packed keys.
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
}
