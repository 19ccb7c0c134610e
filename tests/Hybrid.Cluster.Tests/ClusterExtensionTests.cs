using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Extensions;
using Hybrid.Protocol;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Tenant extensions in a cluster: installed through the cluster client on every node, invoked at the owner of a
/// routing key, and still there for that key after its range migrated to another node.
/// </summary>
public sealed class ClusterExtensionTests
{
    /// <summary>One read: the value in table 0 under the key given as arguments, or nothing.</summary>
    private const string GetOne = """
        using Hybrid.Extensions.Abstractions;
        public static class GetOne
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                if (ctx.TryGet(0, ctx.Args, out var value))
                    ctx.Write(value);
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    [Fact]
    public async Task An_extension_installed_through_the_cluster_client_runs_at_the_keys_owner_before_and_after_a_migration()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1");
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        // An install compiles on every node: on a loaded machine that can take longer than the default 10 s reply timeout.
        ClusterClient client = cluster.Own(await ClusterClient.ConnectAsync(new ClusterRoutingSource(cluster.Metadata.Typed), new HybridClientOptions { Timeout = TimeSpan.FromSeconds(90) }));

        IReadOnlyDictionary<string, ExtensionInstallResult> installed = await client.InstallExtensionAsync("get1", GetOne);
        Assert.Equal(["n1", "n2"], installed.Keys.Order());
        Assert.All(installed.Values, r => Assert.True(r.Succeeded, string.Join("\n", r.Errors)));

        byte[] key = Encoding.UTF8.GetBytes("{user7}.name");
        string range = cluster.Metadata.Ranges.First(r => r.Value.ContainsKey(key)).Key;
        Assert.Equal(Status.Ok, (await client.PutAsync(0, key, "ada"u8.ToArray())).Status);
        ExtensionResult before = await client.InvokeAsync("get1", key, key);
        Assert.Equal((Status.Ok, "ada"), (before.Status, Encoding.UTF8.GetString(before.Value)));

        await n2.Member.MigrateHereAsync([range]);
        Assert.Null(n2.Member.Status.Error);
        ExtensionResult after = await client.InvokeAsync("get1", key, key);
        Assert.Equal((Status.Ok, "ada"), (after.Status, Encoding.UTF8.GetString(after.Value)));

        // It ran at n2: n1 no longer holds the record, so the same extension there finds nothing.
        await using HybridSession atN1 = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, n1.Member.Node.NativePort) });
        ExtensionResult atSource = await atN1.InvokeAsync("get1", key);
        Assert.Equal((Status.Ok, 0), (atSource.Status, atSource.Value.Length));
    }

    [Fact]
    public async Task An_extension_installed_at_one_node_reaches_a_node_started_later_and_so_does_its_removal()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1");
        await using HybridSession atN1 = await HybridSession.ConnectAsync(new HybridClientOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, n1.Member.Node.NativePort),
            Timeout = TimeSpan.FromSeconds(90),
        });
        ExtensionInstallResult installed = await atN1.InstallExtensionAsync("get1", GetOne);
        Assert.True(installed.Succeeded, string.Join("\n", installed.Errors));

        // n2 was not running at the install: it installs the catalog's extensions before it registers.
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        Assert.Contains("get1", NodeExtensions.Of(n2.Member.Node).Host.List(ClusterTenants.DefaultId));
        ClusterClient client = cluster.Own(await ClusterClient.ConnectAsync(new ClusterRoutingSource(cluster.Metadata.Typed), new HybridClientOptions { Timeout = TimeSpan.FromSeconds(90) }));
        byte[] key = Encoding.UTF8.GetBytes("{user9}.name");
        Assert.Equal(Status.Ok, (await client.PutAsync(0, key, "grace"u8.ToArray())).Status);
        await n2.Member.MigrateHereAsync([cluster.Metadata.Ranges.First(r => r.Value.ContainsKey(key)).Key]);
        Assert.Null(n2.Member.Status.Error);
        ExtensionResult atTarget = await client.InvokeAsync("get1", key, key);
        Assert.Equal((Status.Ok, "grace"), (atTarget.Status, Encoding.UTF8.GetString(atTarget.Value)));

        // Removed at n1: n2 follows the catalog and removes it too.
        Assert.True(await atN1.UninstallExtensionAsync("get1"));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (NodeExtensions.Of(n2.Member.Node).Host.List(ClusterTenants.DefaultId).Contains("get1"))
        {
            Assert.True(DateTime.UtcNow < deadline, "n2 still has get1 20 s after its removal at n1");
            await Task.Delay(20);
        }
        Assert.Equal(Status.NotFound, (await client.InvokeAsync("get1", key, key)).Status);
    }

    [Fact]
    public async Task An_extension_removed_while_a_node_was_down_is_gone_from_that_node_when_it_comes_back()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1");
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        await using HybridSession atN1 = await HybridSession.ConnectAsync(new HybridClientOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, n1.Member.Node.NativePort),
            Timeout = TimeSpan.FromSeconds(90),
        });
        Assert.True((await atN1.InstallExtensionAsync("get1", GetOne)).Succeeded);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!NodeExtensions.Of(n2.Member.Node).Host.List(ClusterTenants.DefaultId).Contains("get1"))
        {
            Assert.True(DateTime.UtcNow < deadline, "n2 did not install get1 from the catalog");
            await Task.Delay(20);
        }

        await cluster.StopNodeAsync(n2);   // n2 keeps get1 in its own directory
        Assert.True(await atN1.UninstallExtensionAsync("get1"));
        ClusterNodeHost back = await cluster.StartNodeAsync("n2");
        Assert.DoesNotContain("get1", NodeExtensions.Of(back.Member.Node).Host.List(ClusterTenants.DefaultId));
    }

    /// <summary>Records what a follower would install or remove.</summary>
    private sealed class RecordingInstaller : IExtensionInstaller
    {
        public readonly List<(string Name, string? Source, long Revision)> Applied = [];

        public Task<Hybrid.Extensions.InstallResult> ApplyAsync(uint tenant, string name, string? source, long revision)
        {
            lock (Applied)
                Applied.Add((name, source, revision));
            return Task.FromResult(new Hybrid.Extensions.InstallResult(true, [], [], false));
        }

        public int Count
        {
            get
            {
                lock (Applied)
                    return Applied.Count;
            }
        }
    }

    [Fact]
    public async Task A_follower_hands_every_change_on_in_order_with_the_revision_that_wrote_it_and_tombstones_as_removals()
    {
        using var dir = new TempDirectory();
        await using var store = new FileMetadataStore(dir.Path);
        var catalog = new ClusterExtensions(store);
        await store.CompareAndSwapAsync("/hybrid/state", MetadataRevision.Absent, "{}"u8.ToArray()); // as in any cluster: revision 1
        (_, long from) = await catalog.ListAsync();
        CatalogRecord v1 = await catalog.RecordAsync(1, "e", "v1");
        CatalogRecord v2 = await catalog.RecordAsync(1, "e", "v2");
        CatalogRecord same = await catalog.RecordAsync(1, "e", "v2");   // the same content: nothing written
        CatalogRecord x = await catalog.RecordAsync(1, "gone", "x");
        CatalogRecord removed = await catalog.RecordAsync(1, "gone", null);
        Assert.Equal((false, true, true, false, true), (v1.Held, v2.Held, same.Held, x.Held, removed.Held));
        Assert.Equal(v2.Revision, same.Revision);
        await Assert.ThrowsAsync<ArgumentException>(() => catalog.RecordAsync(1, "e", ""));

        using var stop = new CancellationTokenSource();
        var installer = new RecordingInstaller();
        Task following = new ClusterExtensions(store).FollowAsync(installer, from, _ => { }, stop.Token);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (installer.Count < 4)
        {
            Assert.True(DateTime.UtcNow < deadline, "the follower did not see the four changes");
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await following;
        Assert.Equal([("e", "v1", v1.Revision), ("e", "v2", v2.Revision), ("gone", "x", x.Revision), ("gone", null, removed.Revision)], installer.Applied);

        (IReadOnlyList<ClusterExtensions.Entry> listed, _) = await catalog.ListAsync();
        Assert.Equal([new ClusterExtensions.Entry(1, "e", "v2", v2.Revision), new ClusterExtensions.Entry(1, "gone", null, removed.Revision)], listed.OrderBy(e => e.Name));
    }
}
