using System.Collections.Immutable;
using System.Net;
using Hybrid.Client;

namespace Hybrid.Cluster;

/// <summary>
/// The routing a <see cref="ClusterClient"/> follows, read from the metadata: ranges, owners, views and histories
/// from the state document, endpoints from the live node registrations.
/// </summary>
public sealed class ClusterRoutingSource(ClusterMetadata metadata) : IClusterRoutingSource
{
    /// <inheritdoc />
    public async Task<ClusterRouting> LoadAsync(CancellationToken cancellationToken = default)
    {
        VersionedClusterState state = await metadata.ReadAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException("the cluster has no state yet");
        IReadOnlyList<NodeInfo> nodes = await metadata.ListLiveNodesAsync(cancellationToken).ConfigureAwait(false);
        return Of(state.State, nodes);
    }

    /// <summary>The routing of <paramref name="state"/> with the endpoints of <paramref name="nodes"/>.</summary>
    public static ClusterRouting Of(ClusterState state, IEnumerable<NodeInfo> nodes) => new(
        state.Ranges.ToImmutableSortedDictionary(r => r.Key, r => (r.Value.First, r.Value.Last)),
        state.Owner,
        state.View,
        state.Hist.ToImmutableSortedDictionary(h => h.Key, h => (IReadOnlyList<IReadOnlySet<string>>)h.Value.Select(s => (IReadOnlySet<string>)s).ToList()),
        nodes.ToImmutableSortedDictionary(n => n.Id, n => (EndPoint)IPEndPoint.Parse(n.Endpoint)));
}
