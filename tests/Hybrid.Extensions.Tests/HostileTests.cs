using System.Text.RegularExpressions;

namespace Hybrid.Extensions.Tests;

/// <summary>
/// Hostile extensions: each is rejected at install with a message naming the symbol and its position,
/// or stopped at run time with the right status, while other tenants keep being served.
/// </summary>
public sealed partial class HostileTests
{
    private static string Wrap(string body, string members = "") => $$"""
        using System;
        using Hybrid.Extensions.Abstractions;
        public static class Hostile
        {
            [Extension]
            public static async ExtensionTask Run(ExtensionContext ctx)
            {
                {{body}}
            }
            {{members}}
        }
        """;

    public static TheoryData<string, string, string> Rejected => new()
    {
        { "file", Wrap("""var s = System.IO.File.ReadAllText("/etc/passwd");"""), "type 'System.IO.File'" },
        { "directory", Wrap("""System.IO.Directory.Delete("/tmp", true);"""), "type 'System.IO.Directory'" },
        { "environment-exit", Wrap("Environment.Exit(1);"), "type 'System.Environment'" },
        { "environment-var", Wrap("""var v = Environment.GetEnvironmentVariable("HOME");"""), "type 'System.Environment'" },
        { "reflection-typeof", Wrap("""var m = typeof(string).GetMethod("Concat");"""), "type 'System.Type'" },
        { "reflection-gettype", Wrap("var t = ctx.GetType();"), "member 'object.GetType'" },
        { "activator", Wrap("var o = Activator.CreateInstance(null);"), "type 'System.Activator'" },
        { "unsafe-as", Wrap("var o = System.Runtime.CompilerServices.Unsafe.As<object>(ctx);"), "type 'System.Runtime.CompilerServices.Unsafe'" },
        { "memorymarshal", Wrap("var s = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(ctx.Args);"), "type 'System.Runtime.InteropServices.MemoryMarshal'" },
        { "vector-loadunsafe", Wrap("byte b = 0; var v = System.Numerics.Vector.LoadUnsafe(ref b, 1000);"), "member 'System.Numerics.Vector.LoadUnsafe'" },
        { "pointer", Wrap("unsafe { int x = 0; int* p = &x; p[100] = 1; }"), "error CS0227" },
        { "pinvoke", Wrap("Exit(0);", """[System.Runtime.InteropServices.DllImport("libc", EntryPoint = "exit")] private static extern void Exit(int code);"""), "extern method 'Exit'" },
        { "thread", Wrap("var t = new System.Threading.Thread(Spin);", "private static void Spin() { }"), "type 'System.Threading.Thread'" },
        { "task-run", Wrap("System.Threading.Tasks.Task.Run(Spin);", "private static void Spin() { }"), "type 'System.Threading.Tasks.Task'" },
        { "threadpool", Wrap("System.Threading.ThreadPool.QueueUserWorkItem(null);"), "type 'System.Threading.ThreadPool'" },
        { "await-task-yield", Wrap("await System.Threading.Tasks.Task.Yield();"), "type 'System.Threading.Tasks.Task'" },
        { "static-field", Wrap("s_count++;", "private static int s_count;"), "static mutable state 'Hostile.s_count'" },
        { "static-readonly-array", Wrap("s_table[0]++;", "private static readonly byte[] s_table = new byte[16];"), "static mutable state 'Hostile.s_table'" },
        { "static-auto-property", Wrap("Count++;", "private static int Count { get; set; }"), "static mutable state 'Count'" },
        { "static-constructor", Wrap("", "public sealed class Evil { static Evil() { } }"), "static constructor of 'Evil'" },
        { "finalizer", Wrap("var e = new Evil();", "public sealed class Evil { ~Evil() { while (true) { } } }"), "finalizer of 'Evil'" },
        { "dynamic", Wrap("dynamic d = ctx;"), "type 'dynamic'" },
        { "generic-smuggling", Wrap("var x = default(ValueTuple<int, System.Threading.CancellationToken>);"), "type 'System.Threading.CancellationToken'" },
        { "generic-list", Wrap("var l = new System.Collections.Generic.List<int>();"), "type 'System.Collections.Generic.List<T>'" },
        { "new-t-activator", Wrap("var b = Make<Box>();", "public sealed class Box { } private static T Make<T>() where T : new() => new T();"), "member 'System.Activator.CreateInstance' in emitted code" },
        { "catch-exception", Wrap("try { while (true) { } } catch (Exception) { }"), "catch of 'System.Exception'" },
        { "catch-all", Wrap("try { while (true) { } } catch { }"), "catch-all clause" },
        { "catch-exception-filter", Wrap("try { while (true) { } } catch (Exception e) when (e.Message.Length > 0) { }"), "catch of 'System.Exception'" },
        { "lock", Wrap("lock (ctx) { }"), "lock statement" },
        { "stackalloc", Wrap("Span<byte> s = stackalloc byte[1 << 20];"), "stackalloc" },
        { "gc", Wrap("GC.Collect();"), "type 'System.GC'" },
        { "struct-layout-overlap", Wrap("", "[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit)] public struct U { [System.Runtime.InteropServices.FieldOffset(0)] public object O; [System.Runtime.InteropServices.FieldOffset(0)] public long L; }"), "type 'System.Runtime.InteropServices.StructLayoutAttribute'" },
        { "module-initializer", Wrap("", "[System.Runtime.CompilerServices.ModuleInitializer] internal static void Init() { }"), "type 'System.Runtime.CompilerServices.ModuleInitializerAttribute'" },
        { "lambda", Wrap("Func<int> f = () => 1;"), "lambda" },
        { "method-group-delegate", Wrap("Func<int> f = One;", "private static int One() => 1;"), "type 'System.Func<TResult>'" },
        { "record", Wrap("", "public record R(int X);"), "interface 'System.IEquatable<Hostile.R>'" },
        { "array-resize", Wrap("var a = new byte[1]; Array.Resize(ref a, 1 << 30);"), "member 'System.Array.Resize'" },
        { "string-ctor", Wrap("""var s = new string('a', 1 << 30);"""), "member 'string..ctor'" },
        { "failfast", Wrap("""Environment.FailFast("bye");"""), "type 'System.Environment'" },
        { "marshal", Wrap("System.Runtime.InteropServices.Marshal.WriteByte(IntPtr.Zero, 1);"), "type 'System.Runtime.InteropServices.Marshal'" },
        { "multidim-array", Wrap("var a = new int[2, 2];"), "multi-dimensional array" },
    };

    [Theory]
    [MemberData(nameof(Rejected))]
    public void Install_Hostile_IsRejectedNamingTheSymbolAndPosition(string name, string source, string expected)
    {
        using var h = new Harness();
        var result = h.Host.Install(1, name, source);
        Assert.False(result.Success, $"{name} was installed");
        var match = result.Errors.FirstOrDefault(e => e.Contains(expected, StringComparison.Ordinal));
        Assert.True(match is not null, $"expected '{expected}' in:\n{string.Join("\n", result.Errors)}");
        Assert.Matches(Position(), match);
        Assert.Null(h.Host.Resolve(1, name));
    }

    [Fact]
    public void Install_Rejection_PointsAtTheExactLineAndColumn()
    {
        using var h = new Harness();
        var source = "using Hybrid.Extensions.Abstractions;\npublic static class X\n{\n    [Extension]\n    public static ExtensionTask Run(ExtensionContext ctx)\n    {\n        System.IO.File.Delete(\"/x\");\n        return ExtensionTask.CompletedTask;\n    }\n}\n";
        var result = h.Host.Install(1, "exact", source);
        // Once: System.IO.File.Delete is several syntax nodes that each name the type.
        Assert.Equal(["exact.cs(7,9): forbidden type 'System.IO.File'"], result.Errors);
    }

    [Fact]
    public void Install_NewT_IlScanPointsAtTheLineOfNewT()
    {
        using var h = new Harness();
        var source = "using Hybrid.Extensions.Abstractions;\npublic static class X\n{\n    [Extension]\n    public static ExtensionTask Run(ExtensionContext ctx)\n    {\n        Make<X2>();\n        return ExtensionTask.CompletedTask;\n    }\n    private static T Make<T>() where T : new()\n        => new T();\n}\npublic sealed class X2 { }\n";
        var result = h.Host.Install(1, "newt", source);
        Assert.Contains(result.Errors, e => e.StartsWith("newt.cs(11,", StringComparison.Ordinal) && e.Contains("System.Activator.CreateInstance", StringComparison.Ordinal));
    }

    public static TheoryData<string, string, ExtensionStatus> Stopped => new()
    {
        { "infinite-loop", Wrap("while (true) { }"), ExtensionStatus.CpuBudgetExceeded },
        { "infinite-loop-sync", Wrap("Spin();", "private static void Spin() { var i = 0; while (i >= 0) { i = (i + 1) & 7; } }"), ExtensionStatus.CpuBudgetExceeded },
        { "backward-goto", Wrap("Spin();", "private static void Spin() { top: goto top; }"), ExtensionStatus.CpuBudgetExceeded },
        { "loop-in-finally", Wrap("Spin();", "private static void Spin() { try { } finally { while (true) { } } }"), ExtensionStatus.CpuBudgetExceeded },
        { "loop-in-filter", Wrap("Spin();", "private static void Spin() { try { throw new InvalidOperationException(); } catch (InvalidOperationException) when (Forever()) { } } private static bool Forever() { while (true) { } }"), ExtensionStatus.CpuBudgetExceeded },
        { "filter-after-abort", Wrap("Spin();", "private static void Spin() { while (true) { try { while (true) { } } catch (InvalidOperationException) when (true) { } finally { while (true) { } } } }"), ExtensionStatus.CpuBudgetExceeded },
        { "catch-and-retry", Wrap("while (true) { try { Spin(); } catch (InvalidOperationException) { } }", "private static void Spin() { while (true) { } }"), ExtensionStatus.CpuBudgetExceeded },
        { "recursion", Wrap("Down(0);", "private static int Down(int n) => Down(n + 1) + 1;"), ExtensionStatus.StackBudgetExceeded },
        { "async-recursion", Wrap("await Down(0);", "private static async ExtensionTask Down(int n) { await Down(n + 1); }"), ExtensionStatus.StackBudgetExceeded },
        { "huge-array", Wrap("var a = new byte[int.MaxValue]; a[0] = 1;"), ExtensionStatus.MemoryBudgetExceeded },
        { "repeated-arrays", Wrap("Alloc();", "private static void Alloc() { while (true) { var a = new long[1000]; a[0] = 1; } }"), ExtensionStatus.MemoryBudgetExceeded },
        { "string-doubling", Wrap("Dbl();", "private static void Dbl() { var s = \"x\"; while (true) { s = s + s; } }"), ExtensionStatus.MemoryBudgetExceeded },
        { "object-churn", Wrap("Churn();", "private sealed class Node { public Node Next; public long A, B, C; } private static void Churn() { Node head = null; while (true) { head = new Node { Next = head }; } }"), ExtensionStatus.MemoryBudgetExceeded },
        { "boxing-churn", Wrap("Churn();", "private static void Churn() { object o = null; long i = 0; while (i >= 0) { o = i++; } if (o == null) { i = 1; } }"), ExtensionStatus.MemoryBudgetExceeded },
        { "catch-rethrow-recursion", Wrap("Down(0);", "private static void Down(int n) { try { if (n < 1000) { Down(n + 1); } else { throw new InvalidOperationException(); } } catch (InvalidOperationException) { throw new InvalidOperationException(); } }"), ExtensionStatus.StackBudgetExceeded },
        { "finally-throw-recursion", Wrap("Down(0);", "private static void Down(int n) { try { Down(n + 1); } finally { throw new InvalidOperationException(); } }"), ExtensionStatus.StackBudgetExceeded },
        { "finally-loop-recursion", Wrap("Down(0);", "private static void Down(int n) { try { Down(n + 1); } finally { while (true) { } } }"), ExtensionStatus.StackBudgetExceeded },
        { "huge-struct-frames", Wrap("Down(0);", "public struct Big { public long A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, B0, B1, B2, B3, B4, B5, B6, B7, B8, B9; } private static long Down(int n) { var a = new Big(); var b = new Big(); var c = new Big(); var d = new Big(); a.A0 = n; return Down(n + 1) + a.A0 + b.A1 + c.A2 + d.A3; }"), ExtensionStatus.StackBudgetExceeded },
        { "tostring-churn", Wrap("Churn();", "private static void Churn() { var s = \"\"; long i = 0; while (true) { s = s + i.ToString(); i++; } }"), ExtensionStatus.MemoryBudgetExceeded },
    };

    [Theory]
    [MemberData(nameof(Stopped))]
    public void Invoke_Hostile_IsStoppedWithStatus_AndOtherTenantsKeepRunning(string name, string source, ExtensionStatus expected)
    {
        // 256 KiB of allocation and 100 ms of CPU: allocation churn reaches the memory budget well before the CPU
        // one, even in a fresh extension's first (tier-0, type-loading) call on a loaded machine.
        using var h = new Harness(new ExtensionHostOptions { Limits = new ExtensionLimits { MemoryBytes = 256 << 10, Cpu = TimeSpan.FromMilliseconds(100) } });
        h.InstallOk(1, name, source);
        h.InstallOk(2, "hello", InstallInvokeTests.Hello);
        h.Store.Put(2, 7, "k"u8, "v"u8);
        var (status, _, error) = h.Call(1, name, default);
        Assert.True(expected == status, $"{name}: {status} {error}");
        Assert.NotNull(error);
        var after = h.Call(2, "hello", "k"u8);
        Assert.Equal(ExtensionStatus.Ok, after.Status);
        Assert.Equal("v"u8.ToArray(), after.Response);
    }

    [Fact]
    public void Hostile_LongAsyncLoop_IsPreempted_WhileOtherTenantsComplete()
    {
        // 200 ms of CPU in 50 µs slices: thousands of preemption points, so at least 10 must let others run.
        using var h = new Harness(new ExtensionHostOptions { Limits = new ExtensionLimits { Cpu = TimeSpan.FromMilliseconds(200) } });
        h.InstallOk(1, "spin", Wrap("long i = 0; while (true) { i++; }"));
        h.InstallOk(2, "hello", InstallInvokeTests.Hello);
        h.Store.Put(2, 7, "k"u8, "v"u8);
        var hostile = h.NextCookie();
        h.Scheduler.Invoke(1, "spin", default, hostile);
        Assert.False(h.Sink.Results.ContainsKey(hostile)); // it yielded at a preemption point
        var served = 0;
        while (!h.Sink.Results.ContainsKey(hostile))
        {
            var cookie = h.NextCookie();
            h.Scheduler.Invoke(2, "hello", "k"u8, cookie);
            Assert.Equal(ExtensionStatus.Ok, h.Sink.Get(cookie).Status);
            served++;
            h.Scheduler.Run(1);
        }
        Assert.Equal(ExtensionStatus.CpuBudgetExceeded, h.Sink.Get(hostile).Status);
        Assert.True(served > 10, $"only {served} invocations were served while the hostile one ran");
    }

    [Fact]
    public void Hostile_OnOneWorker_DoesNotStopAnotherWorker()
    {
        using var h = new Harness(schedulers: 2);
        h.InstallOk(1, "spin", Wrap("Spin();", "private static void Spin() { while (true) { } }"));
        h.InstallOk(2, "hello", InstallInvokeTests.Hello);
        h.Store.Put(2, 7, "k"u8, "v"u8);
        var hostileStatuses = new List<ExtensionStatus>();
        var attacker = new Thread(() =>
        {
            for (var i = 0; i < 5; i++)
            {
                var cookie = h.NextCookie();
                h.Schedulers[1].Invoke(1, "spin", default, cookie);
                lock (hostileStatuses)
                {
                    hostileStatuses.Add(h.Sink.Get(cookie).Status);
                }
            }
        });
        attacker.Start();
        var served = 0;
        while (attacker.IsAlive)
        {
            var cookie = h.NextCookie();
            h.Schedulers[0].Invoke(2, "hello", "k"u8, cookie);
            Assert.Equal(ExtensionStatus.Ok, h.Sink.Get(cookie).Status);
            served++;
        }
        attacker.Join();
        Assert.Equal(Enumerable.Repeat(ExtensionStatus.CpuBudgetExceeded, 5), hostileStatuses);
        Assert.True(served > 0);
    }

    [GeneratedRegex(@"^hostile\.cs\(\d+,\d+\): |^[a-z-]+\.cs\(\d+,\d+\): ")]
    private static partial Regex Position();
}
