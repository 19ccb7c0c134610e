using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions.Tests;

/// <summary>The shipped examples (aggregate, TAO, read-modify-write) installed and invoked end to end.</summary>
public sealed class ExampleTests
{
    [Fact]
    public void Aggregate_SumsTheFieldOverARangeOfRecords()
    {
        using var h = new Harness();
        h.InstallOk(1, "aggregate", ExtensionExamples.Source("aggregate"));
        long expected = 0;
        for (ulong id = 0; id < 500; id++)
        {
            var value = Bytes.Of(0L, (long)(id * 3) - 100, 7L);
            h.Store.Put(1, 3, BitConverter.GetBytes(id), value);
            if (id is >= 10 and < 410)
            {
                expected += (long)(id * 3) - 100;
            }
        }
        var (status, response, error) = h.Call(1, "aggregate", Bytes.Of(3u, 10UL, 400u, 8));
        Assert.True(status == ExtensionStatus.Ok, error);
        Assert.Equal(expected, Bytes.Int64(response));
        // The range is read in batches of 64 keys (the last one partial), each prefetched by the store in 32s.
        Assert.Equal(13, h.Store.Prefetches);
    }

    [Fact]
    public void AggregateKeys_SumsWithTheVectorisedHelper_SkippingMissingAndShortRecords()
    {
        using var h = new Harness();
        h.InstallOk(1, "aggregate", ExtensionExamples.Source("aggregate"));
        var keys = new List<byte>();
        long expected = 0;
        for (var id = 0; id < 300; id++)
        {
            var key = BitConverter.GetBytes((ulong)id);
            keys.AddRange(key);
            if (id % 7 == 0)
            {
                continue; // absent
            }
            if (id % 11 == 0)
            {
                h.Store.Put(1, 3, key, [1, 2, 3]); // too short for the field
                continue;
            }
            h.Store.Put(1, 3, key, Bytes.Of(id * 1000L, 5L));
            expected += id * 1000L;
        }
        var (status, response, error) = h.Call(1, "aggregate.keys", Bytes.Of(3u, 8, 0, keys.ToArray()));
        Assert.True(status == ExtensionStatus.Ok, error);
        Assert.Equal(expected, Bytes.Int64(response));
        Assert.Equal(10, h.Store.Prefetches); // 300 keys, prefetched 32 at a time
    }

    [Fact]
    public void AggregateList_SumsOverTheKeysStoredUnderTheListKey_AndRefusesAMissingOrRaggedList()
    {
        using var h = new Harness();
        h.InstallOk(1, "aggregate", ExtensionExamples.Source("aggregate"));
        var keys = new List<byte>();
        long expected = 0;
        for (var id = 0; id < 100; id++)
        {
            var key = BitConverter.GetBytes((ulong)(1000 + id));
            keys.AddRange(key);
            h.Store.Put(1, 3, key, Bytes.Of(9L, id * 7L));
            expected += id * 7L;
        }
        h.Store.Put(1, 3, "list:1"u8, keys.ToArray());
        h.Store.Put(1, 3, "ragged"u8, keys.Take(13).ToArray());

        var (status, response, error) = h.Call(1, "aggregate.list", Bytes.Of(3u, 8, 8, "list:1"u8.ToArray()));
        Assert.True(status == ExtensionStatus.Ok, error);
        Assert.Equal(expected, Bytes.Int64(response));
        Assert.Equal(4, h.Store.Prefetches); // the list's 100 keys, prefetched 32 at a time

        var missing = h.Call(1, "aggregate.list", Bytes.Of(3u, 8, 8, "list:2"u8.ToArray()));
        Assert.Equal(ExtensionStatus.Faulted, missing.Status);
        Assert.Contains("no key list under that key", missing.Error, StringComparison.Ordinal);
        var ragged = h.Call(1, "aggregate.list", Bytes.Of(3u, 8, 8, "ragged"u8.ToArray()));
        Assert.Equal(ExtensionStatus.Faulted, ragged.Status);
        Assert.Contains("not a multiple of the key size", ragged.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Rmw_IncrementsEveryKeyAndReturnsTheNewValues()
    {
        using var h = new Harness();
        h.InstallOk(1, "rmw", ExtensionExamples.Source("rmw"));
        h.Store.Put(1, 4, "aaaa"u8, Bytes.Of(40L, 99L));
        var first = h.Call(1, "rmw", Bytes.Of(4u, 2L, 4u, "aaaabbbb"u8.ToArray()));
        Assert.True(first.Status == ExtensionStatus.Ok, first.Error);
        Assert.Equal(42, Bytes.Int64(first.Response, 0));
        Assert.Equal(2, Bytes.Int64(first.Response, 8));
        var second = h.Call(1, "rmw", Bytes.Of(4u, 5L, 4u, "bbbb"u8.ToArray()));
        Assert.Equal(7, Bytes.Int64(second.Response, 0));
        h.Store.TryGet(1, 4, "aaaa"u8, out var a);
        Assert.Equal(Bytes.Of(42L, 99L), a.ToArray()); // the rest of the record is preserved
    }

    [Fact]
    public void Loop_ComputesItsResult_OverManySlices()
    {
        // The CPU budget is wall-clock time (20 ms by default): raised, so a busy machine cannot end the loop early.
        using var h = new Harness(new ExtensionHostOptions { Limits = new ExtensionLimits { Slice = TimeSpan.FromMicroseconds(20), Cpu = TimeSpan.FromSeconds(30) } });
        h.InstallOk(1, "loop", ExtensionExamples.Source("loop"));
        const long n = 1_000_000;
        long expected = 1;
        for (long i = 0; i < n; i++)
        {
            expected += i ^ (expected >> 3);
        }
        var (status, response, error) = h.Call(1, "loop", Bytes.Of(n));
        Assert.True(status == ExtensionStatus.Ok, error);
        Assert.Equal(expected, Bytes.Int64(response));
        Assert.True(h.Scheduler.Steps > 10, $"{h.Scheduler.Steps} steps: the loop was not preempted");
    }

    [Fact]
    public void Tao_ObjectsAndAssociations_FollowTheTaoApi()
    {
        using var h = new Harness();
        var install = h.Host.Install(9, "tao", ExtensionExamples.Source("tao"));
        Assert.True(install.Success, string.Join("\n", install.Errors));
        Assert.Equal(["tao.assoc_add", "tao.assoc_count", "tao.assoc_get", "tao.assoc_range", "tao.obj_get", "tao.obj_put"], install.Names.Order());

        Assert.Equal(ExtensionStatus.Ok, h.Call(9, "tao.obj_put", Bytes.Of(42UL, "alice"u8.ToArray())).Status);
        Assert.Equal("alice"u8.ToArray(), h.Call(9, "tao.obj_get", Bytes.Of(42UL)).Response);
        Assert.Empty(h.Call(9, "tao.obj_get", Bytes.Of(43UL)).Response);

        const ushort Friend = 1;
        Assert.Equal(1, Bytes.Int64(h.Call(9, "tao.assoc_add", Bytes.Of(42UL, Friend, 7UL, 100UL, 70UL)).Response));
        Assert.Equal(2, Bytes.Int64(h.Call(9, "tao.assoc_add", Bytes.Of(42UL, Friend, 8UL, 300UL, 80UL)).Response));
        Assert.Equal(3, Bytes.Int64(h.Call(9, "tao.assoc_add", Bytes.Of(42UL, Friend, 9UL, 200UL, 90UL)).Response));
        Assert.Equal(3, Bytes.Int64(h.Call(9, "tao.assoc_add", Bytes.Of(42UL, Friend, 7UL, 400UL, 71UL)).Response)); // replaces id2 = 7
        Assert.Equal(3, Bytes.Int64(h.Call(9, "tao.assoc_count", Bytes.Of(42UL, Friend)).Response));
        Assert.Equal(0, Bytes.Int64(h.Call(9, "tao.assoc_count", Bytes.Of(42UL, (ushort)2)).Response));

        var range = h.Call(9, "tao.assoc_range", Bytes.Of(42UL, Friend, 0u, 10u)).Response;
        Assert.Equal([7L, 8L, 9L], Enumerable.Range(0, range.Length / 24).Select(i => Bytes.Int64(range, i * 24)));
        Assert.Equal([400L, 300L, 200L], Enumerable.Range(0, range.Length / 24).Select(i => Bytes.Int64(range, (i * 24) + 8)));
        var page = h.Call(9, "tao.assoc_range", Bytes.Of(42UL, Friend, 1u, 1u)).Response;
        Assert.Equal(8L, Bytes.Int64(page));
        Assert.Equal(24, page.Length);

        var get = h.Call(9, "tao.assoc_get", Bytes.Of(42UL, Friend, 9UL)).Response;
        Assert.Equal(Bytes.Of(9UL, 200UL, 90UL), get);
        Assert.Empty(h.Call(9, "tao.assoc_get", Bytes.Of(42UL, Friend, 5UL)).Response);
    }

    [Fact]
    public void Tao_KeysOfAnObjectAndItsAssociations_ShareOneRedisTag()
    {
        using var h = new Harness();
        var tagged = new List<byte[]>();
        var store = new RecordingStore(h.Store, tagged);
        using var host = new ExtensionHost(new ExtensionHostOptions(), startWatchdog: false);
        var sink = new ResultSink();
        var scheduler = host.CreateScheduler(store, sink);
        Assert.True(host.Install(9, "tao", ExtensionExamples.Source("tao")).Success);
        scheduler.Invoke(9, "tao.obj_put", Bytes.Of(0xABCDUL, "x"u8.ToArray()), 1);
        scheduler.Invoke(9, "tao.assoc_add", Bytes.Of(0xABCDUL, (ushort)3, 1UL, 1UL, 1UL), 2);
        var tags = tagged.Select(k => System.Text.Encoding.ASCII.GetString(k)).Select(k => k[..(k.IndexOf('}') + 1)]).Distinct().ToList();
        Assert.Equal(["{000000000000abcd}"], tags);
    }

    private sealed class RecordingStore(IExtensionStore inner, List<byte[]> keys) : IExtensionStore
    {
        public bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
        {
            keys.Add(key.ToArray());
            return inner.TryGet(tenant, table, key, out value);
        }

        public void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
        {
            keys.Add(key.ToArray());
            inner.Put(tenant, table, key, value);
        }

        public bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key) => inner.Delete(tenant, table, key);
    }
}
