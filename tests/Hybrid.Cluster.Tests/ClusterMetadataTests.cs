using System.Collections.Immutable;
using System.Text;

namespace Hybrid.Cluster.Tests;

/// <summary>The typed cluster-state layer, run on both stores.</summary>
public abstract class ClusterMetadataContract : IAsyncLifetime
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(15);

    /// <summary>The store under test.</summary>
    protected IMetadataStore Store { get; private set; } = null!;

    /// <summary>The layer under test, rooted at /hybrid.</summary>
    protected ClusterMetadata Metadata { get; private set; } = null!;

    /// <summary>Creates an empty store for one test.</summary>
    protected abstract Task<IMetadataStore> CreateStoreAsync();

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        Store = await CreateStoreAsync();
        Metadata = new ClusterMetadata(Store);
    }

    /// <inheritdoc/>
    public virtual async Task DisposeAsync() => await Store.DisposeAsync();

    /// <summary>Two nodes, two ranges splitting the slot space, r1 on n1 and r2 on n2.</summary>
    protected static ClusterState TwoNodes() => ClusterState.Initial(
        new Dictionary<string, SlotRange> { ["r1"] = new(0, 8191), ["r2"] = new(8192, SlotRange.SlotCount - 1) },
        new Dictionary<string, string> { ["r1"] = "n1", ["r2"] = "n2" },
        ["n1", "n2"]);

    /// <summary>
    /// A stand-in for the F# core's decision <c>TransferOwnership(r)</c> (Grant + lineage): only the
    /// metadata part, enough to check that every piece of it is published together.
    /// </summary>
    protected static ClusterState? TransferOwnership(ClusterState s, string r)
    {
        if (!s.Mig.TryGetValue(r, out var m) || m.Phase != MigrationPhase.Prepared)
        {
            return null;
        }

        var view = s.View[m.Tgt] + 1;
        return s with
        {
            Owner = s.Owner.SetItem(r, m.Tgt),
            View = s.View.SetItem(m.Tgt, view),
            Hist = s.Hist.SetItem(m.Tgt, s.Hist[m.Tgt].Add(s.Owned(m.Tgt, view - 1).Add(r))),
            Handoff = s.Handoff.Remove(r),
            Mig = s.Mig.SetItem(r, m with { Phase = MigrationPhase.Pulling }),
            Lineage = s.Lineage.SetItem(r, new Lineage(m.Src, m.Tgt, 4096)),
        };
    }

    [Fact]
    public async Task Initialize_StoresTheDocumentWithTheSpecNames_AndOnlyOnce()
    {
        Assert.Null(await Metadata.ReadAsync());
        Assert.True(await Metadata.InitializeAsync(TwoNodes()));
        Assert.False(await Metadata.InitializeAsync(ClusterState.Empty));

        var read = (await Metadata.ReadAsync())!;
        Assert.Equal("n1", read.State.Owner["r1"]);
        Assert.Equal(1, read.State.View["n2"]);
        Assert.Equal(["r2"], read.State.Owned("n2", 1));
        Assert.Equal("r2", read.State.RangeOfSlot(12000));
        var json = Encoding.UTF8.GetString((await Store.GetAsync(Metadata.StateKey))!.Value.Span);
        Assert.Contains("\"owner\":{\"r1\":\"n1\",\"r2\":\"n2\"}", json);
        Assert.Contains("\"hist\":{\"n1\":[[\"r1\"]],\"n2\":[[\"r2\"]]}", json);
        Assert.Contains("\"mig\":{}", json);
    }

    [Fact]
    public async Task Update_TransferOwnership_PublishesOwnerViewHistMigAndLineageTogether()
    {
        await Metadata.InitializeAsync(TwoNodes() with
        {
            Handoff = ImmutableSortedDictionary<string, Handoff>.Empty.Add("r1", new Handoff("n1", "n2", 2)),
            Mig = ImmutableSortedDictionary<string, RangeMigration>.Empty.Add("r1", new RangeMigration("n1", "n2", MigrationPhase.Prepared, 17)),
        });
        var before = (await Metadata.ReadAsync())!;
        using var cts = new CancellationTokenSource(s_patience);
        var watched = Task.Run(async () =>
        {
            await foreach (var s in Metadata.WatchAsync(before.Revision, cts.Token))
            {
                return s;
            }

            throw new InvalidOperationException("watch ended");
        });

        var update = await Metadata.UpdateAsync(s => TransferOwnership(s, "r1"));

        Assert.True(update.Applied);
        var seen = await watched;
        Assert.Equal(update.Revision, seen.Revision);
        foreach (var s in new[] { update.State, seen.State, (await Metadata.ReadAsync())!.State })
        {
            Assert.Equal("n2", s.Owner["r1"]);
            Assert.Equal(2, s.View["n2"]);
            Assert.Equal(["r1", "r2"], s.Owned("n2", 2));
            Assert.Empty(s.Handoff);
            Assert.Equal(MigrationPhase.Pulling, s.Mig["r1"].Phase);
            Assert.Equal(new Lineage("n1", "n2", 4096), s.Lineage["r1"]);
        }
    }

    [Fact]
    public async Task Update_DecisionSaysNothingToDo_StoresNothing()
    {
        await Metadata.InitializeAsync(TwoNodes());
        var before = (await Metadata.ReadAsync())!;

        var update = await Metadata.UpdateAsync(s => TransferOwnership(s, "r1"));

        Assert.False(update.Applied);
        Assert.Equal(before.Revision, update.Revision);
        Assert.Equal(before.Revision, (await Metadata.ReadAsync())!.Revision);
    }

    [Fact]
    public async Task Update_ConcurrentWriters_EveryDecisionAppliedExactlyOnce()
    {
        await Metadata.InitializeAsync(TwoNodes());
        const int writers = 6;
        const int updatesPerWriter = 5;

        // Each decision is a view change of n1 (a new view with the same ranges); a lost update would
        // leave view[n1] short of the count, or hist out of step with view.
        var updates = await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            var attempts = 0;
            for (var i = 0; i < updatesPerWriter; i++)
            {
                attempts += (await Metadata.UpdateAsync(s => s with
                {
                    View = s.View.SetItem("n1", s.View["n1"] + 1),
                    Hist = s.Hist.SetItem("n1", s.Hist["n1"].Add(s.Owned("n1", s.View["n1"]))),
                })).Attempts;
            }

            return attempts;
        })));

        var final = (await Metadata.ReadAsync())!.State;
        Assert.Equal(1 + (writers * updatesPerWriter), final.View["n1"]);
        Assert.Equal(final.View["n1"], final.Hist["n1"].Count);
        Assert.True(updates.Sum() >= writers * updatesPerWriter);
    }

    [Fact]
    public async Task RegisterNode_IsListedWhileRegistered_AndGoneAfterDispose()
    {
        var n1 = new NodeInfo("n1", "127.0.0.1:7100", "127.0.0.1:6380");
        var registration = await Metadata.RegisterNodeAsync(n1, TimeSpan.FromSeconds(30));
        await using (var n2 = await Metadata.RegisterNodeAsync(new NodeInfo("n2", "127.0.0.1:7101"), TimeSpan.FromSeconds(30)))
        {
            Assert.Equal([n1, new NodeInfo("n2", "127.0.0.1:7101")], await Metadata.ListLiveNodesAsync());
            Assert.Equal(registration.LeaseId, (await Store.GetAsync(Metadata.NodesPrefix + "n1"))!.LeaseId);
        }

        Assert.Equal([n1], await Metadata.ListLiveNodesAsync());
        await registration.DisposeAsync();
        Assert.Empty(await Metadata.ListLiveNodesAsync());
    }
}

/// <summary><see cref="ClusterMetadataContract"/> on the file store, plus lease loss with the fake clock.</summary>
public sealed class FileClusterMetadataTests : ClusterMetadataContract, IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly ManualClock _clock = new();

    /// <inheritdoc/>
    protected override Task<IMetadataStore> CreateStoreAsync() => Task.FromResult<IMetadataStore>(
        new FileMetadataStore(_dir.Path, _clock, new FileMetadataStoreOptions { PollInterval = TimeSpan.FromMilliseconds(10) }));

    /// <inheritdoc/>
    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task RegisterNode_LeaseLost_RegistersAgainWithANewLease()
    {
        await using var registration = await Metadata.RegisterNodeAsync(
            new NodeInfo("n1", "127.0.0.1:7100"), TimeSpan.FromSeconds(10), keepAliveInterval: TimeSpan.FromMilliseconds(50));
        var firstLease = registration.LeaseId;

        _clock.Advance(TimeSpan.FromSeconds(11)); // the process "stalled" past its TTL

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (registration.Registrations < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(2, registration.Registrations);
        Assert.NotEqual(firstLease, registration.LeaseId);
        Assert.Equal(registration.LeaseId, (await Store.GetAsync(Metadata.NodesPrefix + "n1"))!.LeaseId);
        Assert.False(await Store.KeepAliveAsync(firstLease));
    }
}

/// <summary><see cref="ClusterMetadataContract"/> on etcd.</summary>
public sealed class EtcdClusterMetadataTests(EtcdFixture fixture) : ClusterMetadataContract, IClassFixture<EtcdFixture>
{
    /// <inheritdoc/>
    protected override Task<IMetadataStore> CreateStoreAsync() => Task.FromResult<IMetadataStore>(
        new EtcdMetadataStore(fixture.Etcd.ClientUrl, "/test-" + Guid.NewGuid().ToString("N")));
}
