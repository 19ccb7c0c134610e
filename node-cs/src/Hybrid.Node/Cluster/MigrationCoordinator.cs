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
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Step, double Milliseconds)> _timings = new();
    private long _stepStarted = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>
    /// The node this coordinator runs on: every decision it publishes records it (<see cref="ClusterDecision.By"/>), so
    /// that node, restarted, can trace the ones it published but did not trace. Null: decisions are not attributed.
    /// </summary>
    public string? Decider { get; init; }

    /// <summary>How often the coordinator looks at the cores' views while it waits for a cut.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>How long each step took (a decision: deciding + publishing + its effects; a wait: the wait), oldest first.</summary>
    public IReadOnlyCollection<(string Step, double Milliseconds)> Timings => _timings;

    /// <summary>
    /// The pull jobs of the latest step (one per contiguous run; the copies, in stop-and-copy), for progress reports:
    /// set when they start, kept after they end (while the step checkpoints and drops the source's copy), replaced
    /// by the next step's; empty before any.
    /// </summary>
    public IReadOnlyList<PullJob> ActivePulls { get; private set; } = [];

    /// <summary>
    /// Moves <paramref name="range"/> from <paramref name="source"/> to <paramref name="target"/>; returns the pull
    /// statistics once the lineage entry is removed. <paramref name="onPullsStarted"/> runs right after the pulls
    /// started (the target now owns the range and serves it; a test writes there from then on).
    /// </summary>
    /// <remarks>
    /// <paramref name="stopAndCopy"/> = true is the baseline benchmarks compare against: the whole range is copied
    /// after Prepare (while nobody serves it) and ownership moves only then; the pulls the transfer starts cover only
    /// the log after the copy. The returned statistics are the copy's.
    /// </remarks>
    public async Task<PullStats> MigrateAsync(string range, MigrationNode source, MigrationNode target, MigrationTarget executor,
        IMigrationPeer peer, Action<PullJob>? onPullsStarted = null, CancellationToken cancellationToken = default, bool stopAndCopy = false)
    {
        PullStats stats = await PullRangeAsync(range, source, target, executor, peer, onPullsStarted, null, stopAndCopy, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"{range} was already pulled");
        await FinishAsync(target, executor, [range], _ => peer, cancellationToken).ConfigureAwait(false);
        return stats;
    }

    /// <summary>
    /// Moves several ranges of one source together, so the source's log is scanned once per contiguous run of slots
    /// rather than once per range: BeginMigration of each (the source's view drops them), one cut of the source,
    /// Prepare of each, TransferOwnership of each with the target's view bumps held back until one pull job per
    /// contiguous run is registered (so the target serves them only once reads of missing keys wait for priority
    /// pulls), then FinishPulls of each, one checkpoint, DropSource and RemoveLineage of each. Every range must be
    /// owned by <paramref name="source"/> with no migration in progress. Returns the pull statistics of every job.
    /// </summary>
    public async Task<IReadOnlyList<PullStats>> MigrateRangesAsync(IReadOnlyList<string> rangeNames, MigrationNode source, MigrationNode target,
        MigrationTarget executor, IMigrationPeer peer, Action<PullJob>? onPullsStarted = null, bool stopAndCopy = false, CancellationToken cancellationToken = default)
    {
        ActivePulls = [];
        _nodes[source.Name] = source;
        _nodes[target.Name] = target;
        DecideAll([.. rangeNames.Select(r => ClusterDecision.BeginMigration(r, target.Name))], null);
        // The source's cut is published in the same write as Prepare (and, in Rocksteady, TransferOwnership): one fsync'd
        // write fewer while nobody serves the ranges. Its CoreRefresh decisions still come first and the core checks
        // Prepare against them; the floor is read only after every core of the source adopted the view.
        List<ClusterDecision> cut = await WaitForCoresAsync(source, cancellationToken).ConfigureAwait(false);
        Step("cut " + source.Name);
        ulong sourceFloor = await RetryAsync(() => peer.VersionFloorAsync(cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
        ClusterDecision[] prepares = [.. cut, .. rangeNames.Select(r => ClusterDecision.Prepare(r, ModelFloor(source.Name)))];
        ClusterDecision[] transfers = [.. rangeNames.Select(ClusterDecision.TransferOwnership)];

        List<SlotRange> runs = Runs(rangeNames);
        var copies = new List<PullJob>();
        if (stopAndCopy)
        {
            DecideAll(prepares, null);
            prepares = [];
            foreach (SlotRange run in runs)
                copies.Add(executor.StartPulls(rangeNames[0], run, peer, null, serving: false, cancellationToken));
            ActivePulls = copies;
            foreach (PullJob c in copies)
                await c.CompleteAsync().ConfigureAwait(false);
            Step("copy");
        }

        // Rocksteady: Prepare and TransferOwnership of every range in one write (nothing happens between them).
        int targetView = 0;
        SlotRange[] targetOwned = [];
        DecideAll([.. prepares, .. transfers], e =>
        {
            if (e.Kind == EffectKind.RaiseFloor && e.Node == target.Name)
                executor.RaiseFloor(Math.Max(sourceFloor, (ulong)e.Floor));
            else if (e.Kind == EffectKind.BumpView && e.Node == target.Name)
                (targetView, targetOwned) = (e.View, OwnedOf(e));
        }, holdViewOf: target.Name);
        var jobs = new List<PullJob>();
        for (int i = 0; i < runs.Count; i++)
            jobs.Add(executor.StartPulls(rangeNames[0], runs[i], peer, copies.Count > 0 ? copies[i] : null, serving: true, cancellationToken));
        AdvanceView(target, targetView, targetOwned);
        if (ActivePulls.Count == 0)
            ActivePulls = jobs;
        foreach (PullJob j in jobs)
            onPullsStarted?.Invoke(j);
        await ReportCoresAsync(target, cancellationToken).ConfigureAwait(false);
        Step("cut " + target.Name);

        foreach (PullJob j in jobs)
            await j.CompleteAsync().ConfigureAwait(false);
        Step("pulls");
        // FinishPulls of every range goes into the checkpoint's write (the checkpoint starts after the last pull).
        await FinishCoreAsync(target, executor, rangeNames, rangeNames, _ => peer, cancellationToken).ConfigureAwait(false);
        return copies.Count > 0 ? [.. copies.Select(c => c.Stats)] : [.. jobs.Select(j => j.Stats)];
    }

    /// <summary>
    /// The floor Prepare reports to the decision state: the key-less model's own floor of the source. The decision
    /// state has no writes (they are the store's business), so its floors stay what the model derives; the store's
    /// exact 64-bit floor is what the target raises its own to (RaiseFloor is carried out with the larger of the two).
    /// Reporting the store's floor instead would put the model in a state no behaviour reaches (a floor above every
    /// write it saw), and the trace would not replay.
    /// </summary>
    private int ModelFloor(string source) => metadata.Current.Floor(source);

    /// <summary>The slots of <paramref name="rangeNames"/> as maximal contiguous runs.</summary>
    private List<SlotRange> Runs(IReadOnlyList<string> rangeNames)
    {
        var runs = new List<SlotRange>();
        foreach (SlotRange s in rangeNames.Select(r => ranges[r]).OrderBy(s => s.Lo))
        {
            if (runs.Count > 0 && runs[^1].Hi + 1 == s.Lo)
                runs[^1] = runs[^1] with { Hi = s.Hi };
            else
                runs.Add(s);
        }
        return runs;
    }

    /// <summary>
    /// Carries <paramref name="range"/>'s migration from whatever phase the decision state records up to <c>Pulled</c>
    /// (every record at the target): BeginMigration if none runs, the source's cut and Prepare if Locking,
    /// TransferOwnership (and the copy, in stop-and-copy) if Prepared, then waits for the pulls and decides FinishPulls.
    /// <paramref name="restarted"/> is the pull job a recovery's StartPulls effect started, for a range found Pulling;
    /// without one, a range found Pulling waits for the pull job still registered for it, or, if that one failed, pulls
    /// again (<see cref="MigrationTarget.ResumePulls"/>). Returns null when the range was already past Pulling.
    /// </summary>
    public async Task<PullStats?> PullRangeAsync(string range, MigrationNode source, MigrationNode target, MigrationTarget executor,
        IMigrationPeer peer, Action<PullJob>? onPullsStarted, PullJob? restarted, bool stopAndCopy, CancellationToken cancellationToken)
    {
        ActivePulls = [];
        _nodes[source.Name] = source;
        _nodes[target.Name] = target;
        SlotRange slots = ranges[range];
        string phase = metadata.Current.Phase(range);
        if (phase.Length > 0)
        {
            // Carry on only the migration the decision state records: from its source, to its target.
            ClusterCore moving = metadata.Current;
            if (moving.MigrationTarget(range) != target.Name)
                throw new InvalidOperationException($"{range} is migrating to {moving.MigrationTarget(range)} ({phase}), not to {target.Name}");
            if (moving.MigrationSource(range) != source.Name)
                throw new InvalidOperationException($"{range} is migrating from {moving.MigrationSource(range)} ({phase}), not from {source.Name}");
        }
        else
        {
            // A new migration's source is the range's owner (the decision refuses any other, but only after the cut).
            if (metadata.Current.Owner(range) != source.Name)
                throw new InvalidOperationException($"{range} is owned by {metadata.Current.Owner(range)}, not by {source.Name}");
        }
        if (phase.Length == 0)
        {
            Decide(ClusterDecision.BeginMigration(range, target.Name), null);
            phase = "Locking";
        }
        ulong sourceFloor;
        if (phase == "Locking")
        {
            // The source's view change of BeginMigration again (idempotent): a coordinator that crashed right after
            // publishing BeginMigration never carried it out, and the cut would wait for it forever.
            ClusterCore locking = metadata.Current;
            int sourceView = locking.View(source.Name);
            AdvanceView(source, sourceView, [.. locking.OwnedRanges(source.Name, sourceView).Select(r => ranges[r])]);
            List<ClusterDecision> cut = await WaitForCoresAsync(source, cancellationToken).ConfigureAwait(false);
            Step("cut " + source.Name);
            sourceFloor = await RetryAsync(() => peer.VersionFloorAsync(cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
            DecideAll([.. cut, ClusterDecision.Prepare(range, ModelFloor(source.Name))], null);
            phase = "Prepared";
        }
        else
        {
            sourceFloor = phase == "Prepared" ? await RetryAsync(() => peer.VersionFloorAsync(cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false) : 0;
        }

        PullJob? copy = null, job = restarted;
        if (phase == "Prepared")
        {
            if (stopAndCopy)
            {
                copy = executor.StartPulls(range, slots, peer, null, serving: false, cancellationToken);
                ActivePulls = [copy];
                await copy.CompleteAsync().ConfigureAwait(false);
                Step("copy");
            }
            Decide(ClusterDecision.TransferOwnership(range), e =>
            {
                switch (e.Kind)
                {
                    // The decision's floor is the model's (an int); the store's own floor is the exact 64-bit one.
                    case EffectKind.RaiseFloor when e.Node == target.Name:
                        executor.RaiseFloor(Math.Max(sourceFloor, (ulong)e.Floor));
                        break;
                    case EffectKind.StartPulls when e.Range == range:
                        job = executor.StartPulls(range, slots, peer, copy, serving: true, cancellationToken);
                        break;
                }
            });
            if (job is null)
                throw new InvalidOperationException($"TransferOwnership({range}) did not start pulls");
            if (ActivePulls.Count == 0)
                ActivePulls = [job];
            onPullsStarted?.Invoke(job);
            await ReportCoresAsync(target, cancellationToken).ConfigureAwait(false);
            Step("cut " + target.Name);
            phase = "Pulling";
        }
        if (phase != "Pulling")
            return null;
        if (job is null)
        {
            // Pulling, and the caller holds no pull job (a re-issued migrate after the pull job failed): the StartPulls
            // decision was carried out already; pulling again is node-side mechanics, idempotent (insert-if-newer).
            job = executor.ResumePulls(range, slots, peer, cancellationToken);
        }
        if (ActivePulls.Count == 0)
            ActivePulls = [job];
        await job.CompleteAsync().ConfigureAwait(false);
        Step("pulls");
        Decide(ClusterDecision.FinishPulls(range), null);
        return copy?.Stats ?? job.Stats;
    }

    /// <summary>
    /// Ends the migrations of <paramref name="pulled"/> to <paramref name="target"/> from the phase each is in: one
    /// checkpoint of the target covers every range it pulled (Checkpoint), then for each range the source the
    /// decision names drops it (DropSource, through <paramref name="peerOf"/>) and the lineage entry goes (RemoveLineage).
    /// </summary>
    public Task FinishAsync(MigrationNode target, MigrationTarget executor, IReadOnlyList<string> pulled,
        Func<string, IMigrationPeer> peerOf, CancellationToken cancellationToken) =>
        FinishCoreAsync(target, executor, pulled, [], peerOf, cancellationToken);

    /// <summary>
    /// <see cref="FinishAsync"/>, where the ranges of <paramref name="finishPulls"/> are in <c>Pulling</c> with every
    /// record at the target: their FinishPulls is published in the same write as the Checkpoint that follows, after
    /// the checkpoint (which therefore covers every record they pulled). One write per step, not one per range:
    /// Checkpoint, then every DropSource, the drops, then every RemoveLineage.
    /// </summary>
    private async Task FinishCoreAsync(MigrationNode target, MigrationTarget executor, IReadOnlyList<string> pulled,
        IReadOnlyList<string> finishPulls, Func<string, IMigrationPeer> peerOf, CancellationToken cancellationToken)
    {
        _nodes[target.Name] = target;
        ClusterCore before = metadata.Current;
        if (finishPulls.Count > 0 || pulled.Any(r => before.Phase(r) == "Pulled"))
        {
            await executor.Store.CheckpointAsync(cancellationToken).ConfigureAwait(false);
            Step("checkpoint");
            DecideAll([.. finishPulls.Select(ClusterDecision.FinishPulls), ClusterDecision.Checkpoint(target.Name)], null);
        }
        var drops = new List<(string Node, string Range)>();
        ClusterCore durable = metadata.Current;
        DecideAll([.. pulled.Where(r => durable.Phase(r) == "Durable").Select(ClusterDecision.DropSource)], e =>
        {
            if (e.Kind == EffectKind.DropRange)
                drops.Add((e.Node, e.Range));
        });
        // The drops of one source, one call per contiguous run of slots (each is a scan of the source's log).
        foreach (var bySource in drops.GroupBy(d => d.Node))
        {
            foreach (SlotRange run in Runs([.. bySource.Select(d => d.Range)]))
                await RetryAsync(() => peerOf(bySource.Key).DropAsync(run, cancellationToken).AsTask(), cancellationToken).ConfigureAwait(false);
        }
        Step("drop");
        ClusterCore dropped = metadata.Current;
        DecideAll([.. pulled.Where(r => dropped.Phase(r) == "Dropped").Select(ClusterDecision.RemoveLineage)], null);
    }

    /// <summary>
    /// Asks the core for <paramref name="decision"/> (e.g. a restarted node's <c>Crash</c> and <c>Recover</c>), publishes
    /// it, and hands its effects to <paramref name="perform"/> (BumpView of the nodes this coordinator drives last).
    /// </summary>
    public void Carry(ClusterDecision decision, Action<Effect>? perform) => Decide(decision, perform);

    /// <summary>How long a call to a peer that cannot be reached (crashed, restarting) is retried before the migration fails.</summary>
    public TimeSpan PeerRetryFor { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Runs a call to a peer again while the peer cannot be reached (every call is idempotent: pulls are stateless).</summary>
    internal async Task<T> RetryAsync<T>(Func<Task<T>> call, CancellationToken cancellationToken)
    {
        DateTime deadline = DateTime.UtcNow + PeerRetryFor;
        while (true)
        {
            try
            {
                return await call().ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Moves <paramref name="node"/> to <paramref name="view"/>, again while it cannot be reached: the decision is
    /// published already, so a lost packet on the way to a remote node must not abandon it (AdvanceView is idempotent).
    /// </summary>
    private void AdvanceView(MigrationNode node, int view, IReadOnlyList<SlotRange> owned) =>
        RetryAsync(() =>
        {
            node.Views.Advance(view, owned);
            return Task.FromResult(true);
        }, CancellationToken.None).GetAwaiter().GetResult();

    private void Step(string name)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        _timings.Enqueue((name, System.Diagnostics.Stopwatch.GetElapsedTime(Interlocked.Exchange(ref _stepStarted, now), now).TotalMilliseconds));
    }

    /// <summary>
    /// Waits until each core of <paramref name="node"/> executes in the node's newest view, then reports them all
    /// (<c>CoreRefresh</c> of each core not reported yet) in one metadata write.
    /// </summary>
    private async Task ReportCoresAsync(MigrationNode node, CancellationToken cancellationToken) =>
        DecideAll(await WaitForCoresAsync(node, cancellationToken).ConfigureAwait(false), null);

    /// <summary>
    /// Waits until each core of <paramref name="node"/> executes in the node's newest view; returns the
    /// <c>CoreRefresh</c> decisions of the cores not reported yet, for the caller to publish at the head of its next write.
    /// </summary>
    private async Task<List<ClusterDecision>> WaitForCoresAsync(MigrationNode node, CancellationToken cancellationToken)
    {
        int view = metadata.Current.View(node.Name);
        var refreshed = new List<ClusterDecision>();
        for (int i = 0; i < node.Cores.Count; i++)
        {
            if (metadata.Current.CoreView(node.Name, node.Cores[i]) >= view)
                continue;
            int core = i;
            while (await RetryAsync(() => Task.FromResult(node.Views.CoreView(core)), cancellationToken).ConfigureAwait(false) < view)
                await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
            refreshed.Add(ClusterDecision.CoreRefresh(node.Name, node.Cores[core], view));
        }
        return refreshed;
    }

    /// <summary>
    /// Asks the core for one decision against the newest state, publishes it (retrying on a lost race), then performs
    /// its effects (see <see cref="DecideAll"/>).
    /// </summary>
    private void Decide(ClusterDecision decision, Action<Effect>? perform, string? holdViewOf = null) =>
        DecideAll([decision], perform, holdViewOf);

    /// <summary>
    /// Asks the core for each of <paramref name="decisions"/> in turn (each against the state the previous one left),
    /// publishes them together in one metadata write (retrying on a lost race), then performs their effects in order:
    /// EmitTrace, every effect through <paramref name="perform"/>, and BumpView last, so a node moves to a view in
    /// which it serves a range only after that range's floor is raised and its pulls are registered. Of several
    /// BumpViews of one node only the newest is carried out (a node may skip views: its cores report the newest).
    /// The BumpView of <paramref name="holdViewOf"/> is left to the caller (who advances that node later: serving
    /// later than decided is always safe). A refusal of any of them throws and publishes none.
    /// </summary>
    private void DecideAll(IReadOnlyList<ClusterDecision> decisions, Action<Effect>? perform, string? holdViewOf = null)
    {
        if (decisions.Count == 0)
            return;
        if (Decider is not null)
            decisions = [.. decisions.Select(d => d with { By = Decider })];
        var effects = new List<Effect>();
        long started = System.Diagnostics.Stopwatch.GetTimestamp(), decided;
        while (true)
        {
            ClusterCore current = metadata.Current, next = current;
            effects.Clear();
            foreach (ClusterDecision decision in decisions)
            {
                DecisionResult result = decision.ApplyTo(next);
                if (!result.Accepted)
                    throw new InvalidOperationException($"the core refused {decision.Kind}({decision.Range ?? decision.Node}): " + result.Reason);
                effects.AddRange(result.Effects);
                next = result.Core;
            }
            decided = System.Diagnostics.Stopwatch.GetTimestamp();
            if (metadata.TryReplace(current, decisions, next))
                break;
        }
        long published = System.Diagnostics.Stopwatch.GetTimestamp();
        var views = new Dictionary<string, Effect>();
        foreach (Effect e in effects)
        {
            if (e.Kind == EffectKind.EmitTrace)
                trace.Line(e.TraceLine);
            else if (e.Kind == EffectKind.BumpView)
                views[e.Node] = e;
            perform?.Invoke(e);
        }
        foreach (Effect e in views.Values)
        {
            if (e.Node != holdViewOf && _nodes.TryGetValue(e.Node, out MigrationNode? n))
                AdvanceView(n, e.View, OwnedOf(e));
        }
        string kinds = decisions.Count == 1 ? decisions[0].Kind : string.Join("+", decisions.Select(d => d.Kind).Distinct()) + " x" + decisions.Count;
        Step(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{kinds} (decide {Ms(started, decided):F0}ms, write {Ms(decided, published):F0}ms, effects {Ms(published, System.Diagnostics.Stopwatch.GetTimestamp()):F0}ms)"));
    }

    private static double Ms(long from, long to) => System.Diagnostics.Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    /// <summary>
    /// Runs one whole migration's decisions through a throwaway two-node core and discards them: the first decision in
    /// a process otherwise pays for JIT-compiling the F# decision path (0.3–1 s measured, on the migration's critical
    /// path). Touches no cluster state; a node calls it once at start, on a background thread. Returns how many of the
    /// decisions the core accepted (all of them: a test holds it to that).
    /// </summary>
    public static int WarmUp()
    {
        ClusterCore core = ClusterCore.Create(["a", "b"], ["c1", "c2"], new Dictionary<string, string> { ["r"] = "a" });
        ClusterDecision[] steps =
        [
            ClusterDecision.BeginMigration("r", "b"), ClusterDecision.CoreRefresh("a", "c1", 2), ClusterDecision.CoreRefresh("a", "c2", 2),
            ClusterDecision.Prepare("r", 0), ClusterDecision.TransferOwnership("r"), ClusterDecision.CoreRefresh("b", "c1", 2),
            ClusterDecision.CoreRefresh("b", "c2", 2), ClusterDecision.FinishPulls("r"), ClusterDecision.Checkpoint("b"),
            ClusterDecision.DropSource("r"), ClusterDecision.RemoveLineage("r"),
        ];
        int accepted = 0;
        foreach (ClusterDecision step in steps)
        {
            DecisionResult result = step.ApplyTo(core);
            if (!result.Accepted)
                break; // only a warm-up: a refusal costs nothing but the rest of it
            core = result.Core;
            _ = core.OwnedRanges("b", core.View("b"));
            accepted++;
        }
        return accepted;
    }

    /// <summary>The slot ranges a BumpView says its node owns in the new view.</summary>
    private SlotRange[] OwnedOf(Effect bump) => [.. bump.OwnedRanges.Select(r => ranges[r])];
}
