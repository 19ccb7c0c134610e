// A CPU-bound loop that reads nothing: what a long analytics or crypto extension looks like to the scheduler. The
// instrumentation puts a preemption point in the loop, so it runs as many slices as it needs.
//   args: iterations i64
// Response: the loop's result, int64 LE.
using System.Buffers.Binary;
using Hybrid.Extensions.Abstractions;

public static class Loop
{
    [Extension]
    public static async ExtensionTask Run(ExtensionContext ctx)
    {
        long n = BinaryPrimitives.ReadInt64LittleEndian(ctx.Args);
        long acc = 1;
        for (long i = 0; i < n; i++)
        {
            acc += i ^ (acc >> 3);
        }
        ctx.WriteInt64(acc);
    }
}
