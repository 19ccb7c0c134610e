using System.Text;
using Hybrid.Client;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A cluster's tenants live in its metadata with cluster-wide ids, and every node serves exactly those. Before, each
/// node numbered its own tenants, and a migration handed one tenant's records to whichever tenant had the same id at the
/// target (seen with alice = 2 at n1 and bob = 2 at n2: after the move bob read alice's value and alice found nothing).
/// </summary>
public sealed class ClusterTenantTests
{
    private static readonly byte[] s_alice = "alice's secret"u8.ToArray();
    private static readonly byte[] s_bob = "bob's secret"u8.ToArray();

    [Fact]
    public async Task Ids_are_distinct_from_2_when_several_store_instances_create_at_once_and_names_are_checked()
    {
        using var dir = new TempDirectory();
        var stores = Enumerable.Range(0, 4).Select(_ => new FileMetadataStore(dir.Path)).ToArray();
        try
        {
            TenantInfo[] created = await Task.WhenAll(Enumerable.Range(0, 24).Select(i =>
                Task.Run(() => new ClusterTenants(stores[i % 4]).CreateAsync("t" + i, [(byte)i]))));
            Assert.Equal(Enumerable.Range(2, 24).Select(i => (uint)i), created.Select(t => t.Id).Order());

            var tenants = new ClusterTenants(stores[0]);
            var twice = await Assert.ThrowsAsync<InvalidOperationException>(() => tenants.CreateAsync("t3", [1]));
            Assert.Equal("tenant 't3' exists", twice.Message);
            await Assert.ThrowsAsync<InvalidOperationException>(() => tenants.CreateAsync(TenantInfo.DefaultName, [1]));
            var noSecret = await Assert.ThrowsAsync<ArgumentException>(() => tenants.CreateAsync("open", []));
            Assert.Contains("needs a secret", noSecret.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<ArgumentException>(() => tenants.CreateAsync("a/b", [1]));

            TenantInfo changed = await tenants.SetQuotasAsync("t5", 1000, 50);
            // Other keys change after the tenants: the revision to follow from is the store's, not the newest tenant's
            // (which the store may have dropped from its history by then, so a watch from it could never start).
            CasResult unrelated = default!;
            for (int i = 0; i < 20; i++)
                unrelated = await stores[2].CompareAndSwapAsync("/hybrid/elsewhere", MetadataRevision.Any, new byte[] { (byte)i });
            (IReadOnlyList<TenantInfo> listed, long revision) = await new ClusterTenants(stores[3]).ListAsync();
            Assert.Equal(24, listed.Count);
            Assert.Equal(unrelated.Revision, revision);
            TenantInfo t5 = listed.Single(t => t.Name == "t5");
            Assert.Equal((changed.Id, 1000L, 50L, (byte)5), (t5.Id, t5.MaxBytes, t5.MaxOpsPerSecond, t5.Secret[0]));
            await Assert.ThrowsAsync<KeyNotFoundException>(() => tenants.SetQuotasAsync("nobody", 1, 1));
        }
        finally
        {
            foreach (var store in stores)
                await store.DisposeAsync();
        }
    }

    [Fact]
    public async Task Tenants_created_while_nodes_run_reach_every_node_and_keep_their_own_records_through_a_migration()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1");
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        var tenants = new ClusterTenants(cluster.OpenStore());
        TenantInfo alice = await tenants.CreateAsync("alice", s_alice);
        TenantInfo bob = await tenants.CreateAsync("bob", s_bob);
        await WaitUntilAsync(() => Knows(n1, alice) && Knows(n2, alice) && Knows(n1, bob) && Knows(n2, bob), "both nodes adopt both tenants");

        var routes = new ClusterRoutingSource(cluster.Metadata.Typed);
        ClusterClient asAlice = cluster.Own(await ClusterClient.ConnectAsync(routes, new HybridClientOptions { Tenant = "alice", Secret = s_alice }));
        ClusterClient asBob = cluster.Own(await ClusterClient.ConnectAsync(routes, new HybridClientOptions { Tenant = "bob", Secret = s_bob }));
        byte[] key = Encoding.UTF8.GetBytes("{account}.balance");
        Assert.Equal(Status.Ok, (await asAlice.PutAsync(0, key, "alice-private"u8.ToArray())).Status);
        Assert.Equal(Status.NotFound, (await asBob.GetAsync(0, key)).Status);

        // A wrong secret is retried like a node in handover, then fails naming why.
        ClusterClient impostor = cluster.Own(await ClusterClient.ConnectAsync(routes, new HybridClientOptions { Tenant = "alice", Secret = s_bob }));
        impostor.RetryFor = TimeSpan.FromSeconds(1);
        var refused = await Assert.ThrowsAsync<HybridConnectionException>(() => impostor.GetAsync(0, key));
        Assert.Contains("no owner accepted the request", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Unauthorized", refused.Message, StringComparison.Ordinal);

        string range = cluster.Metadata.Ranges.First(r => r.Value.ContainsKey(key)).Key;
        await n2.Member.MigrateHereAsync([range]);
        Assert.Null(n2.Member.Status.Error);

        GetResult atTarget = await asAlice.GetAsync(0, key);
        Assert.Equal((Status.Ok, "alice-private"), (atTarget.Status, Encoding.UTF8.GetString(atTarget.Value ?? [])));
        Assert.Equal(Status.NotFound, (await asBob.GetAsync(0, key)).Status);

        TenantInfo limited = await tenants.SetQuotasAsync("bob", maxBytes: 4096, extensionCores: 0.25);
        await WaitUntilAsync(() => n1.Member.Node.Tenants.TryGet("bob", out var b1) && b1.MaxBytes == 4096
            && n2.Member.Node.Tenants.TryGet("bob", out var b2) && b2.MaxBytes == 4096, "both nodes adopt bob's new quota");
        Assert.Equal((bob.Id, 0L, 0.25), (limited.Id, limited.MaxOpsPerSecond, limited.ExtensionCores));
        Assert.Equal(0.25, Hybrid.Node.Extensions.NodeExtensions.Of(n2.Member.Node).CpuQuota(bob.Id));
    }

    [Fact]
    public async Task A_node_whose_data_directory_has_tenants_the_cluster_does_not_refuses_to_start_and_says_which()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        var tenants = new ClusterTenants(cluster.OpenStore());
        await tenants.CreateAsync("zed", [9]);     // id 2
        await tenants.CreateAsync("alice", s_alice);  // id 3
        // The old way: tenants created in each node's own directory, numbered by that node.
        var local = TenantRegistry.Open(cluster.DataDirectoryOf("n2"));
        local.Create(TenantInfo.DefaultName, []);
        local.Create("alice", s_alice);   // id 2 here
        local.Create("mallory", [7]);     // id 3 here

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => cluster.StartNodeAsync("n2"));
        Assert.Contains("id 2 is 'alice' here but 'zed' in the cluster", refused.Message, StringComparison.Ordinal);
        Assert.Contains("'alice' has id 2 here but 3 in the cluster", refused.Message, StringComparison.Ordinal);
        Assert.Contains("id 3 is 'mallory' here but 'alice' in the cluster", refused.Message, StringComparison.Ordinal);
        Assert.Contains("hybrid tenant create NAME --metadata", refused.Message, StringComparison.Ordinal);
        // Nothing of the cluster's was written into the refused node's directory.
        Assert.Equal(3, TenantRegistry.Open(cluster.DataDirectoryOf("n2")).All.Count);

        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1");
        Assert.True(n1.Member.Node.Tenants.TryGet("alice", out var alice));
        Assert.Equal(3u, alice.Id);
        Assert.True(n1.Member.Node.Tenants.TryGet(TenantInfo.DefaultName, out var open));
        Assert.Equal(ClusterTenants.DefaultId, open.Id);
    }

    private static bool Knows(ClusterNodeHost node, TenantInfo tenant) =>
        node.Member.Node.Tenants.TryGet(tenant.Name, out var t) && t.Id == tenant.Id;

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting until " + what);
            await Task.Delay(20);
        }
    }
}
