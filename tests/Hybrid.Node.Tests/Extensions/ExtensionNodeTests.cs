using System.Buffers.Binary;
using System.Text;
using Hybrid.Extensions;
using Hybrid.Node.Extensions;
using Hybrid.Node.Tests.Node;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Extensions;

/// <summary>Tenant extensions end to end: a real node, real sockets, the real client.</summary>
public class ExtensionNodeTests
{
    private static readonly byte[] s_secretA = Encoding.UTF8.GetBytes("secret-a");
    private static readonly byte[] s_secretB = Encoding.UTF8.GetBytes("secret-b");

    /// <summary>The shipped one-read example: the value in table 0 at the key given as args, or nothing.</summary>
    internal static readonly string GetOne = ExtensionExamples.Source("get");

    /// <summary>Writes args[1..] under key args[0..1] after yielding twice: its reply comes from a later scheduler round.</summary>
    private const string YieldThenPut = """
        using Hybrid.Extensions.Abstractions;
        public static class YieldThenPut
        {
            [Extension]
            public static async ExtensionTask Run(ExtensionContext ctx)
            {
                await ctx.Yield();
                await ctx.Yield();
                ctx.Put(0, ctx.Args.Slice(0, 1), ctx.Args.Slice(1));
                ctx.Write("done"u8);
            }
        }
        """;

    /// <summary>Spins forever without yielding: only the CPU budget stops it.</summary>
    internal const string Spin = HostileSources.Spin;

    /// <summary>A catalog that cannot record (a cluster's metadata store that is away).</summary>
    private sealed class UnreachableCatalog : IExtensionCatalog
    {
        public CatalogRecord Record(uint tenant, string name, string? source) => throw new IOException("metadata store unreachable");
    }

    /// <summary>A catalog that records in memory (what the cluster's does in its metadata store).</summary>
    private sealed class MemoryCatalog : IExtensionCatalog
    {
        public readonly Dictionary<(uint, string), string?> Entries = [];
        private long _revision;

        public CatalogRecord Record(uint tenant, string name, string? source)
        {
            bool held = Entries.TryGetValue((tenant, name), out var old) && old is not null;
            Entries[(tenant, name)] = source;
            return new CatalogRecord(held, ++_revision);
        }
    }

    [Fact]
    public async Task An_install_or_uninstall_the_catalog_cannot_record_answers_Retry_saying_so_and_stays_on_this_node()
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        await s.PutAsync(0, "k"u8, "hello"u8);
        NodeExtensions.Of(node.Node).Catalog = new UnreachableCatalog();

        var install = await s.InstallExtensionAsync("get1", GetOne);
        Assert.Equal(Status.Retry, install.Status);
        Assert.Equal("installed on this node, but not recorded for the cluster's other nodes (metadata store unreachable): send it again", Assert.Single(install.Errors));
        var hit = await s.InvokeAsync("get1", "k"u8);
        Assert.Equal((Status.Ok, "hello"), (hit.Status, Encoding.UTF8.GetString(hit.Value)));

        var uninstall = await Assert.ThrowsAsync<Hybrid.Client.HybridProtocolException>(async () => await s.UninstallExtensionAsync("get1"));
        Assert.Contains("removed on this node, but not recorded", uninstall.Message, StringComparison.Ordinal);
        Assert.Equal(Status.NotFound, (await s.InvokeAsync("get1", "k"u8)).Status);
        // Sent again, as told: this node has nothing left to remove, but the removal still goes to the catalog.
        var again = await Assert.ThrowsAsync<Hybrid.Client.HybridProtocolException>(async () => await s.UninstallExtensionAsync("get1"));
        Assert.Contains("not recorded for the cluster's other nodes", again.Message, StringComparison.Ordinal);
        var catalog = new MemoryCatalog();
        catalog.Entries[(1, "get1")] = GetOne;
        NodeExtensions.Of(node.Node).Catalog = catalog;
        Assert.True(await s.UninstallExtensionAsync("get1"));   // the catalog held it: Ok, and it now holds a removal
        Assert.Null(catalog.Entries[(1, "get1")]);
        Assert.False(await s.UninstallExtensionAsync("get1"));  // nobody holds it any more: NotFound
    }

    /// <summary>An extension that answers <paramref name="text"/>.</summary>
    private static string Says(string text) => $$"""
        using Hybrid.Extensions.Abstractions;
        public static class Says
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                ctx.Write("{{text}}"u8);
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    [Fact]
    public async Task A_catalog_entry_older_than_this_nodes_own_newest_change_is_not_applied_a_newer_one_is()
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        var extensions = NodeExtensions.Of(node.Node);
        extensions.Catalog = new MemoryCatalog();
        Assert.True(node.Node.Tenants.TryGet("default", out var tenant));
        Assert.True((await s.InstallExtensionAsync("e", Says("v1"))).Succeeded);   // catalog revision 1
        Assert.True((await s.InstallExtensionAsync("e", Says("v2"))).Succeeded);   // revision 2

        // v1's echo reaches the follower after v2 was recorded (as it does while v2 compiles): v2 stays.
        Assert.True((await extensions.ApplyAsync(tenant.Id, "e", Says("v1"), revision: 1)).Success);
        Assert.Equal("v2", Encoding.UTF8.GetString((await s.InvokeAsync("e", default)).Value));
        // Another node's later change (revision 3) is applied.
        Assert.True((await extensions.ApplyAsync(tenant.Id, "e", Says("v3"), revision: 3)).Success);
        Assert.Equal("v3", Encoding.UTF8.GetString((await s.InvokeAsync("e", default)).Value));
        // And a later removal.
        Assert.True((await extensions.ApplyAsync(tenant.Id, "e", null, revision: 4)).Success);
        Assert.Equal(Status.NotFound, (await s.InvokeAsync("e", default)).Status);
    }

    [Fact]
    public async Task Install_Invoke_List_Uninstall_RoundTrip()
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        await s.PutAsync(0, "k"u8, "hello"u8);

        var install = await s.InstallExtensionAsync("get1", GetOne);
        Assert.True(install.Succeeded, string.Join("\n", install.Errors));
        Assert.Equal(["get1"], install.Names);
        Assert.Equal(["get1"], await s.ListExtensionsAsync());

        var hit = await s.InvokeAsync("get1", "k"u8);
        Assert.Equal((Status.Ok, "hello"), (hit.Status, Encoding.UTF8.GetString(hit.Value)));
        var miss = await s.InvokeAsync("get1", "nope"u8);
        Assert.Equal((Status.Ok, 0), (miss.Status, miss.Value.Length));

        Assert.True(await s.UninstallExtensionAsync("get1"));
        Assert.False(await s.UninstallExtensionAsync("get1"));
        Assert.Empty(await s.ListExtensionsAsync());
        Assert.Equal(Status.NotFound, (await s.InvokeAsync("get1", "k"u8)).Status);
    }

    [Fact]
    public async Task UnknownExtension_NotFound_AndForbiddenSource_RejectedWithPosition()
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        var missing = await s.InvokeAsync("nothing", default);
        Assert.Equal(Status.NotFound, missing.Status);
        Assert.Contains("nothing", missing.Error);

        const string reader = """
            using Hybrid.Extensions.Abstractions;
            public static class Reader
            {
                [Extension]
                public static ExtensionTask Run(ExtensionContext ctx)
                {
                    ctx.Write(System.IO.File.ReadAllBytes("/etc/passwd"));
                    return ExtensionTask.CompletedTask;
                }
            }
            """;
        var rejected = await s.InstallExtensionAsync("reader", reader);
        Assert.Equal(Status.InstallRejected, rejected.Status);
        Assert.Contains(rejected.Errors, e => e.Contains("System.IO.File") && e.Contains("(7,"));
        Assert.Empty(await s.ListExtensionsAsync());
    }

    [Fact]
    public async Task YieldingInvocation_ParksTheConnection_AndAnswersInOrder()
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        Assert.True((await s.InstallExtensionAsync("later", YieldThenPut)).Succeeded);
        // Several in flight on one connection: each parks its batch until the coroutine finished.
        var calls = Enumerable.Range(0, 20).Select(i => s.InvokeAsync("later", [(byte)('a' + i), (byte)i]).AsTask()).ToArray();
        var results = await Task.WhenAll(calls);
        Assert.All(results, r => Assert.Equal((Status.Ok, "done"), (r.Status, Encoding.UTF8.GetString(r.Value))));
        for (int i = 0; i < 20; i++)
            Assert.Equal([(byte)i], (await s.GetAsync(0, [(byte)('a' + i)])).Value!);
    }

    /// <summary>Reads two keys (args: length of the first, first, second) and answers both values: both spans must survive.</summary>
    private const string Pair = """
        using Hybrid.Extensions.Abstractions;
        public static class Pair
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                var args = ctx.Args;
                int n = args[0];
                if (ctx.TryGet(0, args.Slice(1, n), out var first) && ctx.TryGet(0, args.Slice(1 + n), out var second))
                {
                    ctx.Write(first);
                    ctx.Write(second);
                }
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    /// <summary>
    /// Reads the record at args (5 bytes expected), overwrites it with as many bytes, stores the value it read under
    /// "copy" and answers that value: all with the span it got from the read.
    /// </summary>
    private const string ReadThenOverwrite = """
        using Hybrid.Extensions.Abstractions;
        public static class ReadThenOverwrite
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                if (!ctx.TryGet(0, ctx.Args, out var before))
                {
                    ctx.Write("absent"u8);
                    return ExtensionTask.CompletedTask;
                }
                ctx.Put(0, ctx.Args, "BBBBB"u8);
                ctx.Put(0, "copy"u8, before);
                ctx.Write(before);
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    /// <summary>A node over a counting store, with "k" = AAAAA and <see cref="ReadThenOverwrite"/> installed as "rw".</summary>
    private static async Task<(TestNode Node, CountingStore Counting)> StartWithReadThenOverwriteAsync()
    {
        CountingStore? counting = null;
        var node = await TestNode.StartAsync(wrapStore: st => counting = new CountingStore(st));
        try
        {
            await using var s = await node.ConnectAsync();
            await s.PutAsync(0, "k"u8, "AAAAA"u8);
            Assert.True((await s.InstallExtensionAsync("rw", ReadThenOverwrite)).Succeeded);
            return (node, counting!);
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task A_value_read_in_memory_is_lent_without_a_copy_and_keeps_its_bytes_through_the_extensions_own_writes()
    {
        var (node, counting) = await StartWithReadThenOverwriteAsync();
        await using var _ = node;
        await using var s = await node.ConnectAsync();
        long lentBefore = counting.LentValues;

        var r = await s.InvokeAsync("rw", "k"u8);
        Assert.True(r.Status == Status.Ok, $"{r.Status} (reason {r.Reason}): {Encoding.UTF8.GetString(r.Value)}");
        // The span still showed the value as read after the same-length overwrite (which would have been in place).
        Assert.Equal("AAAAA", Encoding.UTF8.GetString(r.Value));
        Assert.Equal(lentBefore + 1, counting.LentValues);
        Assert.Equal("BBBBB", Encoding.UTF8.GetString((await s.GetAsync(0, "k"u8)).Value!));
        Assert.Equal("AAAAA", Encoding.UTF8.GetString((await s.GetAsync(0, "copy"u8)).Value!));
        // Again: now the record read is the one the first call wrote.
        r = await s.InvokeAsync("rw", "k"u8);
        Assert.Equal("BBBBB", Encoding.UTF8.GetString(r.Value));
        Assert.Equal("BBBBB", Encoding.UTF8.GetString((await s.GetAsync(0, "copy"u8)).Value!));
    }

    /// <summary>Reads the record at args, then writes "a" in a try whose finally stores and answers what it read.</summary>
    private const string ReadThenFinally = """
        using Hybrid.Extensions.Abstractions;
        public static class ReadThenFinally
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                if (!ctx.TryGet(0, ctx.Args, out var before))
                    return ExtensionTask.CompletedTask;
                try
                {
                    ctx.Put(0, "a"u8, "x"u8);
                }
                finally
                {
                    ctx.Put(0, "leak"u8, before);
                    ctx.Write(before);
                }
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    [Fact]
    public async Task A_finally_block_cannot_reach_a_lent_value_after_its_invocation_was_stopped_for_eviction()
    {
        var (node, counting) = await StartWithReadThenOverwriteAsync();
        await using var _ = node;
        await using var s = await node.ConnectAsync();
        Assert.True((await s.InstallExtensionAsync("fin", ReadThenFinally)).Succeeded);

        // The read's check passes; the write's finds the head past the lent value (the write itself has run).
        counting.RetainsBeforeEviction = 1;
        var r = await s.InvokeAsync("fin", "k"u8);
        Assert.Equal((Status.ExtensionFailed, (ulong)ExtensionStatus.Evicted), (r.Status, r.Reason));
        Assert.Equal("x", Encoding.UTF8.GetString((await s.GetAsync(0, "a"u8)).Value!));
        // Nothing was stored from the span: a stopped invocation skips its finally blocks (and a store call would throw
        // the sticky stop).
        Assert.Equal(Status.NotFound, (await s.GetAsync(0, "leak"u8)).Status);

        r = await s.InvokeAsync("fin", "k"u8);
        Assert.Equal((Status.Ok, "AAAAA"), (r.Status, Encoding.UTF8.GetString(r.Value)));
        Assert.Equal("AAAAA", Encoding.UTF8.GetString((await s.GetAsync(0, "leak"u8)).Value!));
    }

    /// <summary>
    /// A chain of <paramref name="levels"/> calls (async ones when <paramref name="async"/>), each inside
    /// <paramref name="finallys"/> nested try/finally blocks, ending in <paramref name="bottom"/>; every finally block
    /// runs <paramref name="inFinally"/>. Found by review: unwinding such a chain nests one exception dispatch per
    /// finally block that throws, and 40 x 40 of them overflowed the worker's stack and killed the node. With
    /// <paramref name="asCatch"/>, catch blocks that throw again instead (the same nesting). The async case does not
    /// crash the old code (each level's compiler catch-all ends the nesting); it guards the async path all the same.
    /// </summary>
    private static string NestedFinallys(int levels, int finallys, bool async, string bottom, string inFinally, bool asCatch = false)
    {
        var text = new StringBuilder();
        text.AppendLine("using Hybrid.Extensions.Abstractions;");
        text.AppendLine("public static class Nested {");
        text.AppendLine(async
            ? $"  [Extension] public static async ExtensionTask Run(ExtensionContext ctx) {{ await Level(ctx, {levels}); }}"
            : $"  [Extension] public static ExtensionTask Run(ExtensionContext ctx) {{ Level(ctx, {levels}); return ExtensionTask.CompletedTask; }}");
        text.AppendLine("  static void Touch(ExtensionContext ctx) { ctx.Write(\"f\"u8); }");
        text.AppendLine($"  static void Bottom(ExtensionContext ctx) {{ {bottom} }}");
        text.AppendLine(async ? "  static async ExtensionTask Level(ExtensionContext ctx, int n) {" : "  static void Level(ExtensionContext ctx, int n) {");
        for (int i = 0; i < finallys; i++)
            text.AppendLine("try {");
        text.AppendLine(async ? "if (n == 0) Bottom(ctx); else await Level(ctx, n - 1);" : "if (n == 0) Bottom(ctx); else Level(ctx, n - 1);");
        for (int i = 0; i < finallys; i++)
            text.AppendLine(asCatch ? $"}} catch (System.InvalidOperationException) {{ {inFinally} }}" : $"}} finally {{ {inFinally} }}");
        text.AppendLine("  }");
        text.AppendLine("}");
        return text.ToString();
    }

    [Theory]
    [InlineData(40, false, "long i = 0; while (true) { i++; }", "Touch(ctx);", ExtensionStatus.CpuBudgetExceeded)]
    [InlineData(20, true, "long i = 0; while (true) { i++; }", "Touch(ctx);", ExtensionStatus.CpuBudgetExceeded)]
    [InlineData(40, false, "long i = 0; while (true) { i++; }", "long j = 0; while (true) { j++; }", ExtensionStatus.CpuBudgetExceeded)]
    [InlineData(40, false, "throw new System.InvalidOperationException(\"bottom\");", "throw new System.InvalidOperationException(\"again\");", ExtensionStatus.StackBudgetExceeded)]
    [InlineData(40, false, "throw new System.InvalidOperationException(\"bottom\");", "throw new System.InvalidOperationException(\"again\");", ExtensionStatus.StackBudgetExceeded, true)]
    public async Task Deeply_nested_finally_blocks_unwinding_a_stop_or_throwing_themselves_cannot_overflow_the_stack(
        int levels, bool async, string bottom, string inFinally, ExtensionStatus expected, bool asCatch = false)
    {
        await using var node = await TestNode.StartAsync();
        await using var s = await node.ConnectAsync();
        await s.PutAsync(0, "k"u8, "v"u8);
        var install = await s.InstallExtensionAsync("nested", NestedFinallys(levels, finallys: 40, async, bottom, inFinally, asCatch));
        Assert.True(install.Succeeded, string.Join("\n", install.Errors));

        var r = await s.InvokeAsync("nested", default);
        // On a loaded machine the watchdog may stop it first (the first step also JIT-compiles these large methods): the
        // same unwinding through every block follows, so that outcome counts too.
        Assert.True(r.Status == Status.ExtensionFailed && (ExtensionStatus)r.Reason is var reason && (reason == expected || reason == ExtensionStatus.Quarantined),
            $"{r.Status} {(ExtensionStatus)r.Reason}: {Encoding.UTF8.GetString(r.Value)}");
        Assert.Equal("v", Encoding.UTF8.GetString((await s.GetAsync(0, "k"u8)).Value!));
    }

    [Fact]
    public async Task An_invocation_whose_lent_value_was_evicted_is_stopped_before_it_uses_it_and_the_node_serves_on()
    {
        var (node, counting) = await StartWithReadThenOverwriteAsync();
        await using var _ = node;
        await using var s = await node.ConnectAsync();

        // The store reports the log's head past the value just lent (the race RetainInPlace exists to catch).
        counting.EvictUnderLentValues = true;
        var r = await s.InvokeAsync("rw", "k"u8);
        Assert.Equal((Status.ExtensionFailed, (ulong)ExtensionStatus.Evicted), (r.Status, r.Reason));
        Assert.Contains("evicted the memory under a value", Encoding.UTF8.GetString(r.Value), StringComparison.Ordinal);
        // Stopped right after the read: neither write ran.
        Assert.Equal("AAAAA", Encoding.UTF8.GetString((await s.GetAsync(0, "k"u8)).Value!));
        Assert.Equal(Status.NotFound, (await s.GetAsync(0, "copy"u8)).Status);

        counting.EvictUnderLentValues = false;
        r = await s.InvokeAsync("rw", "k"u8);
        Assert.Equal((Status.Ok, "AAAAA"), (r.Status, Encoding.UTF8.GetString(r.Value)));
    }

    [Fact]
    public async Task RecordsOnDisk_ReadByAnExtension_CompleteSynchronously_WithEverySpanIntact()
    {
        CountingStore? counting = null;
        await using var node = await TestNode.StartAsync(Storage.DurabilityMode.Memory, memoryBudget: 64 * 1024, wrapStore: st => counting = new CountingStore(st));
        await using var s = await node.ConnectAsync();
        var value = new byte[1000];
        for (int j = 0; j < 600; j++)
        {
            BitConverter.TryWriteBytes(value, j);
            await s.PutAsync(0, Encoding.UTF8.GetBytes($"cold{j}"), value);
        }
        Assert.True((await s.InstallExtensionAsync("pair", Pair)).Succeeded);
        long pendingBefore = counting!.PendingOperations;
        // Early keys are long evicted from the 64 KiB in-memory log: every read below goes to disk.
        for (int j = 0; j < 20; j++)
        {
            byte[] a = Encoding.UTF8.GetBytes($"cold{j}"), b = Encoding.UTF8.GetBytes($"cold{j + 300}");
            var r = await s.InvokeAsync("pair", [(byte)a.Length, .. a, .. b]);
            Assert.True(r.Status == Status.Ok, $"{r.Status} (reason {r.Reason}): {Encoding.UTF8.GetString(r.Value)}");
            Assert.Equal(2000, r.Value.Length);
            Assert.Equal((j, j + 300), (BitConverter.ToInt32(r.Value), BitConverter.ToInt32(r.Value.AsSpan(1000))));
        }
        Assert.True(counting.PendingOperations > pendingBefore, "no extension read went to disk: the test did not exercise the pending path");
    }

    [Fact]
    public async Task Tenants_SeeNeitherEachOthersExtensionsNorData()
    {
        await using var node = await TestNode.StartAsync();
        var (_, a, b) = await TwoTenantsAsync(node);
        await using var _a = a;
        await using var _b = b;
        await a.PutAsync(0, "secret"u8, "a's data"u8);
        Assert.True((await a.InstallExtensionAsync("spy", GetOne)).Succeeded);

        Assert.Equal(Status.NotFound, (await b.InvokeAsync("spy", "secret"u8)).Status);
        Assert.Empty(await b.ListExtensionsAsync());
        Assert.False(await b.UninstallExtensionAsync("spy"));

        // The same source installed by b runs against b's tables only.
        Assert.True((await b.InstallExtensionAsync("spy", GetOne)).Succeeded);
        Assert.Empty((await b.InvokeAsync("spy", "secret"u8)).Value);
        Assert.Equal("a's data", Encoding.UTF8.GetString((await a.InvokeAsync("spy", "secret"u8)).Value));
        Assert.True(await b.UninstallExtensionAsync("spy"));
        Assert.Equal(["spy"], await a.ListExtensionsAsync());
    }

    [Fact]
    public async Task InfiniteLoop_StoppedByCpuBudget_WhileAnotherTenantsGetsKeepSucceeding()
    {
        await using var node = await TestNode.StartAsync();
        var (_, a, b) = await TwoTenantsAsync(node);
        await using var _a = a;
        await using var _b = b;
        Assert.True((await a.InstallExtensionAsync("spin", Spin)).Succeeded);
        await b.PutAsync(0, "k"u8, "v"u8);

        var hostile = Enumerable.Range(0, 6).Select(_ => a.InvokeAsync("spin", default).AsTask()).ToArray();
        int gets = 0;
        while (!hostile.All(t => t.IsCompleted))
        {
            var got = await b.GetAsync(0, "k"u8);
            Assert.Equal(Status.Ok, got.Status);
            gets++;
        }
        foreach (var result in await Task.WhenAll(hostile))
        {
            Assert.Equal(Status.ExtensionFailed, result.Status);
            Assert.Equal((ulong)ExtensionStatus.CpuBudgetExceeded, result.Reason);
        }
        Assert.True(gets > 0);
        Assert.Equal(Status.Ok, (await b.GetAsync(0, "k"u8)).Status);
    }

    [Fact]
    public async Task A_tenant_with_MaxQueuedPerTenant_installs_waiting_is_refused_more_and_another_tenant_still_installs()
    {
        // Installs of a node compile one at a time: one tenant sending many at once held every other tenant's behind them.
        await using var node = await TestNode.StartAsync();
        var (_, sa, b) = await TwoTenantsAsync(node);
        await using var _a = sa;
        await using var _b = b;
        // Distinct sources (a source already loaded is shared, not compiled again), sent in one frame (the node holds a
        // later frame of the connection until the installs of an earlier one are answered): each takes milliseconds
        // to compile, and they reach the compiler's queue in microseconds.
        await using var a = await node.ConnectAsync("a", s_secretA, o => o with { Linger = TimeSpan.FromMilliseconds(200) });
        var flood = Enumerable.Range(0, 12).Select(i => a.InstallExtensionAsync($"x{i}", GetOne + $"\n// {i}").AsTask()).ToArray();
        var other = b.InstallExtensionAsync("get1", GetOne).AsTask();
        var results = await Task.WhenAll(flood);
        var refused = results.Where(r => r.Status == Status.QuotaExceeded).ToArray();
        Assert.All(results, r => Assert.True(r.Status is Status.Ok or Status.QuotaExceeded, $"{r.Status} {string.Join(' ', r.Errors)}"));
        Assert.InRange(results.Count(r => r.Succeeded), NodeExtensions.MaxQueuedPerTenant, flood.Length - 1);
        Assert.NotEmpty(refused);
        Assert.Equal($"{NodeExtensions.MaxQueuedPerTenant} installs or removals of this tenant wait for this node's compiler already: send it again once one is answered",
            Assert.Single(refused[0].Errors));
        Assert.True((await other).Succeeded);
        // Answered, they no longer count: the tenant installs again.
        Assert.True((await a.InstallExtensionAsync("again", GetOne + "\n// again")).Succeeded);
    }

    [Fact]
    public async Task CpuQuota_Spent_InvocationsThrottled_OtherTenantUnaffected()
    {
        await using var node = await TestNode.StartAsync();
        var (a, sa, sb) = await TwoTenantsAsync(node);
        await using var _a = sa;
        await using var _b = sb;
        Assert.True((await sa.InstallExtensionAsync("spin", Spin)).Succeeded);
        Assert.True((await sb.InstallExtensionAsync("get1", GetOne)).Succeeded);
        NodeExtensions.Of(node.Node).SetCpuQuota(a.Id, 0.001); // 1 ms per second: one 20 ms invocation spends 20 s of quota

        Assert.Equal(Status.ExtensionFailed, (await sa.InvokeAsync("spin", default)).Status);
        var throttled = await sa.InvokeAsync("spin", default);
        Assert.Equal((Status.QuotaExceeded, (ulong)ExtensionStatus.Throttled), (throttled.Status, throttled.Reason));
        Assert.Equal(Status.Ok, (await sb.InvokeAsync("get1", "k"u8)).Status);
        Assert.Equal(0.001, NodeExtensions.Of(node.Node).CpuQuota(a.Id));

        // The metrics say which tenant's extension was stopped or throttled, and how long its steps ran (there were no
        // extension metrics: an operator could not tell whose extension was failing).
        string metrics = node.Node.ScrapeMetrics();
        await sa.UninstallExtensionAsync("spin");
        Assert.Contains("hybrid_extension_invocations_total{tenant=\"a\",extension=\"spin\",status=\"cpubudgetexceeded\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("hybrid_extension_invocations_total{tenant=\"a\",extension=\"spin\",status=\"throttled\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.Contains("hybrid_extension_invocations_total{tenant=\"b\",extension=\"get1\",status=\"ok\"} 1\n", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("extension=\"spin\",status=\"ok\"", metrics, StringComparison.Ordinal);
        var spun = System.Text.RegularExpressions.Regex.Match(metrics, "hybrid_extension_step_seconds_total\\{tenant=\"a\",extension=\"spin\"\\} (\\S+)\n");
        Assert.True(spun.Success, metrics);
        // Its budget is 20 ms of its steps' time: it ran at least that long before it was stopped.
        Assert.InRange(double.Parse(spun.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 0.02, 60);
        // Uninstalled, its series is scraped once more and then ends (names that come and go would grow it for ever).
        Assert.Contains("extension=\"spin\"", node.Node.ScrapeMetrics(), StringComparison.Ordinal);
        Assert.DoesNotContain("extension=\"spin\"", node.Node.ScrapeMetrics(), StringComparison.Ordinal);
        Assert.Contains("extension=\"get1\"", node.Node.ScrapeMetrics(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CpuQuotas_come_from_the_tenant_records_at_start_and_an_old_quota_file_is_moved_into_them()
    {
        var directory = TestNode.NewDirectory();
        try
        {
            // As 'hybrid tenant create a --ext-cpu 0.001' leaves it, plus b's quota in the file earlier versions kept.
            var registry = Hybrid.Node.Tenants.TenantRegistry.Open(directory);
            var a = registry.Create("a", s_secretA, extensionCores: 0.001);
            var b = registry.Create("b", s_secretB);
            string legacy = Path.Combine(directory, "extensions", "cpu-quotas.tsv");
            Directory.CreateDirectory(Path.GetDirectoryName(legacy)!);
            await File.WriteAllTextAsync(legacy, $"{b.Id}\t0.5\n");

            await using (var node = await TestNode.StartAsync(Storage.DurabilityMode.Async, directory))
            {
                Assert.Equal(0.001, NodeExtensions.Of(node.Node).CpuQuota(a.Id));
                Assert.Equal(0.5, NodeExtensions.Of(node.Node).CpuQuota(b.Id));
                Assert.False(File.Exists(legacy), "the old quota file was not moved into the tenant records");
                await using var sa = await node.ConnectAsync("a", s_secretA);
                Assert.True((await sa.InstallExtensionAsync("spin", Spin)).Succeeded);
                Assert.Equal(Status.ExtensionFailed, (await sa.InvokeAsync("spin", default)).Status);
                var throttled = await sa.InvokeAsync("spin", default);
                Assert.Equal((Status.QuotaExceeded, (ulong)ExtensionStatus.Throttled), (throttled.Status, throttled.Reason));
            }
            Assert.True(Hybrid.Node.Tenants.TenantRegistry.Open(directory).TryGet("b", out var kept));
            Assert.Equal(0.5, kept.ExtensionCores);
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    [Fact]
    public async Task Installs_SurviveRestart_WithoutRecompiling()
    {
        var directory = TestNode.NewDirectory();
        try
        {
            await using (var node = await TestNode.StartAsync(Storage.DurabilityMode.Async, directory))
            {
                await using var s = await node.ConnectAsync();
                var install = await s.InstallExtensionAsync("agg", ExtensionExamples.Source("aggregate"));
                Assert.True(install.Succeeded, string.Join("\n", install.Errors));
                Assert.Equal(["agg", "agg.keys", "agg.list"], install.Names);
                Assert.True((await s.InstallExtensionAsync("get1", GetOne)).Succeeded);
                Assert.True(await s.UninstallExtensionAsync("get1"));
                for (ulong id = 0; id < 10; id++)
                    await s.PutAsync(1, Id(id), Record((long)id * 3));
            }
            await using (var node = await TestNode.StartAsync(Storage.DurabilityMode.Async, directory))
            {
                await using var s = await node.ConnectAsync();
                Assert.Equal(["agg", "agg.keys", "agg.list"], await s.ListExtensionsAsync());
                var sum = await s.InvokeAsync("agg", RangeArgs(table: 1, first: 0, count: 10, offset: 0));
                Assert.Equal(Status.Ok, sum.Status);
                Assert.Equal(3 * 45, BinaryPrimitives.ReadInt64LittleEndian(sum.Value));
                Assert.Equal(Status.NotFound, (await s.InvokeAsync("get1", "k"u8)).Status);

                // agg.list on the node's own store: the list record's span is read while the sum reads the records it
                // names (ids 2, 5 and 7, and 99, which is absent and counts 0).
                await s.PutAsync(1, "list"u8, [.. Id(2), .. Id(5), .. Id(7), .. Id(99)]);
                byte[] args = [.. BitConverter.GetBytes(1u), .. BitConverter.GetBytes(8), .. BitConverter.GetBytes(0), .. "list"u8];
                var listed = await s.InvokeAsync("agg.list", args);
                Assert.Equal(Status.Ok, listed.Status);
                Assert.Equal(3 * (2 + 5 + 7), BinaryPrimitives.ReadInt64LittleEndian(listed.Value));
                args[^1] = (byte)'x'; // "lisx": no such list
                Assert.Equal(Status.ExtensionFailed, (await s.InvokeAsync("agg.list", args)).Status);
            }
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    /// <summary>Tenants "a" and "b" with secrets, and one session of each.</summary>
    private static async Task<(Hybrid.Node.Tenants.TenantInfo A, Client.HybridSession SessionA, Client.HybridSession SessionB)> TwoTenantsAsync(TestNode node)
    {
        var a = node.Node.Tenants.Create("a", s_secretA);
        node.Node.Tenants.Create("b", s_secretB);
        return (a, await node.ConnectAsync("a", s_secretA), await node.ConnectAsync("b", s_secretB));
    }

    internal static byte[] Id(ulong id)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(key, id);
        return key;
    }

    internal static byte[] Record(long field)
    {
        var value = new byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(value, field);
        return value;
    }

    internal static byte[] RangeArgs(uint table, ulong first, uint count, int offset)
    {
        var args = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(args, table);
        BinaryPrimitives.WriteUInt64LittleEndian(args.AsSpan(4), first);
        BinaryPrimitives.WriteUInt32LittleEndian(args.AsSpan(12), count);
        BinaryPrimitives.WriteInt32LittleEndian(args.AsSpan(16), offset);
        return args;
    }
}
