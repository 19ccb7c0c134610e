using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;
using Hybrid.Storage;
using Xunit.Abstractions;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>End-to-end Rocksteady migrations between two real FASTER stores in one process, driven by the F# core's decisions.</summary>
public sealed class MigrationTests(ITestOutputHelper output)
{
    [Fact]
    public void The_decision_warm_up_runs_a_whole_migration_through_a_throwaway_core() =>
        Assert.Equal(11, MigrationCoordinator.WarmUp()); // every step accepted, so every decision's code path ran

    [Fact]
    public async Task Every_key_of_the_moved_range_arrives_with_its_latest_value_while_the_target_takes_writes()
    {
        using var nodes = new TwoNodes(traced: true);
        List<int> moving = nodes.Load(20_000);
        Assert.InRange(moving.Count, 9_000, 11_000);

        // After the transfer the target owns r1: a writer updates moving keys there while pulls run.
        var written = new Dictionary<int, string>();
        using var stopWriter = new CancellationTokenSource();
        Task writer = Task.CompletedTask;
        void StartWriter(PullJob job) => writer = Task.Run(() =>
        {
            using var s = new SyncSession(nodes.TargetStore.Store.NewSession());
            var random = new Random(7);
            for (int round = 0; !stopWriter.IsCancellationRequested && round < 20_000; round++)
            {
                int i = moving[random.Next(moving.Count)];
                string value = $"w{i}-{round}";
                s.Put(TwoNodes.Key(i), value);
                written[i] = value;
            }
        });

        var sw = Stopwatch.StartNew();
        PullStats stats = await nodes.Coordinator.MigrateAsync("r1", nodes.N1, nodes.N2, nodes.Target, new InProcessPeer(nodes.Source), StartWriter);
        sw.Stop();
        stopWriter.Cancel();
        await writer;
        output.WriteLine($"migrated {stats.Records} records, {stats.Bytes} bytes in {stats.Chunks} chunks, {stats.Stale} stale, " +
            $"whole migration {sw.Elapsed.TotalMilliseconds:F0} ms; pulls {stats.BackgroundElapsed.TotalMilliseconds:F0} ms = " +
            $"{stats.Records / stats.BackgroundElapsed.TotalSeconds:F0} records/s, {stats.Bytes / stats.BackgroundElapsed.TotalSeconds / 1e6:F2} MB/s; {written.Count} keys written at the target");
        Assert.True(stats.Records >= moving.Count - written.Count, $"pulled {stats.Records} of {moving.Count}");

        using var target = new SyncSession(nodes.TargetStore.Store.NewSession());
        using var source = new SyncSession(nodes.SourceStore.Store.NewSession());
        var missing = new List<int>();
        foreach (int i in moving)
        {
            string expected = written.TryGetValue(i, out string? w) ? w : TwoNodes.Value(i);
            (string Value, ulong Version)? got = target.Get(TwoNodes.Key(i));
            if (got is null)
                missing.Add(i);
            else
                Assert.Equal(expected, got.Value.Value); // a pulled record never overwrote a newer write
            Assert.Null(source.Get(TwoNodes.Key(i))); // the source dropped the range
        }
        Assert.Empty(missing);
        for (int i = 0; i < 20_000; i += 97)
        {
            if (!TwoNodes.R1.ContainsKey(Encoding.UTF8.GetBytes(TwoNodes.Key(i))))
            {
                Assert.Equal(TwoNodes.Value(i), source.Get(TwoNodes.Key(i))?.Value);
                Assert.Null(target.Get(TwoNodes.Key(i)));
            }
        }

        ClusterCore final = nodes.Metadata.Current;
        Assert.Equal("n2", final.Owner("r1"));
        Assert.Equal("n1", final.Owner("r2"));
        Assert.Equal("", final.Phase("r1"));
        Assert.Contains("r1", final.OwnedRanges("n2", final.View("n2")));
        Assert.DoesNotContain("r1", final.OwnedRanges("n1", final.View("n1")));

        string[] lines = nodes.TraceText.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] events = [.. lines.Select(EventName)];
        foreach (string step in new[] { "BeginMigration", "CoreRefresh", "Prepare", "TransferOwnership", "BackgroundPull", "FinishPulls", "Checkpoint", "DropSource", "RemoveLineage" })
            Assert.Contains(step, events);
        Assert.Equal(stats.Chunks, events.Count(e => e == "BackgroundPull"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_view_change_lost_on_the_way_to_the_source_is_sent_again_and_the_migration_finishes(bool appliedBeforeTheLoss)
    {
        // NetworkFaultTests once failed a migration with "peer ... did not connect and authenticate within 5 s": the
        // source's view change (BeginMigration's BumpView, carried out after the decision was published) was not
        // retried, so one lost connection abandoned a decided migration. Either way the loss falls (the request lost,
        // or its reply), sending it again is safe.
        using var nodes = new TwoNodes(traced: false);
        List<int> moving = nodes.Load(2_000);
        var lossy = new LossyCores(new PromptCores(2), losses: 2, appliedBeforeTheLoss);
        var source = new MigrationNode("n1", nodes.N1.Cores, lossy);
        PullStats stats = await nodes.Coordinator.MigrateAsync("r1", source, nodes.N2, nodes.Target, new InProcessPeer(nodes.Source));
        Assert.Equal(2, lossy.Lost);
        Assert.Equal(moving.Count, stats.Records);
        Assert.Equal("n2", nodes.Metadata.Current.Owner("r1"));
        Assert.Equal("", nodes.Metadata.Current.Phase("r1"));
    }

    /// <summary>Cores whose first <paramref name="losses"/> view changes fail as a peer that could not be reached does.</summary>
    private sealed class LossyCores(ICoreViews inner, int losses, bool appliedBeforeTheLoss) : ICoreViews
    {
        public int Lost { get; private set; }

        public int CoreCount => inner.CoreCount;

        public void Advance(int view, IReadOnlyList<SlotRange> owned)
        {
            if (Lost < losses)
            {
                Lost++;
                if (appliedBeforeTheLoss)
                    inner.Advance(view, owned);
                throw new IOException("peer 10.0.0.1:7000 did not connect and authenticate within 5 s");
            }
            inner.Advance(view, owned);
        }

        public int CoreView(int core) => inner.CoreView(core);
    }

    [Fact]
    public async Task Without_client_writes_every_record_is_pulled_exactly_once_across_partitions_chunks_and_the_catch_up_pass()
    {
        using var nodes = new TwoNodes(traced: false);
        List<int> moving = nodes.Load(20_000);
        PullStats stats = await nodes.Coordinator.MigrateAsync("r1", nodes.N1, nodes.N2, nodes.Target, new InProcessPeer(nodes.Source));
        output.WriteLine($"pulled {stats.Records} records, {stats.Bytes} bytes in {stats.Chunks} chunks in {stats.BackgroundElapsed.TotalMilliseconds:F0} ms = " +
            $"{stats.Records / stats.BackgroundElapsed.TotalSeconds:F0} records/s, {stats.Bytes / stats.BackgroundElapsed.TotalSeconds / 1e6:F2} MB/s");
        Assert.Equal(moving.Count, stats.Records);
        Assert.Equal(0, stats.Stale);
        using var target = new SyncSession(nodes.TargetStore.Store.NewSession());
        foreach (int i in moving)
            Assert.Equal(TwoNodes.Value(i), target.Get(TwoNodes.Key(i))?.Value);
    }

    [Fact]
    public async Task A_read_run_waiting_for_a_priority_pull_lets_go_of_the_epoch_while_it_waits()
    {
        // The pull's writes may need the waiting thread's epoch to move (with the log full they allocate only past
        // closed pages): a read run that kept its protection through the wait could deadlock with its own pull.
        using var nodes = new TwoNodes(traced: false);
        List<int> moving = nodes.Load(2_000);
        using var gate = new ManualResetEventSlim(false);
        var migrating = new MigratingStore(nodes.TargetStore.Store);
        var target = new MigrationTarget(migrating, MigrationTrace.Off, partitions: 2);
        PullJob job = target.StartPulls("r1", TwoNodes.R1, new GatedPeer(new InProcessPeer(nodes.Source), gate, gatePriority: true));
        string key = TwoNodes.Key(moving[moving.Count / 2]);
        string? seen = null;
        var reader = new Thread(() =>
        {
            using IKvSession s = migrating.NewSession();
            s.BeginReadRun();
            var output = new System.Buffers.ArrayBufferWriter<byte>();
            Assert.Equal(StoreStatus.Pending, s.GetInPlace(1, 1, Encoding.UTF8.GetBytes(key), output, out _, out _).Status);
            var sink = new ValueSink();
            s.CompletePending(sink, wait: true); // waits for the gated priority pull
            Assert.True(s.RetainInPlace());
            seen = sink.Value;
            s.EndReadRun();
        });
        reader.Start();
        while (migrating.PulledReads == 0 && reader.IsAlive)
            Thread.Sleep(1); // until the read has asked for its pull
        // Scan planning makes the log's mutable region read-only and waits for every thread's epoch to move before it
        // returns: after a write (so there is a region to shift), it finishes only if the waiting reader let go.
        int staying = Enumerable.Range(0, 2_000).First(i => !moving.Contains(i));
        using (var w = new SyncSession(nodes.TargetStore.Store.NewSession()))
            w.Put(TwoNodes.Key(staying), "written at the target");
        var planner = new Thread(() => nodes.TargetStore.Store.PlanScan(1));
        planner.Start();
        bool planned = planner.Join(TimeSpan.FromSeconds(20));
        gate.Set();
        Assert.True(reader.Join(TimeSpan.FromSeconds(30)), "the reader never finished");
        planner.Join();
        Assert.True(planned, "the reader held the epoch while it waited for its pull");
        Assert.Equal(TwoNodes.Value(moving[moving.Count / 2]), seen);
        await job.CompleteAsync().WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>Keeps the value of the last completion.</summary>
    private sealed class ValueSink : ICompletionSink
    {
        public string? Value { get; private set; }

        public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value) =>
            Value = result.Status == StoreStatus.Ok ? Encoding.UTF8.GetString(value) : result.Status.ToString();
    }

    /// <summary>A source whose priority pulls fail with a remote error (not "unreachable", so they are not retried).</summary>
    private sealed class FailingPriorityPeer(IMigrationPeer inner) : IMigrationPeer
    {
        public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => inner.VersionFloorAsync(cancellationToken);

        public ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default) => ValueTask.FromResult(new PullPlan(1, []));

        public ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default) =>
            inner.PullAsync(range, incarnation, cursor, into, cancellationToken);

        public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
            ValueTask.FromException(new PeerException("source refused the priority pull"));

        public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) => inner.DropAsync(range, cancellationToken);
    }

    [Fact]
    public async Task A_failed_priority_pull_fails_its_reads_and_every_later_miss_instead_of_leaving_them_waiting()
    {
        using var nodes = new TwoNodes(traced: false);
        nodes.Load(100);
        PullJob job = nodes.Target.StartPulls("r1", TwoNodes.R1, new FailingPriorityPeer(new InProcessPeer(nodes.Source)));
        Task first = job.PullForReadAsync(new PullKey(1, 1, Encoding.UTF8.GetBytes(TwoNodes.Key(1))));
        var failure = await Assert.ThrowsAsync<PeerException>(() => first.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("refused", failure.Message);
        Task later = job.PullForReadAsync(new PullKey(1, 1, Encoding.UTF8.GetBytes(TwoNodes.Key(2))));
        Assert.True(later.IsFaulted, "a miss after the priority loop failed was left waiting (or answered as if pulled)");
        await Assert.ThrowsAsync<PeerException>(() => job.CompleteAsync().WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_read_of_a_key_not_yet_pulled_waits_for_its_priority_pull_and_sees_the_source_value()
    {
        using var nodes = new TwoNodes(traced: true);
        List<int> moving = nodes.Load(2_000);
        using var gate = new ManualResetEventSlim(false);
        var peer = new GatedPeer(new InProcessPeer(nodes.Source), gate);
        string? seen = null, before = "unset";
        long priorityKeys = -1;

        void ReadMissing(PullJob job)
        {
            int i = moving[moving.Count / 2];
            using var target = new SyncSession(nodes.TargetStore.Store.NewSession());
            before = target.Get(TwoNodes.Key(i))?.Value; // background pulls are held back: not here yet
            job.PullForReadAsync(new PullKey(1, 1, Encoding.UTF8.GetBytes(TwoNodes.Key(i)))).Wait();
            seen = target.Get(TwoNodes.Key(i))?.Value;
            priorityKeys = job.Stats.PriorityKeys;
            gate.Set();
        }

        await nodes.Coordinator.MigrateAsync("r1", nodes.N1, nodes.N2, nodes.Target, peer, ReadMissing);

        int key = moving[moving.Count / 2];
        Assert.Null(before);
        Assert.Equal(TwoNodes.Value(key), seen);
        Assert.Equal(1, priorityKeys);
        Assert.Contains("\"event\":\"PriorityPull\"", nodes.TraceText.ToString());
        Assert.Equal("n2", nodes.Metadata.Current.Owner("r1"));
    }

    [Fact]
    public async Task The_decisions_in_the_emitted_trace_replay_through_the_trace_checker()
    {
        // No writes at the source: the floor it reports at Prepare is then the model's (0). With writes the decision
        // lines alone do not replay, because the model raises floors through ExecuteWrite steps (Decision.fs, known gap).
        using var nodes = new TwoNodes(traced: true);
        ClusterCore initial = nodes.Metadata.Current;
        await nodes.Coordinator.MigrateAsync("r1", nodes.N1, nodes.N2, nodes.Target, new InProcessPeer(nodes.Source));

        // The key-less decision model has no per-key data-plane steps: BackgroundPull/PriorityPull lines are checked
        // only for their presence; every other line must be an enabled step of the model with its invariants.
        List<string> decisions = [initial.InitTraceLine, .. nodes.TraceText.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => !l.Contains("\"event\":\"BackgroundPull\"") && !l.Contains("\"event\":\"PriorityPull\""))];
        TraceReport report = MigrationTrace.Check(decisions);
        Assert.True(report.Accepted, $"{report.Verdict} at line {report.Line}: {report.Message}");
        Assert.Equal(decisions.Count, report.LinesChecked);
    }

    private static string EventName(string line)
    {
        using var doc = JsonDocument.Parse(line);
        return doc.RootElement.GetProperty("event").GetString()!;
    }

    /// <summary>Holds background pulls until the gate opens; priority pulls pass.</summary>
    private sealed class GatedPeer(IMigrationPeer inner, ManualResetEventSlim gate, bool gatePriority = false) : IMigrationPeer
    {
        public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => inner.VersionFloorAsync(cancellationToken);

        public ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default) =>
            inner.PlanPullsAsync(partitions, from, cancellationToken);

        public ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default)
        {
            gate.Wait(cancellationToken);
            return inner.PullAsync(range, incarnation, cursor, into, cancellationToken);
        }

        public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default)
        {
            if (gatePriority)
                gate.Wait(cancellationToken);
            return inner.PriorityPullAsync(keys, into, cancellationToken);
        }

        public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) => inner.DropAsync(range, cancellationToken);
    }
}
