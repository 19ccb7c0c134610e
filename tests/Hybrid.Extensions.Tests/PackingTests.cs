namespace Hybrid.Extensions.Tests;

/// <summary>Many tenants' sources compiled into one pack assembly: results, isolation, uninstall and restart.</summary>
public sealed class PackingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hybrid-pack-" + Guid.NewGuid().ToString("N"));

    /// <summary>Every tenant's source declares the same class name and a helper in its own namespace.</summary>
    private static string Tenant(int i) => $$"""
        using Hybrid.Extensions.Abstractions;
        using Mine;
        namespace Mine { public static class Helper { public static long Value() => {{i}}; } }
        public static class Same
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx) { ctx.WriteInt64(Helper.Value()); return ExtensionTask.CompletedTask; }
        }
        """;

    private const string FileScoped = """
        namespace Scoped;
        using Hybrid.Extensions.Abstractions;
        public static class Same
        {
            [Extension("x")]
            public static async ExtensionTask Run(ExtensionContext ctx)
            {
                long sum = 0;
                for (int i = 0; i < 1000; i++) { sum += i; }
                await ctx.Yield();
                ctx.WriteInt64(sum);
            }
        }
        """;

    [Fact]
    public void Packing_ReplacesStandaloneAssemblies_AndEveryTenantKeepsItsOwnCode()
    {
        using var h = new Harness(new ExtensionHostOptions { ExtensionsPerLoadContext = 3, ExtensionsPerPack = 4 });
        for (var i = 0; i < 6; i++)
        {
            h.InstallOk((ulong)i, "n", Tenant(i));
        }
        h.InstallOk(6, "n", Tenant(5));                        // identical source: shared by hash, packed once
        h.InstallOk(7, "f", FileScoped);
        Assert.Equal((0, 0, 7), h.Host.PackCounts);
        var before = h.Host.Resolve(3, "n")!;

        Assert.Equal(7, h.Host.Pack());
        Assert.Equal((2, 7, 0), h.Host.PackCounts);             // 4 + 3 modules
        Assert.Equal(3, h.Host.Counts.LoadContexts);            // the two full staging contexts unloaded; the packs and the current one stay
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(i, Bytes.Int64(h.Call((ulong)i, "n", default).Response));
        }
        Assert.Equal(5, Bytes.Int64(h.Call(6, "n", default).Response));
        Assert.Equal(499500, Bytes.Int64(h.Call(7, "f.x", default).Response));
        Assert.NotSame(before, h.Host.Resolve(3, "n"));
        Assert.Equal(0, h.Host.Pack());

        // A pack unloads when its last member leaves.
        foreach (var t in new[] { 0, 1, 2, 3, 4, 5, 6 })
        {
            Assert.True(h.Host.Uninstall((ulong)t, "n"));
        }
        Assert.Equal((1, 1, 0), h.Host.PackCounts);
        Assert.True(h.Host.Uninstall(7, "f"));
        Assert.Equal((0, 0, 0), h.Host.PackCounts);
    }

    [Fact]
    public void APackMember_ThatNamesAnotherMembersNamespace_IsLeftOut()
    {
        var victim = Tenant(1);
        var victimHash = ContentHash.Of(victim);
        var thief = $$"""
            using Hybrid.Extensions.Abstractions;
            public static class Thief
            {
                [Extension]
                public static ExtensionTask Run(ExtensionContext ctx) { ctx.WriteInt64({{ModuleLoader.PackNamespace(victimHash)}}.Mine.Helper.Value()); return ExtensionTask.CompletedTask; }
            }
            """;
        // The thief's own install fails (the name does not exist alone) ...
        using var h = new Harness();
        Assert.False(h.Host.Install(2, "t", thief).Success);
        // ... and fed to the pack compiler directly, the pack rule leaves it out.
        var thiefHash = ContentHash.Of(thief);
        var (pack, left) = ExtensionCompiler.CompilePack([(victimHash, "v", victim), (thiefHash, "t", thief)]);
        Assert.NotNull(pack);
        Assert.Equal([victimHash], pack.Members);
        Assert.Equal([thiefHash], left);
    }

    [Fact]
    public void ASourceThatCannotBeWrapped_StaysStandalone_AndWorks()
    {
        const string globalUsing = """
            global using Hybrid.Extensions.Abstractions;
            public static class G
            {
                [Extension]
                public static ExtensionTask Run(ExtensionContext ctx) { ctx.WriteInt64(42); return ExtensionTask.CompletedTask; }
            }
            """;
        using var h = new Harness();
        h.InstallOk(1, "g", globalUsing);
        h.InstallOk(2, "n", Tenant(2));
        h.InstallOk(3, "n", Tenant(3));
        Assert.Equal(2, h.Host.Pack());
        Assert.Equal((1, 2, 1), h.Host.PackCounts);
        Assert.Equal(42, Bytes.Int64(h.Call(1, "g", default).Response));
        Assert.Equal(0, h.Host.Pack());
    }

    [Fact]
    public void Restart_LoadsPacks_WithoutCompiling_AndSkipsUninstalledMembers()
    {
        var options = new ExtensionHostOptions { Directory = _dir, ExtensionsPerPack = 10 };
        using (var first = new Harness(options))
        {
            for (var i = 0; i < 4; i++)
            {
                first.InstallOk((ulong)i, "n", Tenant(i));
            }
            first.InstallOk(9, "agg", ExtensionExamples.Source("aggregate"));
            Assert.Equal(5, first.Host.Pack());
            Assert.True(first.Host.Uninstall(0, "n"));
            first.InstallOk(8, "late", Tenant(8));            // installed after the pack: standalone
            first.InstallOk(7, "late", Tenant(7));
        }
        using var second = new Harness(options);
        Assert.Equal((1, 4, 2), second.Host.PackCounts);
        Assert.Null(second.Host.Resolve(0, "n"));
        Assert.Equal(3, Bytes.Int64(second.Call(3, "n", default).Response));
        Assert.Equal(8, Bytes.Int64(second.Call(8, "late", default).Response));
        second.Store.Put(9, 3, BitConverter.GetBytes(5UL), Bytes.Of(11L));
        Assert.Equal(11, Bytes.Int64(second.Call(9, "agg", Bytes.Of(3u, 0UL, 10u, 0)).Response));
        Assert.Equal(2, second.Host.Pack());                  // the late ones pack from their persisted sources
        Assert.Equal((2, 6, 0), second.Host.PackCounts);
        Assert.Equal(7, Bytes.Int64(second.Call(7, "late", default).Response));
    }

    [Fact]
    public void BackgroundPacker_PacksAFullBatch_WhileInstallsGoOn()
    {
        using var host = new ExtensionHost(new ExtensionHostOptions { ExtensionsPerPack = 3, PackIdleDelay = TimeSpan.FromMinutes(5) }, startWatchdog: false);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(host.Install((ulong)i, "n", Tenant(i)).Success);
        }
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (host.PackCounts.Packs == 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
        }
        Assert.Equal((1, 3, 0), host.PackCounts);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
