using Hybrid.Core.Interop;

namespace Hybrid.Node.Cluster;

/// <summary>
/// Where the cluster's decision state lives (ownership, views, migration phases, lineage). The node only reads the
/// newest <see cref="ClusterCore"/> and replaces it by compare-and-swap with the one a decision returned, so two
/// deciders never lose each other's step. A durable store (Hybrid.Cluster's etcd-backed metadata) implements this
/// by a transaction on the serialized state; <see cref="InMemoryClusterMetadata"/> is the single-process one.
/// </summary>
public interface IClusterMetadata
{
    /// <summary>The newest decision state.</summary>
    ClusterCore Current { get; }

    /// <summary>
    /// Installs <paramref name="next"/>, the core's answer to <paramref name="decisions"/> applied one after the other
    /// from state <paramref name="expected"/>, if the state is still <paramref name="expected"/>; false when another
    /// decision won (then <see cref="Current"/> is the newer state to decide against). All of them or none become
    /// durable, in one write: the core still decided each one, so any prefix a crash could have left with separate
    /// writes is as valid as none or all, and one write per step instead of one per decision is what keeps a
    /// migration of many ranges from spending its time in fsyncs.
    /// </summary>
    bool TryReplace(ClusterCore expected, IReadOnlyList<ClusterDecision> decisions, ClusterCore next);
}

/// <summary>Decision state held in this process only (tests, single-process clusters): lost on restart.</summary>
public sealed class InMemoryClusterMetadata(ClusterCore initial) : IClusterMetadata
{
    private ClusterCore _current = initial;

    /// <inheritdoc />
    public ClusterCore Current => Volatile.Read(ref _current);

    /// <inheritdoc />
    public bool TryReplace(ClusterCore expected, IReadOnlyList<ClusterDecision> decisions, ClusterCore next) =>
        ReferenceEquals(Interlocked.CompareExchange(ref _current, next, expected), expected);
}
