// Sums a little-endian int64 field over many records (Splinter's "aggregate").
//   aggregate      args: table u32 | first id u64 | count u32 | field offset u32; keys are ids as 8-byte LE.
//   aggregate.keys args: table u32 | key size u32 | field offset u32 | packed keys.
// Response: the sum as int64 LE.
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
        var key = new byte[8];
        long sum = 0;
        for (ulong id = first; id < first + count; id++)
        {
            // A preemption point is inserted here at install: long ranges give the worker back.
            BinaryPrimitives.WriteUInt64LittleEndian(key, id);
            if (ctx.TryGet(table, key, out var value) && value.Length >= offset + 8)
            {
                sum += BinaryPrimitives.ReadInt64LittleEndian(value.Slice(offset));
            }
        }
        ctx.WriteInt64(sum);
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
