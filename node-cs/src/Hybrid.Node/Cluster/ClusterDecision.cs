using Hybrid.Core.Interop;

namespace Hybrid.Node.Cluster;

/// <summary>
/// One request to the F# core as data: which <see cref="ClusterCore"/> method, with which arguments. A durable
/// <see cref="IClusterMetadata"/> stores the accepted decisions in order and rebuilds the core's state by replaying
/// them from the cluster's initial configuration, so the state is exactly what the core decided, with no second
/// encoding of the protocol state on the C# side.
/// </summary>
/// <param name="Kind">The <see cref="ClusterCore"/> method, named as the model's action and its trace event:
/// BeginMigration, Prepare, TransferOwnership, FinishPulls, Checkpoint, DropSource, RemoveLineage, Crash, Recover,
/// CoreRefresh. Logs written before these names matched the model's use CheckpointCovered, NodeCrashed,
/// NodeRecovered and CoreRefreshed for four of them, which are read as the same decisions; a build before the change
/// cannot read a log written after it (run one build on every node and the CLI, as the peer protocol asks).</param>
/// <param name="Range">The range, for range decisions.</param>
/// <param name="Node">The node (target of BeginMigration; the node of Checkpoint, Crash, Recover, CoreRefresh).</param>
/// <param name="Core">The core of CoreRefresh.</param>
/// <param name="Number">The source floor of Prepare or the view of CoreRefresh.</param>
/// <param name="By">The node whose coordinator made the decision (null in logs written before it was recorded): a node
/// that restarts finds in the log the decisions it published but was killed before tracing (<c>TraceRepair</c>).
/// Not an input of the core.</param>
public sealed record ClusterDecision(string Kind, string? Range = null, string? Node = null, string? Core = null, int Number = 0, string? By = null)
{
    /// <summary>Asks <paramref name="core"/> for this decision.</summary>
    public DecisionResult ApplyTo(ClusterCore core) => Kind switch
    {
        nameof(ClusterCore.BeginMigration) => core.BeginMigration(Range!, Node!),
        nameof(ClusterCore.Prepare) => core.Prepare(Range!, Number),
        nameof(ClusterCore.TransferOwnership) => core.TransferOwnership(Range!),
        nameof(ClusterCore.FinishPulls) => core.FinishPulls(Range!),
        nameof(ClusterCore.Checkpoint) or "CheckpointCovered" => core.Checkpoint(Node!),
        nameof(ClusterCore.DropSource) => core.DropSource(Range!),
        nameof(ClusterCore.RemoveLineage) => core.RemoveLineage(Range!),
        nameof(ClusterCore.Crash) or "NodeCrashed" => core.Crash(Node!),
        nameof(ClusterCore.Recover) or "NodeRecovered" => core.Recover(Node!),
        nameof(ClusterCore.CoreRefresh) or "CoreRefreshed" => core.CoreRefresh(Node!, Core!, Number),
        _ => throw new ArgumentException("unknown decision " + Kind),
    };

    /// <summary><c>BeginMigration(range, target)</c>.</summary>
    public static ClusterDecision BeginMigration(string range, string target) => new(nameof(ClusterCore.BeginMigration), range, target);

    /// <summary><c>Prepare(range)</c> with the source's floor.</summary>
    public static ClusterDecision Prepare(string range, int sourceFloor) => new(nameof(ClusterCore.Prepare), range, Number: sourceFloor);

    /// <summary><c>TransferOwnership(range)</c>.</summary>
    public static ClusterDecision TransferOwnership(string range) => new(nameof(ClusterCore.TransferOwnership), range);

    /// <summary><c>FinishPulls(range)</c>.</summary>
    public static ClusterDecision FinishPulls(string range) => new(nameof(ClusterCore.FinishPulls), range);

    /// <summary><c>Checkpoint(node)</c>: its checkpoint covers its memory.</summary>
    public static ClusterDecision Checkpoint(string node) => new(nameof(ClusterCore.Checkpoint), Node: node);

    /// <summary><c>DropSource(range)</c>.</summary>
    public static ClusterDecision DropSource(string range) => new(nameof(ClusterCore.DropSource), range);

    /// <summary><c>RemoveLineage(range)</c>.</summary>
    public static ClusterDecision RemoveLineage(string range) => new(nameof(ClusterCore.RemoveLineage), range);

    /// <summary><c>Crash(node)</c>: the node was found dead.</summary>
    public static ClusterDecision Crash(string node) => new(nameof(ClusterCore.Crash), Node: node);

    /// <summary><c>Recover(node)</c>: the node runs again.</summary>
    public static ClusterDecision Recover(string node) => new(nameof(ClusterCore.Recover), Node: node);

    /// <summary><c>CoreRefresh(node, core)</c> into <paramref name="view"/>.</summary>
    public static ClusterDecision CoreRefresh(string node, string core, int view) => new(nameof(ClusterCore.CoreRefresh), Node: node, Core: core, Number: view);
}
