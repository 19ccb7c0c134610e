using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;
using Xunit.Abstractions;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>Two running <see cref="HybridNode"/>s with separate stores that migrate over their peer ports (TCP).</summary>
internal sealed class TwoMembers : IAsyncDisposable
{
    public static readonly string[] Cores = ["c1", "c2"];
    public static readonly Dictionary<string, SlotRange> Ranges = new() { ["r1"] = TwoNodes.R1, ["r2"] = TwoNodes.R2 };
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hybrid-net-migration", Guid.NewGuid().ToString("N"));
    private readonly Dictionary<string, ClusterMember> _members = [];

    public TwoMembers()
    {
        Metadata = new InMemoryClusterMetadata(ClusterCore.Create(["n1", "n2"], Cores, new Dictionary<string, string> { ["r1"] = "n1", ["r2"] = "n1" }));
        Trace = new MigrationTrace(TraceText);
        N1 = Member("n1");
        N2 = Member("n2");
    }

    public InMemoryClusterMetadata Metadata { get; }
    public StringWriter TraceText { get; } = new();
    public MigrationTrace Trace { get; }
    public ClusterMember N1 { get; }
    public ClusterMember N2 { get; private set; }

    private ClusterMember Member(string name)
    {
        var options = new HybridNodeOptions
        {
            DataDirectory = Path.Combine(_dir, name),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            MemoryBudgetBytes = 1 << 18,
            ConfigureStore = o => o with { PageSizeBytes = 1 << 14, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 12, CheckpointInterval = TimeSpan.Zero, CommitInterval = TimeSpan.FromMilliseconds(2) },
        };
        var member = new ClusterMember(name, Cores, options, Metadata, Ranges, n => _members[n].PeerEndPoint, new IPEndPoint(IPAddress.Loopback, 0), TestPeerKey.Value, Trace);
        _members[name] = member;
        return member;
    }

    public async Task StartAsync()
    {
        await N1.StartAsync();
        await N2.StartAsync();
    }

    /// <summary>
    /// Stops n2 (whatever it is doing), raises n1's version floor to <paramref name="floor"/> meanwhile, and starts a new
    /// member on n2's data directory, as after a crash.
    /// </summary>
    public async Task RestartN2Async_WhileSourceFloorRises(ulong floor)
    {
        await N2.DisposeAsync();
        N1.Node.Store.RaiseVersionFloor(floor);
        N2 = Member("n2");
        await N2.StartAsync();
    }

    /// <summary>A coordinator run by the test itself for a migration of n1's ranges to n2, over <paramref name="network"/>.</summary>
    public (MigrationCoordinator Coordinator, MigrationNode Source, MigrationNode Target) CoordinatorHere(NetworkPeer network) =>
        (new MigrationCoordinator(Metadata, Trace, Ranges), new MigrationNode("n1", Cores, network.Views), new MigrationNode("n2", Cores, new NodeViewCores(N2.Node.View)));

    public static Task<HybridSession> ConnectAsync(ClusterMember member) =>
        HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, member.Node.NativePort), MaxResends = 0 });

    public async ValueTask DisposeAsync()
    {
        await N1.DisposeAsync();
        await N2.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A peer whose background pulls are slow, so client reads reach keys that have not arrived yet.</summary>
internal sealed class SlowPullPeer(IMigrationPeer inner, TimeSpan delay) : IMigrationPeer
{
    public ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default) => inner.VersionFloorAsync(cancellationToken);

    public ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default) =>
        inner.PlanPullsAsync(partitions, from, cancellationToken);

    public async ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default)
    {
        await Task.Delay(delay, cancellationToken);
        return await inner.PullAsync(range, incarnation, cursor, into, cancellationToken);
    }

    public ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default) =>
        inner.PriorityPullAsync(keys, into, cancellationToken);

    public ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default) => inner.DropAsync(range, cancellationToken);
}

/// <summary>Migrations between two running nodes over the peer protocol, with native clients reading and writing.</summary>
public sealed class NetworkMigrationTests(ITestOutputHelper output)
{
    private static byte[] Key(int i) => Encoding.UTF8.GetBytes(TwoNodes.Key(i));

    private static async Task<List<int>> LoadAsync(HybridSession session, int count)
    {
        var moving = new List<int>();
        var writes = new List<Task<WriteResult>>();
        for (int i = 0; i < count; i++)
        {
            writes.Add(session.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(TwoNodes.Value(i))).AsTask());
            if (TwoNodes.R1.ContainsKey(Key(i)))
                moving.Add(i);
        }
        foreach (WriteResult w in await Task.WhenAll(writes))
            Assert.Equal(Status.Ok, w.Status);
        return moving;
    }

    [Fact]
    public async Task A_range_moves_between_two_running_nodes_over_the_peer_port_and_old_view_batches_get_ViewChanged()
    {
        await using var nodes = new TwoMembers();
        await nodes.StartAsync();
        await using HybridSession atSource = await TwoMembers.ConnectAsync(nodes.N1);
        List<int> moving = await LoadAsync(atSource, 4000);

        await nodes.N2.MigrateHereAsync(["r1"]);
        MigrationStatus status = nodes.N2.Status;
        output.WriteLine(status.ToJson());
        Assert.Null(status.Error);
        Assert.Contains($"\"records\":{moving.Count},", status.ToJson()); // every record of the range pulled once over TCP
        Assert.NotNull(status.FirstServed);

        // The source left view 1 at BeginMigration: a batch stamped with it runs nothing.
        var refused = await Assert.ThrowsAsync<HybridProtocolException>(async () => await atSource.GetAsync(1, Key(moving[0])));
        Assert.Equal(Status.ViewChanged, refused.Status);

        ClusterCore final = nodes.Metadata.Current;
        Assert.Equal("n2", final.Owner("r1"));
        Assert.Equal((ulong)final.View("n1"), nodes.N1.Node.View.Current);
        Assert.Equal((ulong)final.View("n2"), nodes.N2.Node.View.Current);

        await using HybridSession atTarget = await TwoMembers.ConnectAsync(nodes.N2);
        Assert.Equal((ulong)final.View("n2"), atTarget.View);
        foreach (int i in moving)
        {
            GetResult got = await atTarget.GetAsync(1, Key(i));
            Assert.Equal(TwoNodes.Value(i), got.Value is null ? null : Encoding.UTF8.GetString(got.Value));
        }
        await using HybridSession atSourceAgain = await TwoMembers.ConnectAsync(nodes.N1);
        // A session in the source's current view, sent a key of the moved range: refused, never executed there.
        var notOwner = await Assert.ThrowsAsync<HybridProtocolException>(async () => await atSourceAgain.PutAsync(1, Key(moving[0]), [1]));
        Assert.Equal(Status.NotOwner, notOwner.Status);
        Assert.Equal(0, nodes.N1.Node.Store.DropSlots(TwoNodes.R1.Lo, TwoNodes.R1.Hi)); // dropped at the source, and nothing written since
    }

    [Fact]
    public async Task A_target_that_restarts_while_it_pulls_raises_its_floor_from_the_source_before_it_serves()
    {
        // The transfer's floor raise is logged without waiting for its commit, so a crash can lose it; the restarted
        // target must ask the source again. To tell that apart from a floor that survived in the target's own log, the
        // source's floor rises while the target is down: only a floor fetched at recovery is that high.
        await using var nodes = new TwoMembers();
        await nodes.StartAsync();
        await using HybridSession atSource = await TwoMembers.ConnectAsync(nodes.N1);
        List<int> moving = await LoadAsync(atSource, 2000);

        using var network = new NetworkPeer(nodes.N1.PeerEndPoint, TestPeerKey.Value);
        var (coordinator, source, target) = nodes.CoordinatorHere(network);
        var pulling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task migration = coordinator.MigrateAsync("r1", source, target, new MigrationTarget(nodes.N2.Node.Store, nodes.Trace),
            new SlowPullPeer(network, TimeSpan.FromMilliseconds(200)), _ => pulling.TrySetResult());
        await pulling.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("Pulling", nodes.Metadata.Current.Phase("r1"));
        Assert.Equal("n2", nodes.Metadata.Current.Owner("r1"));

        await nodes.RestartN2Async_WhileSourceFloorRises(floor: 1_000_000);
        await Assert.ThrowsAnyAsync<Exception>(() => migration); // the first target's pulls died with it

        Assert.True(nodes.N2.Node.Store.MaxVersion >= 1_000_000, $"the restarted target's floor is {nodes.N2.Node.Store.MaxVersion}");
        await using HybridSession atTarget = await TwoMembers.ConnectAsync(nodes.N2);
        WriteResult put = await atTarget.PutAsync(1, Key(moving[0]), Encoding.UTF8.GetBytes("after-restart"));
        Assert.Equal(Status.Ok, put.Status);
        Assert.True(put.Version > 1_000_000, $"a write at the restarted target got version {put.Version}");
        // The restarted target finishes the migration by itself (pulls, checkpoint, drop, lineage removed).
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (nodes.Metadata.Current.Phase("r1").Length > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.Equal("", nodes.Metadata.Current.Phase("r1"));
        GetResult got = await atTarget.GetAsync(1, Key(moving[0]));
        Assert.Equal("after-restart", Encoding.UTF8.GetString(got.Value!)); // the pulled, older record did not overwrite it
    }

    [Fact]
    public async Task Pipelined_batches_at_the_target_keep_each_keys_order_around_a_read_that_waits_for_its_pull()
    {
        await using var nodes = new TwoMembers();
        await nodes.StartAsync();
        await using HybridSession atSource = await TwoMembers.ConnectAsync(nodes.N1);
        List<int> moving = await LoadAsync(atSource, 2000);

        using var network = new NetworkPeer(nodes.N1.PeerEndPoint, TestPeerKey.Value);
        var (coordinator, source, target) = nodes.CoordinatorHere(network);
        var serving = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnPullsStarted(PullJob job) => _ = Task.Run(async () =>
        {
            while (nodes.N2.Node.View.Current < (ulong)nodes.Metadata.Current.View("n2") || !nodes.N2.Node.View.AllWorkersAtLeast(nodes.N2.Node.View.Current))
                await Task.Delay(1);
            serving.SetResult();
        });
        Task migration = coordinator.MigrateAsync("r1", source, target, new MigrationTarget(nodes.N2.Node.Store, nodes.Trace),
            new SlowPullPeer(network, TimeSpan.FromMilliseconds(500)), OnPullsStarted);
        await serving.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // One send, three frames on a key the background pulls have not reached: the read waits for a priority pull,
        // the frames behind it run meanwhile, and the write and the second read must still come after the first read.
        using var raw = Node.RawConnection.OpenDefault(new IPEndPoint(IPAddress.Loopback, nodes.N2.Node.NativePort));
        byte[] key = Key(moving[^1]);
        raw.Send([
            .. Node.RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 1, key, default), 1),
            .. Node.RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 1, key, "new"u8), 2),
            .. Node.RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 1, key, default), 3)]);
        var first = raw.Receive();
        var put = raw.Receive();
        var second = raw.Receive();
        Assert.Equal([1u, 2u, 3u], new[] { first.Header.BatchSeq, put.Header.BatchSeq, second.Header.BatchSeq });
        Assert.Equal(TwoNodes.Value(moving[^1]), Encoding.UTF8.GetString(first.Results[0].Value)); // not the later write
        Assert.Equal(Status.Ok, put.Results[0].Status);
        Assert.Equal("new", Encoding.UTF8.GetString(second.Results[0].Value));
        Assert.True(nodes.N2.Store.PulledReads > 0, "no read waited for a pull: the test did not exercise the wait");
        await migration;
        await using HybridSession check = await TwoMembers.ConnectAsync(nodes.N2);
        Assert.Equal("new", Encoding.UTF8.GetString((await check.GetAsync(1, key)).Value!));
    }

    [Fact]
    public async Task Reads_at_the_target_of_keys_not_yet_pulled_are_served_by_batched_priority_pulls_and_writes_win_over_pulls()
    {
        await using var nodes = new TwoMembers();
        await nodes.StartAsync();
        await using HybridSession atSource = await TwoMembers.ConnectAsync(nodes.N1);
        List<int> moving = await LoadAsync(atSource, 3000);
        // Written three times: every record at the source has version 3, so a write at the target to a key not pulled
        // yet only wins if the target raised its version floor to the source's (at 0 it would get version 1).
        await LoadAsync(atSource, 3000);
        await LoadAsync(atSource, 3000);

        // Drive the coordinator here with slowed background pulls (the network peer underneath is the real one).
        using var network = new NetworkPeer(nodes.N1.PeerEndPoint, TestPeerKey.Value);
        var (coordinator, source, target) = nodes.CoordinatorHere(network);
        var reads = new TaskCompletionSource<(int Reads, int Written)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var written = new Dictionary<int, string>();
        void OnPullsStarted(PullJob job) => _ = Task.Run(async () =>
        {
            try
            {
                while (nodes.N2.Node.View.Current < (ulong)nodes.Metadata.Current.View("n2") || !nodes.N2.Node.View.AllWorkersAtLeast(nodes.N2.Node.View.Current))
                    await Task.Delay(1);
                await using HybridSession atTarget = await TwoMembers.ConnectAsync(nodes.N2);
                var batch = new List<Task<GetResult>>();
                foreach (int i in moving.Take(200))
                    batch.Add(atTarget.GetAsync(1, Key(i)).AsTask());
                GetResult[] got = await Task.WhenAll(batch);
                for (int k = 0; k < got.Length; k++)
                    Assert.Equal(TwoNodes.Value(moving[k]), got[k].Value is null ? null : Encoding.UTF8.GetString(got[k].Value!));
                foreach (int i in moving.Skip(200).Take(100))
                {
                    written[i] = "new-" + i;
                    WriteResult put = await atTarget.PutAsync(1, Key(i), Encoding.UTF8.GetBytes(written[i]));
                    Assert.Equal(Status.Ok, put.Status);
                    Assert.True(put.Version > 3, $"a write at the target got version {put.Version}, not above the source's floor");
                }
                reads.SetResult((got.Length, written.Count));
            }
            catch (Exception e)
            {
                reads.SetException(e);
            }
        });
        PullStats stats = await coordinator.MigrateAsync("r1", source, target, new MigrationTarget(nodes.N2.Node.Store, nodes.Trace),
            new SlowPullPeer(network, TimeSpan.FromMilliseconds(50)), OnPullsStarted);
        (int readCount, _) = await reads.Task;
        output.WriteLine($"pulled {stats.Records} records in {stats.Chunks} chunks; {readCount} reads at the target, " +
            $"{stats.PriorityBatches} priority batches for {stats.PriorityKeys} keys, {nodes.N2.Store.PulledReads} reads waited; {stats.Stale} stale");
        Assert.True(stats.PriorityKeys > 0, "no read waited for a priority pull");
        Assert.True(stats.PriorityBatches < stats.PriorityKeys, "priority pulls were not batched");

        await using HybridSession check = await TwoMembers.ConnectAsync(nodes.N2);
        foreach (int i in moving)
        {
            GetResult got = await check.GetAsync(1, Key(i));
            string expected = written.TryGetValue(i, out string? w) ? w : TwoNodes.Value(i);
            Assert.Equal(expected, got.Value is null ? null : Encoding.UTF8.GetString(got.Value));
        }
    }
}
