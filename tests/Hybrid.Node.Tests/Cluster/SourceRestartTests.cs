using System.Net;
using Hybrid.Node.Cluster;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>
/// A migration source that restarts (kill -9, then recovery) while a target pulls from it: recovery replays the
/// operation log, so the source's records lie at other log addresses than the target's cursors name. Found by review:
/// the target resumed its partitions from their old cursors and its catch-up pass from the old plan's end, skipped
/// records that had moved, and the migration went on to drop the source's only copies.
/// </summary>
public sealed class SourceRestartTests : IDisposable
{
    private static readonly SlotRange s_all = new(0, Slot.Count - 1);
    private readonly string _dir = TempStore.NewDirectory();

    private StoreOptions Options => TempStore.Options(_dir, DurabilityMode.Sync, memoryBudget: 1 << 20, pageSize: 4096);

    public void Dispose() => TempStore.DeleteDirectory(_dir);

    /// <summary>Stops <paramref name="store"/> as a crash would: no commit, no checkpoint (FasterKvStore's test hook).</summary>
    private static void Crash(IKvStore store) => ((FasterKvStore)store).SimulateCrash();

    private static void Put(IKvStore store, string key, string value)
    {
        using var s = new SyncSession(store.NewSession());
        s.Put(key, value);
    }

    [Fact]
    public async Task A_source_restarted_mid_pull_is_pulled_again_from_its_log_begin_and_every_record_arrives()
    {
        // The reviewer's case: 1000 keys, the log shifted read-only, even keys rewritten (so they move to the log's
        // upper half), a plan of 4 partitions, partitions 0 and 1 pulled to their end, then the source crashes and
        // restarts, and takes writes. Replayed, the rewritten keys lie low in the new log, behind cursors of partitions
        // 2 and 3 and in partitions already done; the catch-up pass from the old end finds only the new writes.
        var expected = new Dictionary<string, string>();
        IKvStore store = FasterKvStore.Open(Options);
        using (var s = new SyncSession(store.NewSession()))
        {
            for (int i = 0; i < 1000; i++)
                s.Put($"key:{i}", expected[$"key:{i}"] = "a" + i);
            store.PlanScan(1); // everything so far read-only: the rewrites go to new addresses
            for (int i = 0; i < 1000; i += 2)
                s.Put($"key:{i}", expected[$"key:{i}"] = "b" + i);
        }
        var source = new MigrationSource(store);
        var peer = new RestartingPeer(new InProcessPeer(source));
        using var targetStore = new TempStore();
        var target = new MigrationTarget(targetStore.Store, MigrationTrace.Off, partitions: 4);
        PullJob job = target.StartPulls("all", s_all, peer);

        Assert.True(peer.FirstTwoDone.Wait(TimeSpan.FromSeconds(30)), "partitions 0 and 1 did not finish");
        Assert.Equal(4, peer.FirstPlan!.Value.Partitions.Length);
        source.Dispose();
        Crash(store);
        IKvStore restarted = FasterKvStore.Open(Options);
        try
        {
            Assert.NotEqual(peer.FirstPlan.Value.Incarnation, restarted.Incarnation);
            using (var s = new SyncSession(restarted.NewSession()))
            {
                for (int i = 0; i < 1000; i++)
                    s.Put($"new:{i}", expected[$"new:{i}"] = "n" + i); // the new tail lies beyond the old plan's end
            }
            using var restartedSource = new MigrationSource(restarted);
            peer.Inner = new InProcessPeer(restartedSource);
            peer.Open.Set();
            await job.CompleteAsync().WaitAsync(TimeSpan.FromSeconds(60));

            using var t = new SyncSession(targetStore.Store.NewSession());
            var missing = expected.Where(p => t.Get(p.Key)?.Value != p.Value).Select(p => p.Key).ToList();
            Assert.True(missing.Count == 0, $"{missing.Count} of {expected.Count} records never arrived or are stale, e.g. {string.Join(", ", missing.Take(5))}");
            Assert.True(job.Stats.Restarts >= 1, "the job never noticed the restart");
            Assert.Equal(restarted.Incarnation, job.Incarnation);
        }
        finally
        {
            restarted.Dispose();
        }
    }

    [Fact]
    public async Task The_peer_port_refuses_a_cursor_of_another_incarnation_and_says_which_one_is_current()
    {
        using var store = new TempStore();
        for (int i = 0; i < 200; i++)
            Put(store.Store, TwoNodes.Key(i), TwoNodes.Value(i));
        using var source = new MigrationSource(store.Store);
        using var server = new PeerServer(new IPEndPoint(IPAddress.Loopback, 0), TestPeerKey.Value, source, new PromptCores(2));
        using var peer = new NetworkPeer(server.EndPoint, TestPeerKey.Value);
        PullPlan plan = await peer.PlanPullsAsync(1, 0);
        Assert.Equal(store.Store.Incarnation, plan.Incarnation);
        ScanCursor start = plan.Partitions.Single();

        var e = await Assert.ThrowsAsync<SourceRestartedException>(() => peer.PullAsync(s_all, plan.Incarnation + 1, start, new PullBuffer()).AsTask());
        Assert.Equal(plan.Incarnation, e.Incarnation);
        using (IPullStream stream = peer.OpenPulls(s_all, plan.Incarnation + 1, start))
            Assert.Equal(plan.Incarnation, Assert.Throws<SourceRestartedException>(() => stream.Read(out _)).Incarnation);
        Assert.Throws<SourceRestartedException>(() => source.Pull(s_all, plan.Incarnation + 1, start, new PullBuffer()));

        // The same connection pool and the right incarnation: the whole partition.
        var buffer = new PullBuffer();
        int records = 0;
        for (ScanCursor c = start; !c.IsDone;)
        {
            c = await peer.PullAsync(s_all, plan.Incarnation, c, buffer);
            records += buffer.Count;
        }
        Assert.Equal(200, records);
    }

    /// <summary>
    /// An in-process source that can be swapped for a restarted one (<see cref="Inner"/>). Until <see cref="Open"/> is
    /// set, chunks of the first plan's partitions 2 and 3 wait, and <see cref="FirstTwoDone"/> is signalled when
    /// partitions 0 and 1 have returned their last chunk.
    /// </summary>
    private sealed class RestartingPeer(IMigrationPeer inner) : IMigrationPeer
    {
        private volatile IMigrationPeer _inner = inner;

        public IMigrationPeer Inner
        {
            get => _inner;
            set => _inner = value;
        }

        public PullPlan? FirstPlan { get; private set; }

        public ManualResetEventSlim Open { get; } = new(false);

        public CountdownEvent FirstTwoDone { get; } = new(2);

        public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => Inner.VersionFloorAsync(cancellationToken);

        public async ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default)
        {
            PullPlan plan = await Inner.PlanPullsAsync(partitions, from, cancellationToken);
            FirstPlan ??= plan;
            return plan;
        }

        public async ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default)
        {
            bool firstTwo = FirstPlan is { } first && incarnation == first.Incarnation && cursor.End <= first.Partitions[1].End;
            if (!firstTwo && !Open.IsSet)
                await Task.Run(() => Open.Wait(cancellationToken), cancellationToken);
            ScanCursor next = await Inner.PullAsync(range, incarnation, cursor, into, cancellationToken);
            if (firstTwo && next.IsDone && !Open.IsSet)
                FirstTwoDone.Signal();
            return next;
        }

        public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
            Inner.PriorityPullAsync(keys, into, cancellationToken);

        public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) => Inner.DropAsync(range, cancellationToken);
    }
}
