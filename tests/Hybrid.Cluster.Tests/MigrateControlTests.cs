using System.Text;
using Hybrid.Client;
using Hybrid.Node.Cluster;
using Hybrid.Protocol;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// The peer port's migrate control request: it refuses what it does not understand (and starts nothing then), and it
/// moves many ranges at once.
/// </summary>
public sealed class MigrateControlTests
{
    [Fact]
    public async Task An_unknown_pull_rate_is_refused_by_name_and_no_migration_starts()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(2);
        await cluster.StartNodeAsync("n1");
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        string range = cluster.Metadata.Ranges.Keys.First();
        using var peer = new NetworkPeer(n2.Member.PeerEndPoint, await cluster.Metadata.PeerKeyAsync());

        var refused = await Assert.ThrowsAsync<PeerException>(() => peer.ControlAsync($$"""{"op":"migrate","ranges":["{{range}}"],"pullRate":"fast"}"""));
        Assert.Contains("pullRate must be \"adaptive\" or \"max\", not \"fast\"", refused.Message);
        Assert.Equal("", cluster.Metadata.Current.Phase(range));
        Assert.Null(n2.Member.Status.Started);

        // The same request with a known rate does start: the refusal was about the rate, nothing else.
        await peer.ControlAsync($$"""{"op":"migrate","ranges":["{{range}}"],"pullRate":"max"}""");
        Assert.NotNull(n2.Member.Status.Started);
    }

    [Fact]
    public async Task Eight_runs_of_ranges_that_are_not_contiguous_move_in_one_migrate()
    {
        // Every run's pull job opened a session per partition and one for its priority pulls, all at once: with eight
        // runs the target ran out ("more than MaxSessions (18) sessions open", found by an exploratory run), and the
        // ranges stayed Pulling. Now the partitions of all jobs take turns (MigrationTarget.MaxPartitionStreams).
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(16);
        await cluster.StartNodeAsync("n1");
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2");
        string[] odd = [.. cluster.Metadata.Ranges.Keys.Where((_, i) => i % 2 == 0)];
        await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(cluster.Metadata.Typed));
        var written = new List<byte[]>();
        for (int i = 0; written.Count < 4_000; i++)
        {
            byte[] key = Encoding.UTF8.GetBytes("k" + i);
            if (!odd.Any(r => cluster.Metadata.Ranges[r].ContainsKey(key)))
                continue;
            Assert.Equal(Status.Ok, (await client.PutAsync(1, key, new byte[1000])).Status);
            written.Add(key);
        }

        await n2.Member.MigrateHereAsync(odd).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Null(n2.Member.Status.Error);
        Assert.All(odd, r => Assert.Equal(("n2", ""), (cluster.Metadata.Current.Owner(r), cluster.Metadata.Current.Phase(r))));
        foreach (byte[] key in written)
            Assert.Equal(1000, (await client.GetAsync(1, key)).Value?.Length);
    }
}
