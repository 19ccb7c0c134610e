namespace Hybrid.Extensions.Tests;

/// <summary>Packed load contexts, batch unloads and persistence across a restart.</summary>
public sealed class LoadingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hybrid-ext-" + Guid.NewGuid().ToString("N"));

    private static string Numbered(int i) => $$"""
        using Hybrid.Extensions.Abstractions;
        public static class N
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx) { ctx.WriteInt64({{i}}); return ExtensionTask.CompletedTask; }
        }
        """;

    [Fact]
    public void ManyExtensions_ArePackedIntoFewContexts_AndAFullContextUnloadsWhenItsLastExtensionGoes()
    {
        using var h = new Harness(new ExtensionHostOptions { ExtensionsPerLoadContext = 3 });
        for (var i = 0; i < 7; i++)
        {
            h.InstallOk((ulong)i, "n", Numbered(i));
        }
        Assert.Equal((3, 7, 7), h.Host.Counts);
        Assert.Equal(5, Bytes.Int64(h.Call(5, "n", default).Response));
        Assert.True(h.Host.Uninstall(0, "n"));
        Assert.True(h.Host.Uninstall(1, "n"));
        Assert.Equal(3, h.Host.Counts.LoadContexts);
        Assert.True(h.Host.Uninstall(2, "n"));
        Assert.Equal((2, 4, 4), h.Host.Counts);
        Assert.Equal(6, Bytes.Int64(h.Call(6, "n", default).Response));
    }

    [Fact]
    public void Restart_ReloadsPersistedExtensions_WithoutRecompiling()
    {
        var options = new ExtensionHostOptions { Directory = _dir };
        using (var first = new Harness(options))
        {
            first.InstallOk(1, "aggregate", ExtensionExamples.Source("aggregate"));
            first.InstallOk(2, "n", Numbered(2));
            first.InstallOk(3, "gone", Numbered(3));
            Assert.True(first.Host.Uninstall(3, "gone"));
        }
        using var second = new Harness(options);
        Assert.Equal((1, 2, 4), second.Host.Counts); // aggregate has three entries
        Assert.Equal(2, Bytes.Int64(second.Call(2, "n", default).Response));
        Assert.Null(second.Host.Resolve(3, "gone"));
        second.Store.Put(1, 3, BitConverter.GetBytes(5UL), Bytes.Of(11L));
        Assert.Equal(11, Bytes.Int64(second.Call(1, "aggregate", Bytes.Of(3u, 0UL, 10u, 0)).Response));
        var again = second.Host.Install(4, "n", Numbered(2));
        Assert.True(again.Success);
        Assert.False(again.Compiled);
    }

    [Fact]
    public void Restart_SkipsATamperedImage()
    {
        var options = new ExtensionHostOptions { Directory = _dir };
        using (var first = new Harness(options))
        {
            first.InstallOk(1, "n", Numbered(1));
        }
        var image = Directory.GetFiles(Path.Combine(_dir, "modules"), "*.dll").Single();
        var bytes = File.ReadAllBytes(image);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(image, bytes);
        using var second = new Harness(options);
        Assert.Null(second.Host.Resolve(1, "n"));
    }

    [Fact]
    public void Restart_CompilesAgain_AnInstallMadeByAnOlderPipeline()
    {
        // An older pipeline's install: its content hash carries another pipeline version (as every install before
        // hybrid-ext-2 does), so its image may lack a later protection (hybrid-ext-2 skips finally blocks once stopped).
        var options = new ExtensionHostOptions { Directory = _dir };
        using (var first = new Harness(options))
        {
            first.InstallOk(1, "n", Numbered(1));
        }
        string current = ContentHash.Of(Numbered(1));
        string older = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("hybrid-ext-1\n" + Numbered(1))));
        string modules = Path.Combine(_dir, "modules");
        File.Move(Path.Combine(modules, current + ".dll"), Path.Combine(modules, older + ".dll"));
        File.Move(Path.Combine(modules, current + ".cs"), Path.Combine(modules, older + ".cs"));
        string catalog = Path.Combine(_dir, "catalog.log");
        File.WriteAllText(catalog, File.ReadAllText(catalog).Replace(current, older, StringComparison.Ordinal));
        File.Delete(Path.Combine(_dir, "pipeline")); // an older version wrote no pipeline marker

        using var second = new Harness(options);
        Assert.True(second.Host.IsInstalled(1, "n", Numbered(1)), "the install was loaded from the older pipeline's image");
        Assert.True(File.Exists(Path.Combine(modules, current + ".dll")), "the source was not compiled again");
        Assert.Equal(1, Bytes.Int64(second.Call(1, "n", default).Response));
        Assert.Contains(current, File.ReadAllText(catalog), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
