using System.Collections.Concurrent;
using System.Text;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// The behaviour every <see cref="IMetadataStore"/> must have. Each implementation's test class derives
/// from this one, so the file store and etcd are held to exactly the same assertions.
/// </summary>
public abstract class MetadataStoreContract : IAsyncLifetime
{
    /// <summary>Upper bound on waiting for something asynchronous (etcd lease expiry, watch delivery).</summary>
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    /// <summary>The store under test, fresh (empty) for every test.</summary>
    protected IMetadataStore Store { get; private set; } = null!;

    /// <summary>TTL of the leases the lease tests grant.</summary>
    protected virtual TimeSpan LeaseTtl => TimeSpan.FromSeconds(3);

    /// <summary>Creates an empty store for one test.</summary>
    protected abstract Task<IMetadataStore> CreateStoreAsync();

    /// <summary>Lets <paramref name="time"/> pass for the store's lease clock (fake or real).</summary>
    protected abstract Task ElapseAsync(TimeSpan time);

    /// <inheritdoc/>
    public virtual async Task InitializeAsync() => Store = await CreateStoreAsync();

    /// <inheritdoc/>
    public virtual async Task DisposeAsync() => await Store.DisposeAsync();

    /// <summary>UTF-8 bytes of a string.</summary>
    protected static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>The entry's value as a string.</summary>
    protected static string Text(MetadataEntry? entry) =>
        entry is null ? "<absent>" : Encoding.UTF8.GetString(entry.Value.Span);

    /// <summary>Polls <paramref name="condition"/> until it holds or <see cref="Patience"/> runs out.</summary>
    protected static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            if (await condition())
            {
                return true;
            }

            await Task.Delay(100);
        }

        return await condition();
    }

    [Fact]
    public async Task CompareAndSwap_ExpectedRevision_AppliesOnlyWhenItMatches()
    {
        var created = await Store.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("v1"));
        Assert.True(created.Succeeded);
        Assert.True(created.Revision > 0);

        var again = await Store.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("other"));
        Assert.False(again.Succeeded);
        Assert.Equal("v1", Text(again.Current));
        Assert.Equal(created.Revision, again.Current!.Revision);

        var updated = await Store.CompareAndSwapAsync("/k", created.Revision, Bytes("v2"));
        Assert.True(updated.Succeeded);
        Assert.True(updated.Revision > created.Revision);

        var stale = await Store.CompareAndSwapAsync("/k", created.Revision, Bytes("v3"));
        Assert.False(stale.Succeeded);
        Assert.Equal("v2", Text(stale.Current));
        Assert.Equal(updated.Revision, stale.Current!.Revision);

        var read = await Store.GetAsync("/k");
        Assert.Equal("v2", Text(read));
        Assert.Equal(updated.Revision, read!.Revision);
        Assert.Equal(0, read.LeaseId);

        var missing = await Store.CompareAndSwapAsync("/missing", updated.Revision, Bytes("x"));
        Assert.False(missing.Succeeded);
        Assert.Null(missing.Current);
        Assert.Null(await Store.GetAsync("/missing"));

        var blind = await Store.CompareAndSwapAsync("/k", MetadataRevision.Any, Bytes("v4"));
        Assert.True(blind.Succeeded);
        Assert.Equal("v4", Text(await Store.GetAsync("/k")));
    }

    [Fact]
    public async Task CompareAndSwapMany_OneFailingCompare_ChangesNothing()
    {
        var a = await Store.CompareAndSwapAsync("/owner/r1", MetadataRevision.Absent, Bytes("n1"));
        var b = await Store.CompareAndSwapAsync("/view/n1", MetadataRevision.Absent, Bytes("1"));

        var result = await Store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put("/owner/r1", a.Revision, Bytes("n2")),
            MetadataOp.Delete("/view/n1", b.Revision),
            MetadataOp.Put("/lineage/r1", MetadataRevision.Absent, Bytes("n1->n2")),
            MetadataOp.Check("/view/n2", b.Revision), // absent, so this comparison fails
        ]);

        Assert.False(result.Succeeded);
        Assert.Equal(4, result.Current.Count);
        Assert.Equal("n1", Text(result.Current[0]));
        Assert.Equal(b.Revision, result.Current[1]!.Revision);
        Assert.Null(result.Current[2]);
        Assert.Null(result.Current[3]);

        Assert.Equal("n1", Text(await Store.GetAsync("/owner/r1")));
        Assert.Equal(a.Revision, (await Store.GetAsync("/owner/r1"))!.Revision);
        Assert.Equal("1", Text(await Store.GetAsync("/view/n1")));
        Assert.Null(await Store.GetAsync("/lineage/r1"));
        Assert.Equal(2, (await Store.ListAsync("/")).Count);
    }

    [Fact]
    public async Task CompareAndSwapMany_AllComparesHold_AppliesEveryOperationAtOneRevision()
    {
        var owner = await Store.CompareAndSwapAsync("/owner/r1", MetadataRevision.Absent, Bytes("n1"));
        var handoff = await Store.CompareAndSwapAsync("/handoff/r1", MetadataRevision.Absent, Bytes("n1->n2"));
        var config = await Store.CompareAndSwapAsync("/config", MetadataRevision.Absent, Bytes("c"));

        var result = await Store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put("/owner/r1", owner.Revision, Bytes("n2")),
            MetadataOp.Put("/lineage/r1", MetadataRevision.Absent, Bytes("n1->n2")),
            MetadataOp.Delete("/handoff/r1", handoff.Revision),
            MetadataOp.Check("/config", config.Revision),
        ]);

        Assert.True(result.Succeeded);
        Assert.True(result.Revision > config.Revision);
        var newOwner = await Store.GetAsync("/owner/r1");
        var lineage = await Store.GetAsync("/lineage/r1");
        Assert.Equal("n2", Text(newOwner));
        Assert.Equal("n1->n2", Text(lineage));
        Assert.Equal(result.Revision, newOwner!.Revision);
        Assert.Equal(result.Revision, lineage!.Revision);
        Assert.Null(await Store.GetAsync("/handoff/r1"));
        Assert.Equal(config.Revision, (await Store.GetAsync("/config"))!.Revision);
    }

    [Fact]
    public async Task CompareAndSwapMany_OnlyAChecks_ReturnsTheCurrentRevision_AndWritesNothing()
    {
        // What a node lists a metadata folder with: the store's revision now, even for an absent key (MetadataFolder).
        CasResult a = await Store.CompareAndSwapAsync("/a", MetadataRevision.Absent, Bytes("1"));
        CasResult b = await Store.CompareAndSwapAsync("/b", MetadataRevision.Absent, Bytes("2"));
        TxnResult check = await Store.CompareAndSwapManyAsync([MetadataOp.Check("/absent", MetadataRevision.Any)]);
        Assert.True(check.Succeeded);
        Assert.Equal(b.Revision, check.Revision);
        Assert.True(b.Revision > a.Revision);
        TxnResult again = await Store.CompareAndSwapManyAsync([MetadataOp.Check("/a", MetadataRevision.Any)]);
        Assert.Equal(b.Revision, again.Revision);   // no revision of its own
        Assert.Null(await Store.GetAsync("/absent"));
    }

    [Fact]
    public async Task CompareAndSwapMany_RepeatedKey_IsRejected()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Store.CompareAndSwapManyAsync(
        [
            MetadataOp.Put("/a", MetadataRevision.Any, Bytes("1")),
            MetadataOp.Put("/a", MetadataRevision.Any, Bytes("2")),
        ]));
        Assert.Null(await Store.GetAsync("/a"));
    }

    [Fact]
    public async Task CompareAndSwapMany_AtTheOperationLimit_Applies_AndBeyondIsRejected()
    {
        var ops = Enumerable.Range(0, MetadataOp.MaxPerTransaction)
            .Select(i => MetadataOp.Put($"/many/{i:D3}", MetadataRevision.Absent, Bytes("x")))
            .ToArray();

        Assert.True((await Store.CompareAndSwapManyAsync(ops)).Succeeded);
        Assert.Equal(MetadataOp.MaxPerTransaction, (await Store.ListAsync("/many/")).Count);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.CompareAndSwapManyAsync(
            [.. ops, MetadataOp.Put("/many/extra", MetadataRevision.Absent, Bytes("x"))]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.CompareAndSwapManyAsync([]));
        Assert.Null(await Store.GetAsync("/many/extra"));
    }

    [Fact]
    public async Task Delete_RequiresTheCurrentRevision()
    {
        var first = await Store.CompareAndSwapAsync("/d", MetadataRevision.Absent, Bytes("1"));
        var second = await Store.CompareAndSwapAsync("/d", first.Revision, Bytes("2"));

        var stale = await Store.DeleteAsync("/d", first.Revision);
        Assert.False(stale.Succeeded);
        Assert.Equal("2", Text(stale.Current));

        var deleted = await Store.DeleteAsync("/d", second.Revision);
        Assert.True(deleted.Succeeded);
        Assert.True(deleted.Revision > second.Revision);
        Assert.Null(await Store.GetAsync("/d"));

        var gone = await Store.DeleteAsync("/d", MetadataRevision.Any);
        Assert.False(gone.Succeeded);
        Assert.Null(gone.Current);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.DeleteAsync("/d", MetadataRevision.Absent));

        var recreated = await Store.CompareAndSwapAsync("/d", MetadataRevision.Absent, Bytes("3"));
        Assert.True(recreated.Succeeded);
        Assert.True(recreated.Revision > deleted.Revision);
    }

    [Fact]
    public async Task List_ReturnsOnlyKeysUnderThePrefix_InKeyOrder()
    {
        foreach (var key in new[] { "/nodes/b", "/nodes/a", "/nodesx", "/other", "/nodes/c/sub" })
        {
            Assert.True((await Store.CompareAndSwapAsync(key, MetadataRevision.Absent, Bytes(key))).Succeeded);
        }

        var listed = await Store.ListAsync("/nodes/");

        Assert.Equal(["/nodes/a", "/nodes/b", "/nodes/c/sub"], listed.Select(e => e.Key));
        Assert.All(listed, e => Assert.Equal(e.Key, Text(e)));
        Assert.Empty(await Store.ListAsync("/none/"));
        Assert.Equal(5, (await Store.ListAsync("/")).Count);
    }

    [Fact]
    public async Task Watch_FromARevision_SeesEveryLaterChangeUnderThePrefix_InOrder()
    {
        var start = await Store.CompareAndSwapAsync("/w/seed", MetadataRevision.Absent, Bytes("0"));
        using var cts = new CancellationTokenSource(Patience);
        var seen = new List<WatchEvent>();
        var watching = Task.Run(async () =>
        {
            await foreach (var e in Store.WatchAsync("/w/", start.Revision, cts.Token))
            {
                seen.Add(e);
                if (seen.Count == 4)
                {
                    break;
                }
            }
        });

        var a1 = await Store.CompareAndSwapAsync("/w/a", MetadataRevision.Absent, Bytes("1"));
        await Store.CompareAndSwapAsync("/elsewhere", MetadataRevision.Absent, Bytes("x"));
        var a2 = await Store.CompareAndSwapAsync("/w/a", a1.Revision, Bytes("2"));
        var del = await Store.DeleteAsync("/w/a", a2.Revision);
        var b = await Store.CompareAndSwapAsync("/w/b", MetadataRevision.Absent, Bytes("3"));
        await watching;

        Assert.Equal(
            [
                (WatchEventKind.Put, "/w/a", "1", a1.Revision),
                (WatchEventKind.Put, "/w/a", "2", a2.Revision),
                (WatchEventKind.Delete, "/w/a", "", del.Revision),
                (WatchEventKind.Put, "/w/b", "3", b.Revision),
            ],
            seen.Select(e => (e.Kind, e.Key, Encoding.UTF8.GetString(e.Value.Span), e.Revision)));
    }

    [Fact]
    public async Task Lease_Expiry_RemovesOnlyTheBoundEntries()
    {
        var lease = await Store.GrantLeaseAsync(LeaseTtl);
        Assert.True((await Store.CompareAndSwapAsync("/nodes/n1", MetadataRevision.Absent, Bytes("a"), lease)).Succeeded);
        var config = await Store.CompareAndSwapAsync("/config", MetadataRevision.Absent, Bytes("c"));
        Assert.True(config.Succeeded);
        Assert.Equal(lease, (await Store.GetAsync("/nodes/n1"))!.LeaseId);

        await ElapseAsync(LeaseTtl + TimeSpan.FromSeconds(1));

        Assert.True(await EventuallyAsync(async () => await Store.GetAsync("/nodes/n1") is null));
        using var cts = new CancellationTokenSource(Patience);
        await using var watch = Store.WatchAsync("/nodes/", config.Revision, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await watch.MoveNextAsync());
        Assert.Equal((WatchEventKind.Delete, "/nodes/n1"), (watch.Current.Kind, watch.Current.Key));
        Assert.True(watch.Current.Revision > config.Revision);
        Assert.Empty(await Store.ListAsync("/nodes/"));
        Assert.Equal("c", Text(await Store.GetAsync("/config")));
        Assert.False(await Store.KeepAliveAsync(lease));
        await Assert.ThrowsAsync<MetadataLeaseNotFoundException>(
            () => Store.CompareAndSwapAsync("/nodes/n1", MetadataRevision.Any, Bytes("b"), lease));
        Assert.Null(await Store.GetAsync("/nodes/n1"));
    }

    [Fact]
    public async Task Lease_KeepAlive_RestartsTheTtl()
    {
        var lease = await Store.GrantLeaseAsync(LeaseTtl);
        await Store.CompareAndSwapAsync("/nodes/n1", MetadataRevision.Absent, Bytes("a"), lease);

        await ElapseAsync(LeaseTtl / 2);
        Assert.True(await Store.KeepAliveAsync(lease));
        await ElapseAsync(LeaseTtl * 0.6);

        // 1.1 TTL after the grant, 0.6 TTL after the keep-alive: still alive.
        Assert.Equal("a", Text(await Store.GetAsync("/nodes/n1")));
        await Store.RevokeLeaseAsync(lease);
    }

    [Fact]
    public async Task Lease_Revoke_DeletesBoundEntriesAtOnce()
    {
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromSeconds(60));
        await Store.CompareAndSwapAsync("/nodes/n1", MetadataRevision.Absent, Bytes("a"), lease);
        await Store.CompareAndSwapManyAsync([MetadataOp.Put("/nodes/n1/extra", MetadataRevision.Absent, Bytes("b"), lease)]);

        await Store.RevokeLeaseAsync(lease);

        Assert.Empty(await Store.ListAsync("/nodes/"));
        Assert.False(await Store.KeepAliveAsync(lease));
        await Store.RevokeLeaseAsync(lease); // revoking twice is a no-op
    }

    [Fact]
    public async Task ConcurrentCompareAndSwap_ManyTasks_LoseNoUpdate()
    {
        const int tasks = 6;
        const int incrementsPerTask = 20;
        var revisions = new ConcurrentBag<long>();

        await Task.WhenAll(Enumerable.Range(0, tasks).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < incrementsPerTask; i++)
            {
                revisions.Add((await Counter.IncrementAsync(Store, "/counter")).Revision);
            }
        })));

        Assert.Equal(tasks * incrementsPerTask, Counter.Decode(await Store.GetAsync("/counter")));
        Assert.Equal(tasks * incrementsPerTask, revisions.Distinct().Count());
    }

    [Fact]
    public async Task ConcurrentCompareAndSwap_SameExpectedRevision_ExactlyOneWinnerPerRound()
    {
        const int rounds = 8;
        const int contenders = 6;
        await Store.CompareAndSwapAsync("/leader", MetadataRevision.Absent, Bytes("none"));

        for (var round = 0; round < rounds; round++)
        {
            var current = (await Store.GetAsync("/leader"))!;
            var results = await Task.WhenAll(Enumerable.Range(0, contenders).Select(id => Task.Run(
                () => Store.CompareAndSwapAsync("/leader", current.Revision, Bytes($"{round}:{id}")))));

            var winners = results.Select((r, id) => (r, id)).Where(x => x.r.Succeeded).ToArray();
            var winner = Assert.Single(winners);
            Assert.Equal($"{round}:{winner.id}", Text(await Store.GetAsync("/leader")));
            Assert.All(results.Where(r => !r.Succeeded), r => Assert.True(r.Current!.Revision > current.Revision));
        }
    }
}
