// YCSB-T style read-modify-write: for each key, read the record, add a delta to the int64 at offset 0
// and write it back (a missing record starts at 0). All keys of one invocation are updated by one
// extension step sequence on one worker, next to the data. Not atomic: an invocation on another worker
// may update the same key between the read and the write (docs/extensions.md, "Not atomic").
//   args: table u32 | delta i64 | key size u32 | packed keys
// Response: the new values, int64 LE each.
using System;
using System.Buffers.Binary;
using Hybrid.Extensions.Abstractions;

public static class ReadModifyWrite
{
    [Extension]
    public static async ExtensionTask Run(ExtensionContext ctx)
    {
        var table = BinaryPrimitives.ReadUInt32LittleEndian(ctx.Args);
        var delta = BinaryPrimitives.ReadInt64LittleEndian(ctx.Args.Slice(4));
        var keySize = BinaryPrimitives.ReadInt32LittleEndian(ctx.Args.Slice(12));
        var keyCount = (ctx.Args.Length - 16) / keySize;
        var buffer = new byte[64];
        for (var i = 0; i < keyCount; i++)
        {
            var key = ctx.Args.Slice(16 + (i * keySize), keySize);
            var length = 8;
            if (ctx.TryGet(table, key, out var old) && old.Length >= 8)
            {
                if (buffer.Length < old.Length)
                {
                    buffer = new byte[old.Length];
                }
                old.CopyTo(buffer);
                length = old.Length;
            }
            else
            {
                BinaryPrimitives.WriteInt64LittleEndian(buffer, 0);
            }
            var updated = BinaryPrimitives.ReadInt64LittleEndian(buffer) + delta;
            BinaryPrimitives.WriteInt64LittleEndian(buffer, updated);
            ctx.Put(table, key, buffer.AsSpan(0, length));
            ctx.WriteInt64(updated);
        }
    }
}
