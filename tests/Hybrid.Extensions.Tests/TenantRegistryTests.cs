using System.Text;
using Hybrid.Node.Tenants;

namespace Hybrid.Extensions.Tests;

/// <summary>The node's tenant registry: an append-only log that survives restarts, torn tails and the legacy file.</summary>
public sealed class TenantRegistryTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hybrid-tenants-" + Guid.NewGuid().ToString("N"));

    private string LogPath => Path.Combine(_dir, TenantRegistry.FileName);

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void TheLog_HoldingSecrets_IsReadableByItsOwnerOnly_EvenOneWrittenBeforeThatRule()
    {
        const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        TenantRegistry.Open(_dir).Create("a", [1, 2]);
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(LogPath));
        File.SetUnixFileMode(LogPath, OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead); // as an older build left it
        Assert.True(TenantRegistry.Open(_dir).TryGet("a", out _));
        Assert.Equal(OwnerOnly, File.GetUnixFileMode(LogPath));
    }

    [Fact]
    public void Creates_AndQuotaChanges_SurviveReopen_WithTheNextIdNeverReused()
    {
        var r = TenantRegistry.Open(_dir);
        var a = r.Create("a", [1, 2]);
        var b = r.Create("b", [], maxBytes: 10);
        r.SetQuotas("a", 100, 7);
        Assert.Throws<InvalidOperationException>(() => r.Create("a", []));

        var again = TenantRegistry.Open(_dir);
        Assert.Equal(2, again.All.Count);
        Assert.True(again.TryGet("a", out var a2));
        Assert.Equal((a.Id, 100L, 7L), (a2.Id, a2.MaxBytes, a2.MaxOpsPerSecond));
        Assert.Equal([1, 2], a2.Secret);
        Assert.True(again.TryGet(Encoding.UTF8.GetBytes("b"), out var b2));
        Assert.Equal((b.Id, 10L), (b2.Id, b2.MaxBytes));
        Assert.True(again.TryGet(b.Id, out _));
        Assert.Equal(b.Id + 1, again.Create("c", []).Id);
    }

    [Fact]
    public void Apply_KeepsTheGivenId_Durably_IsIdempotent_AndRefusesAnIdOrNameThatIsAnotherTenants()
    {
        var r = TenantRegistry.Open(_dir);
        r.Create("default", []);
        Assert.True(r.Apply(new TenantInfo(7, "alice", [1], 10, 20)));
        Assert.False(r.Apply(new TenantInfo(7, "alice", [1], 10, 20)));     // the same record: nothing appended
        Assert.True(r.Apply(new TenantInfo(7, "alice", [1], 11, 20)));      // a quota change
        Assert.Equal(3, File.ReadAllLines(LogPath).Length);
        var byId = Assert.Throws<InvalidOperationException>(() => r.Apply(new TenantInfo(7, "bob", [2], 0, 0)));
        Assert.Contains("tenant id 7 is 'alice' here, not 'bob'", byId.Message, StringComparison.Ordinal);
        var byName = Assert.Throws<InvalidOperationException>(() => r.Apply(new TenantInfo(8, "alice", [1], 0, 0)));
        Assert.Contains("tenant 'alice' has id 7 here, not 8", byName.Message, StringComparison.Ordinal);

        var again = TenantRegistry.Open(_dir);
        Assert.True(again.TryGet("alice", out var alice));
        Assert.Equal((7u, 11L, 20L), (alice.Id, alice.MaxBytes, alice.MaxOpsPerSecond));
        Assert.Equal(8u, again.Create("carol", [3]).Id);   // a local create never takes an applied id
    }

    [Fact]
    public void ApplyAll_IsAllOrNothing_AndWritesOnlyWhatChanged()
    {
        var r = TenantRegistry.Open(_dir);
        TenantInfo[] cluster = [.. Enumerable.Range(2, 500).Select(i => new TenantInfo((uint)i, "t" + i, [(byte)i], 0, 0))];
        Assert.Equal(500, r.ApplyAll(cluster));
        Assert.Equal(0, r.ApplyAll(cluster));
        Assert.Equal(500, File.ReadAllLines(LogPath).Length);

        // One refused record (its name is t2's, under another id) leaves everything as it was, the good ones included.
        TenantInfo[] mixed = [new TenantInfo(600, "t600", [1], 0, 0), new TenantInfo(601, "t2", [1], 0, 0)];
        Assert.Throws<InvalidOperationException>(() => r.ApplyAll(mixed));
        Assert.False(r.TryGet("t600", out _));
        Assert.Equal(500, File.ReadAllLines(LogPath).Length);
        // So does a batch that contradicts itself.
        Assert.Throws<InvalidOperationException>(() => r.ApplyAll([new TenantInfo(700, "x", [1], 0, 0), new TenantInfo(700, "y", [1], 0, 0)]));
        Assert.False(r.TryGet("x", out _));

        Assert.Equal(1, r.ApplyAll([cluster[0] with { MaxBytes = 5 }, cluster[1]]));
        Assert.Equal(500, TenantRegistry.Open(_dir).All.Count);
    }

    [Fact]
    public void ATornLastLine_IsDropped_AndLaterAppendsAreReadBack()
    {
        var r = TenantRegistry.Open(_dir);
        r.Create("a", []);
        File.AppendAllText(LogPath, "{\"Id\":2,\"Name\":\"tor");   // a crash in the middle of an append

        var reopened = TenantRegistry.Open(_dir);
        Assert.Single(reopened.All);
        Assert.False(reopened.TryGet("tor", out _));
        var c = reopened.Create("c", []);
        Assert.Equal(2u, c.Id);

        var third = TenantRegistry.Open(_dir);
        Assert.Equal(["a", "c"], third.All.Select(t => t.Name).Order().ToArray());
    }

    [Fact]
    public void ManyQuotaChanges_AreCompactedAtOpen_ToOneLinePerTenant()
    {
        var r = TenantRegistry.Open(_dir);
        r.Create("a", []);
        for (int i = 0; i < 100; i++)
            r.SetQuotas("a", i, i);
        Assert.Equal(101, File.ReadAllLines(LogPath).Length);

        var reopened = TenantRegistry.Open(_dir);
        Assert.Single(File.ReadAllLines(LogPath));
        Assert.True(reopened.TryGet("a", out var a));
        Assert.Equal(99, a.MaxBytes);
    }

    [Fact]
    public void TheLegacyJsonFile_IsImportedOnce()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, TenantRegistry.LegacyFileName),
            """[{"Id":3,"Name":"old","Secret":"AQ==","MaxBytes":5,"MaxOpsPerSecond":6}]""");
        var r = TenantRegistry.Open(_dir);
        Assert.True(r.TryGet("old", out var old));
        Assert.Equal((3u, 5L, 6L), (old.Id, old.MaxBytes, old.MaxOpsPerSecond));
        Assert.False(File.Exists(Path.Combine(_dir, TenantRegistry.LegacyFileName)));
        Assert.Equal(4u, r.Create("new", []).Id);
        Assert.Equal(2, TenantRegistry.Open(_dir).All.Count);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
            Directory.Delete(_dir, recursive: true);
    }
}
