using Hybrid.Core.Interop;

namespace Hybrid.Node.Cluster;

/// <summary>One node taking part in a migration, as the coordinator drives it.</summary>
/// <param name="Name">The node's name in the decision state.</param>
/// <param name="Cores">The decision state's core names; core i is <see cref="Views"/>' core i.</param>
/// <param name="Views">Moves the node's view and observes its cores' views.</param>
public sealed record MigrationNode(string Name, IReadOnlyList<string> Cores, ICoreViews Views);

/// <summary>
/// Drives one range's Rocksteady migration from the F# core's decisions: asks the core for every phase change
/// (BeginMigration, CoreRefresh of each core, Prepare, TransferOwnership, FinishPulls, Checkpoint, DropSource,
/// RemoveLineage), publishes the new state through <see cref="IClusterMetadata"/>, and carries out exactly the
/// effects it returns (BumpView, RaiseFloor, StartPulls, DropRange, EmitTrace). It never decides a phase itself:
/// a refused request is an error, not something to work around.
/// </summary>
public sealed class MigrationCoordinator(IClusterMetadata metadata, MigrationTrace trace, IReadOnlyDictionary<string, SlotRange> ranges)
{
    private readonly Dictionary<string, MigrationNode> _nodes = [];

    /// <summary>How often the coordinator looks at the cores' views while it waits for a cut.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>The pull job of the migration in progress, for the node's read path (a miss waits for its priority pull); null when none.</summary>
    public PullJob? ActivePulls { get; private set; }

    /// <summary>
    /// Moves <paramref name="range"/> from <paramref name="source"/> to <paramref name="target"/>; returns the pull
    /// statistics once the lineage entry is removed. <paramref name="onPullsStarted"/> runs right after the pulls
    /// started (the target now owns the range and serves it; a test writes there from then on).
    /// </summary>
    public async Task<PullStats> MigrateAsync(string range, MigrationNode source, MigrationNode target, MigrationTarget executor,
        IMigrationPeer peer, Action<PullJob>? onPullsStarted = null, CancellationToken cancellationToken = default)
    {
        _nodes[source.Name] = source;
        _nodes[target.Name] = target;
        SlotRange slots = ranges[range];

        Decide(ClusterDecision.BeginMigration(range, target.Name), null);
        await ReportCoresAsync(source, cancellationToken).ConfigureAwait(false);

        ulong sourceFloor = await peer.VersionFloorAsync(cancellationToken).ConfigureAwait(false);
        Decide(ClusterDecision.Prepare(range, (int)Math.Min(sourceFloor, int.MaxValue)), null);

        PullJob? job = null;
        Decide(ClusterDecision.TransferOwnership(range), e =>
        {
            switch (e.Kind)
            {
                // The decision's floor is the model's (an int); the store's own floor is the exact 64-bit one.
                case EffectKind.RaiseFloor when e.Node == target.Name:
                    executor.RaiseFloor(Math.Max(sourceFloor, (ulong)e.Floor));
                    break;
                case EffectKind.StartPulls when e.Range == range:
                    job = executor.StartPulls(range, slots, peer, cancellationToken);
                    break;
            }
        });
        if (job is null)
            throw new InvalidOperationException($"TransferOwnership({range}) did not start pulls");
        ActivePulls = job;
        onPullsStarted?.Invoke(job);
        await ReportCoresAsync(target, cancellationToken).ConfigureAwait(false);

        await job.CompleteAsync().ConfigureAwait(false);
        Decide(ClusterDecision.FinishPulls(range), null);
        ActivePulls = null;

        await executor.Store.CheckpointAsync(cancellationToken).ConfigureAwait(false);
        Decide(ClusterDecision.CheckpointCovered(target.Name), null);

        var drops = new List<string>();
        Decide(ClusterDecision.DropSource(range), e =>
        {
            if (e.Kind == EffectKind.DropRange)
                drops.Add(e.Range);
        });
        foreach (string r in drops)
            await peer.DropAsync(ranges[r], cancellationToken).ConfigureAwait(false);

        Decide(ClusterDecision.RemoveLineage(range), null);
        return job.Stats;
    }

    /// <summary>Waits until each core of <paramref name="node"/> executes in the node's newest view and reports it (<c>CoreRefresh</c>).</summary>
    private async Task ReportCoresAsync(MigrationNode node, CancellationToken cancellationToken)
    {
        int view = metadata.Current.View(node.Name);
        for (int i = 0; i < node.Cores.Count; i++)
        {
            if (metadata.Current.CoreView(node.Name, node.Cores[i]) >= view)
                continue;
            while (node.Views.CoreView(i) < view)
                await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
            int core = i;
            Decide(ClusterDecision.CoreRefreshed(node.Name, node.Cores[core], view), null);
        }
    }

    /// <summary>
    /// Asks the core for one decision against the newest state, publishes it (retrying on a lost race), then performs
    /// its effects: EmitTrace, every effect through <paramref name="perform"/>, and BumpView last, so a node moves
    /// to a view in which it serves a range only after that range's floor is raised and its pulls are registered.
    /// </summary>
    private void Decide(ClusterDecision decision, Action<Effect>? perform)
    {
        while (true)
        {
            ClusterCore current = metadata.Current;
            DecisionResult result = decision.ApplyTo(current);
            if (!result.Accepted)
                throw new InvalidOperationException("the core refused: " + result.Reason);
            if (!metadata.TryReplace(current, decision, result.Core))
                continue;
            foreach (Effect e in result.Effects)
            {
                if (e.Kind == EffectKind.EmitTrace)
                    trace.Line(e.TraceLine);
                perform?.Invoke(e);
            }
            foreach (Effect e in result.Effects)
            {
                if (e.Kind == EffectKind.BumpView && _nodes.TryGetValue(e.Node, out MigrationNode? n))
                    n.Views.Advance(e.View);
            }
            return;
        }
    }
}
