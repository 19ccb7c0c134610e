using Hybrid.Node.Cluster;

namespace Hybrid.Cluster.Tests;

/// <summary>The peer port's migrate control request refuses what it does not understand, and starts nothing then.</summary>
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
}
