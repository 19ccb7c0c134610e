// The smallest useful extension: one read. It answers the value stored in table 0 under the key given as
// arguments, or nothing when the key is absent (benchmarks compare it with a native get).
using Hybrid.Extensions.Abstractions;

public static class GetExtension
{
    [Extension]
    public static ExtensionTask Run(ExtensionContext ctx)
    {
        if (ctx.TryGet(0, ctx.Args, out var value))
        {
            ctx.Write(value);
        }
        return ExtensionTask.CompletedTask;
    }
}
