using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

public sealed class ScanTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static List<string> Keys(int n, string prefix = "key:") => Enumerable.Range(0, n).Select(i => $"{prefix}{i}").ToList();

    private static void AssertExactlyOnce(IEnumerable<string> expected, List<(uint Tenant, uint Table, string Key, string Value, ulong Version)> got)
    {
        var dups = got.GroupBy(r => (r.Tenant, r.Table, r.Key)).Where(g => g.Count() > 1).Select(g => g.Key.Key).ToList();
        Assert.True(dups.Count == 0, $"returned more than once: {string.Join(", ", dups.Take(10))}");
        var missing = expected.Except(got.Select(r => r.Key)).ToList();
        Assert.True(missing.Count == 0, $"never returned: {string.Join(", ", missing.Take(10))}");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 7)]
    [InlineData(3, 5)]
    [InlineData(4, 1000)]
    public void Scan_ReturnsEachRangeRecordOnce_AcrossChunksAndPartitions(int partitions, int chunk)
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var s = store.NewSession();
        var keys = Keys(1500);
        foreach (var k in keys)
            s.PutNow(k, "v1:" + k);
        // Superseded versions (some grow, so they move to the tail) must not be returned.
        foreach (var k in keys.Where((_, i) => i % 3 == 0))
            s.PutNow(k, "v2:" + k + new string('x', 40));
        foreach (var k in keys.Where((_, i) => i % 10 == 1))
            s.Delete(1, 1, B(k), 0);

        var got = ScanAll(store, 1000, 9000, partitions, chunk);

        var expected = keys.Where((k, i) => i % 10 != 1 && Slot.Of(B(k)) is >= 1000 and <= 9000).ToList();
        AssertExactlyOnce(expected, got);
        Assert.Equal(expected.Count, got.Count);
        foreach (var r in got)
        {
            int i = int.Parse(r.Key["key:".Length..], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(i % 3 == 0 ? "v2:" + r.Key + new string('x', 40) : "v1:" + r.Key, r.Value);
            Assert.Equal(i % 3 == 0 ? 2UL : 1UL, r.Version);
        }
    }

    [Fact]
    public void Scan_ByteBudget_StopsChunksEarlyWithoutLosingRecords()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var s = store.NewSession();
        var keys = Keys(400);
        foreach (var k in keys)
            s.PutNow(k, new string('v', 100));
        var sink = new ScanCollector();
        using var scanner = store.NewScanner();
        int chunks = 0;
        foreach (var p in store.PlanScan(1))
        {
            for (var c = p; !c.IsDone; chunks++)
                c = scanner.ScanChunk(c, 0, Slot.Count - 1, int.MaxValue, 250, sink);
        }
        Assert.True(chunks >= 100, $"{chunks} chunks");
        AssertExactlyOnce(keys, sink.Records);
    }

    [Fact]
    public void Scan_WhileOtherKeysAreWritten_ReturnsEveryUntouchedKeyOnce()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory, memoryBudget: 1 << 16));
        using var s = store.NewSession();
        var inRange = Keys(1500).Where(k => Slot.Of(B(k)) < 8192).ToList();
        var outside = Keys(1500, "other:").Where(k => Slot.Of(B(k)) >= 8192).ToList();
        foreach (var k in inRange)
            s.PutNow(k, "stable:" + k);
        foreach (var k in outside)
            s.PutNow(k, "x");

        using var stop = new CancellationTokenSource();
        Exception? writerFault = null;
        int n = 0;
        var writer = new Thread(() =>
        {
            using var w = store.NewSession();
            var rnd = new Random(1);
            var sink = new CountingSink();
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    // Updates that grow values (copy to the tail), new keys, and deletes, all outside the range;
                    // plus new keys inside the range (which the scan may or may not return).
                    string k = outside[rnd.Next(outside.Count)];
                    w.Put(1, 1, B(k), B(new string('y', rnd.Next(1, 200))), 0);
                    w.Put(3, 1, B($"new-other-tenant:{n}"), B("n"), 0);
                    if (n % 5 == 0)
                        w.Delete(1, 1, B(outside[rnd.Next(outside.Count)]), 0);
                    w.Put(2, 1, B($"new-inside:{n}"), B("n"), 0);
                    n++;
                    if (w.PendingCount > 0)
                        w.CompletePending(sink, wait: true);
                }
            }
            catch (Exception e)
            {
                writerFault = e;
            }
        });
        writer.Start();
        try
        {
            for (int round = 0; round < 2; round++) // twice: the second scan runs over a log the writer kept changing
            {
                var got = ScanAll(store, 0, 8191, 3, 13).Where(r => r.Tenant == 1).ToList();
                AssertExactlyOnce(inRange, got);
                Assert.Equal(inRange.Count, got.Count);
                Assert.All(got, r => Assert.Equal("stable:" + r.Key, r.Value));
            }
        }
        finally
        {
            stop.Cancel();
            writer.Join();
        }
        Assert.Null(writerFault);
        Assert.True(n > 100, $"the writer made only {n} rounds");
    }

    [Fact]
    public void Scan_CatchUpPlanFromOldEnd_ReturnsKeysWrittenAfterPlanning()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var s = store.NewSession();
        var keys = Keys(200);
        foreach (var k in keys)
            s.PutNow(k, "a");
        var first = store.PlanScan(2);
        long oldEnd = first.Max(c => c.End);
        foreach (var k in keys.Take(50))
            s.PutNow(k, "b-longer-value-moves-the-record-to-the-tail");
        var sink = new ScanCollector();
        using var scanner = store.NewScanner();
        foreach (var p in first.Concat(store.PlanScan(1, oldEnd)))
        {
            for (var c = p; !c.IsDone;)
                c = scanner.ScanChunk(c, 0, Slot.Count - 1, 10, int.MaxValue, sink);
        }
        AssertExactlyOnce(keys, sink.Records);
        Assert.All(sink.Records.Where(r => keys.Take(50).Contains(r.Key)), r => Assert.Equal(2UL, r.Version));
    }

    [Fact]
    public void Scan_ColdRecords_AreReadFromDisk()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory, memoryBudget: 16384));
        using var s = store.NewSession();
        var keys = Keys(2000);
        foreach (var k in keys)
            s.PutNow(k, new string('c', 100));
        Assert.True(store.GetMetrics().LogBytes > 8 * 16384, "the log must be larger than memory");
        var got = ScanAll(store, 0, Slot.Count - 1, 2, 50);
        AssertExactlyOnce(keys, got);
        Assert.All(got, r => Assert.Equal(100, r.Value.Length));
    }

    [Fact]
    public void PlanScan_PartitionsAreContiguousPageAlignedAndCoverTheLog()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var s = store.NewSession();
        Assert.Empty(store.PlanScan(4));
        foreach (var k in Keys(1000))
            s.PutNow(k, new string('p', 60));
        var plan = store.PlanScan(4);
        Assert.InRange(plan.Length, 2, 4);
        for (int i = 1; i < plan.Length; i++)
        {
            Assert.Equal(plan[i - 1].End, plan[i].Next);
            Assert.Equal(0, plan[i].Next % 4096);
        }
        Assert.Equal(plan[^1].End, store.GetMetrics().LogBytes + plan[0].Next);
        Assert.Empty(store.PlanScan(3, from: plan[^1].End));
    }

    [Fact]
    public void ScanChunk_RejectsBadSlotRanges()
    {
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var scanner = store.NewScanner();
        var sink = new ScanCollector();
        var c = new ScanCursor(0, 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => scanner.ScanChunk(c, 5, 4, 10, 100, sink));
        Assert.Throws<ArgumentOutOfRangeException>(() => scanner.ScanChunk(c, 0, Slot.Count, 10, 100, sink));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.DropSlots(-1, 3));
    }
}
