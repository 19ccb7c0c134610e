using System.Text;

namespace Hybrid.Extensions.Tests;

/// <summary>
/// The skip a stopped invocation takes at every finally start branches to that block's own endfinally. Shapes where the
/// last endfinally in the block's range belongs to a nested handler, or where the block has none, once produced
/// invalid IL (every call then failed with InvalidProgramException; found by review): each shape must run as written.
/// </summary>
public sealed class FinallySkipTests
{
    private static string Wrap(string call, string members, bool isAsync = false) => $$"""
        using System;
        using Hybrid.Extensions.Abstractions;
        public static class Shapes
        {
            [Extension]
            public static {{(isAsync ? "async " : "")}}ExtensionTask Run(ExtensionContext ctx)
            {
                {{call}}
                {{(isAsync ? "" : "return ExtensionTask.CompletedTask;")}}
            }
            {{members}}
        }
        """;

    public static TheoryData<string, string, ExtensionStatus, string> Cases => new()
    {
        { "nested finally, then a throw", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } throw new InvalidOperationException(\"x\"); } }"), ExtensionStatus.Faulted, "InvalidOperationException: x" },
        { "the same, stopped in its try", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { while (true) { } } finally { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } throw new InvalidOperationException(\"x\"); } }"), ExtensionStatus.CpuBudgetExceeded, "" },
        { "a loop of nested finallys, then a throw", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { int i = 0; while (i < 3) { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } i++; } throw new InvalidOperationException(\"y\"); } }"), ExtensionStatus.Faulted, "InvalidOperationException: y" },
        { "a finally that only throws", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { throw new InvalidOperationException(\"z\"); } }"), ExtensionStatus.Faulted, "InvalidOperationException: z" },
        { "nested finallys that both throw, at the method's end", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { try { throw new InvalidOperationException(\"i\"); } finally { throw new InvalidOperationException(\"o\"); } } }"), ExtensionStatus.Faulted, "InvalidOperationException: o" },
        { "a nested catch, then a throw", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { try { ctx.Write(\"b\"u8); } catch (InvalidOperationException) { ctx.Write(\"c\"u8); } throw new InvalidOperationException(\"x\"); } }"), ExtensionStatus.Faulted, "InvalidOperationException: x" },
        { "a finally that starts with a try", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { ctx.Write(\"a\"u8); } finally { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } } }"), ExtensionStatus.Ok, "abc" },
        { "the same, stopped in its try", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { try { while (true) { } } finally { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } } }"), ExtensionStatus.CpuBudgetExceeded, "" },
        { "a do-while in a finally", Wrap("F(ctx);", "static void F(ExtensionContext ctx) { int i = 0; try { ctx.Write(\"a\"u8); } finally { do { ctx.Write(\"b\"u8); i++; } while (i < 3); } }"), ExtensionStatus.Ok, "abbb" },
        { "async: nested finally, then a throw", Wrap("await G(ctx);", "static async ExtensionTask G(ExtensionContext ctx) { try { await ctx.Yield(); ctx.Write(\"a\"u8); } finally { try { ctx.Write(\"b\"u8); } finally { ctx.Write(\"c\"u8); } throw new InvalidOperationException(\"x\"); } }", isAsync: true), ExtensionStatus.Faulted, "InvalidOperationException: x" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_finally_shape_runs_as_written(string shape, string source, ExtensionStatus expected, string text)
    {
        using var h = new Harness(new ExtensionHostOptions { Limits = new ExtensionLimits { Cpu = TimeSpan.FromMilliseconds(50) } });
        h.InstallOk(1, "shape", source);
        var (status, response, message) = h.Call(1, "shape", default);
        Assert.True(status == expected, $"{shape}: {status} {message}");
        // The response when it ran to its end, else the error (when the case names one).
        if (expected == ExtensionStatus.Ok)
            Assert.Equal(text, Encoding.UTF8.GetString(response));
        else if (text.Length > 0)
            Assert.Equal(text, message);
    }
}
