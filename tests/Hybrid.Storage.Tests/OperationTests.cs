using System.Buffers;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

public sealed class OperationTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FasterKvStore _store;
    private readonly IKvSession _s;

    public OperationTests()
    {
        _store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        _s = _store.NewSession();
    }

    public void Dispose()
    {
        _s.Dispose();
        _store.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Get_Absent_NotFound() => Assert.Equal(StoreStatus.NotFound, _s.GetNow("nope").Result.Status);

    [Fact]
    public void Put_ThenGet_ReturnsValueAndVersion()
    {
        var put = _s.PutNow("k", "hello");
        Assert.Equal(StoreStatus.Ok, put.Status);
        Assert.Equal(1UL, put.Version);
        var (get, value) = _s.GetNow("k");
        Assert.Equal(StoreStatus.Ok, get.Status);
        Assert.Equal("hello", value);
        Assert.Equal(1UL, get.Version);
        Assert.Equal(5, get.ValueLength);
    }

    [Fact]
    public void Put_Overwrite_VersionGrowsAndValueChangesSize()
    {
        _s.PutNow("k", "a");
        Assert.Equal(2UL, _s.PutNow("k", new string('x', 300)).Version);
        Assert.Equal(new string('x', 300), _s.GetNow("k").Value);
        Assert.Equal(3UL, _s.PutNow("k", "bc").Version);
        Assert.Equal("bc", _s.GetNow("k").Value);
    }

    [Fact]
    public void Delete_WritesVersionedTombstone()
    {
        _s.PutNow("k", "v");                                     // v1
        var del = _s.Delete(1, 1, B("k"), 0);
        Assert.Equal(StoreStatus.Ok, del.Status);
        Assert.Equal(2UL, del.Version);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("k").Result.Status);
        var again = _s.Delete(1, 1, B("k"), 0);
        Assert.Equal(StoreStatus.NotFound, again.Status);
        Assert.Equal(3UL, again.Version);
        Assert.Equal(4UL, _s.PutNow("k", "back").Version);      // versions never go back after a delete
        Assert.Equal("back", _s.GetNow("k").Value);
    }

    [Fact]
    public void Delete_Absent_StillWritesTombstoneWithVersion()
    {
        _store.RaiseVersionFloor(10);
        var del = _s.Delete(1, 1, B("never"), 0);
        Assert.Equal(StoreStatus.NotFound, del.Status);
        Assert.Equal(11UL, del.Version);
        Assert.Equal(StoreStatus.Stale, _s.ApplyPulled(1, 1, B("never"), B("old"), 5, 0).Status);
    }

    [Fact]
    public void PutIfVersion_ZeroMeansMustNotExist()
    {
        Assert.Equal(StoreStatus.Ok, _s.PutIfVersion(1, 1, B("k"), B("a"), 0, 0).Status);
        var mismatch = _s.PutIfVersion(1, 1, B("k"), B("b"), 0, 0);
        Assert.Equal(StoreStatus.VersionMismatch, mismatch.Status);
        Assert.Equal(1UL, mismatch.Version);
        Assert.Equal("a", _s.GetNow("k").Value);
    }

    [Fact]
    public void PutIfVersion_MatchesOnlyCurrentVersion()
    {
        _s.PutNow("k", "a");
        Assert.Equal(StoreStatus.VersionMismatch, _s.PutIfVersion(1, 1, B("k"), B("b"), 7, 0).Status);
        var ok = _s.PutIfVersion(1, 1, B("k"), B("b"), 1, 0);
        Assert.Equal(StoreStatus.Ok, ok.Status);
        Assert.Equal(2UL, ok.Version);
        Assert.Equal(StoreStatus.VersionMismatch, _s.PutIfVersion(1, 1, B("missing"), B("b"), 1, 0).Status);
        _s.Delete(1, 1, B("k"), 0);
        Assert.Equal(StoreStatus.Ok, _s.PutIfVersion(1, 1, B("k"), B("c"), 0, 0).Status);
    }

    [Fact]
    public void PutIfAbsent_And_PutIfExists()
    {
        Assert.Equal(StoreStatus.NotFound, _s.PutIfExists(1, 1, B("k"), B("x"), 0).Status);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("k").Result.Status);
        Assert.Equal(StoreStatus.Ok, _s.PutIfAbsent(1, 1, B("k"), B("a"), 0).Status);
        Assert.Equal(StoreStatus.Exists, _s.PutIfAbsent(1, 1, B("k"), B("b"), 0).Status);
        Assert.Equal("a", _s.GetNow("k").Value);
        Assert.Equal(StoreStatus.Ok, _s.PutIfExists(1, 1, B("k"), B("c"), 0).Status);
        Assert.Equal("c", _s.GetNow("k").Value);
    }

    [Fact]
    public void Increment_RedisSemantics()
    {
        var first = _s.Increment(1, 1, B("n"), 5, 0);
        Assert.Equal(StoreStatus.Ok, first.Status);
        Assert.Equal(5, first.Number);
        Assert.Equal(-95, _s.Increment(1, 1, B("n"), -100, 0).Number);
        Assert.Equal("-95", _s.GetNow("n").Value);
        Assert.Equal(9905, _s.Increment(1, 1, B("n"), 10000, 0).Number);
        Assert.Equal("9905", _s.GetNow("n").Value);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("007")]
    [InlineData("+5")]
    [InlineData(" 5")]
    [InlineData("-0")]
    [InlineData("")]
    [InlineData("99999999999999999999")]
    public void Increment_NotAnInteger_LeavesValue(string stored)
    {
        _s.PutNow("n", stored);
        Assert.Equal(StoreStatus.NotAnInteger, _s.Increment(1, 1, B("n"), 1, 0).Status);
        Assert.Equal(stored, _s.GetNow("n").Value);
    }

    [Fact]
    public void Increment_Overflow_LeavesValue()
    {
        _s.PutNow("n", long.MaxValue.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(StoreStatus.Overflow, _s.Increment(1, 1, B("n"), 1, 0).Status);
        Assert.Equal(long.MinValue + 1, _s.Increment(1, 1, B("m"), long.MinValue + 1, 0).Number);
        Assert.Equal(StoreStatus.Overflow, _s.Increment(1, 1, B("m"), -2, 0).Status);
    }

    [Fact]
    public void Append_CreatesAndExtends()
    {
        Assert.Equal(3, _s.Append(1, 1, B("a"), B("abc"), 0).ValueLength);
        Assert.Equal(6, _s.Append(1, 1, B("a"), B("def"), 0).ValueLength);
        Assert.Equal("abcdef", _s.GetNow("a").Value);
        var big = new byte[1019]; // 6 + 1019 > MaxValueBytes (1024)
        Assert.Equal(StoreStatus.ValueTooLarge, _s.Append(1, 1, B("a"), big, 0).Status);
        Assert.Equal("abcdef", _s.GetNow("a").Value);
    }

    [Fact]
    public void Limits_KeyAndValueTooLarge()
    {
        Assert.Equal(StoreStatus.KeyTooLarge, _s.Put(1, 1, new byte[257], B("v"), 0).Status);
        Assert.Equal(StoreStatus.KeyTooLarge, _s.Get(1, 1, new byte[257], new ArrayBufferWriter<byte>(), 0).Status);
        Assert.Equal(StoreStatus.ValueTooLarge, _s.Put(1, 1, B("k"), new byte[1025], 0).Status);
        Assert.Equal(StoreStatus.Ok, _s.Put(1, 1, new byte[256], new byte[1024], 0).Status);
    }

    [Fact]
    public void TenantsAndTables_AreSeparate()
    {
        _s.PutNow("k", "t1", tenant: 1, table: 1);
        _s.PutNow("k", "t2", tenant: 2, table: 1);
        _s.PutNow("k", "t1b", tenant: 1, table: 2);
        Assert.Equal("t1", _s.GetNow("k", 1, 1).Value);
        Assert.Equal("t2", _s.GetNow("k", 2, 1).Value);
        Assert.Equal("t1b", _s.GetNow("k", 1, 2).Value);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("k", 3, 1).Result.Status);
    }

    [Fact]
    public void MultiGet_HandsEachKeyToSink()
    {
        _s.PutNow("a", "1");
        _s.PutNow("c", "3");
        var sink = new CollectingSink();
        ReadOnlyMemory<byte>[] keys = [B("a"), B("b"), B("c")];
        Assert.Equal(0, _s.MultiGet(1, 1, keys, 100, sink));
        Assert.Equal("1", System.Text.Encoding.UTF8.GetString(sink.Results[100].Value));
        Assert.Equal(StoreStatus.NotFound, sink.Results[101].Result.Status);
        Assert.Equal("3", System.Text.Encoding.UTF8.GetString(sink.Results[102].Value));
    }

    [Fact]
    public void VersionFloor_RaisesLaterVersions_NeverLowers()
    {
        _s.PutNow("k", "a");
        _store.RaiseVersionFloor(100);
        Assert.Equal(101UL, _s.PutNow("k", "b").Version);
        Assert.Equal(101UL, _s.PutNow("fresh", "b").Version);
        _store.RaiseVersionFloor(50);
        Assert.Equal(102UL, _s.PutNow("k", "c").Version);
        Assert.Equal(102UL, _store.MaxVersion);
    }

    [Fact]
    public void MaxVersion_CoversAllSessionsAndClosedOnes()
    {
        using (var other = _store.NewSession())
        {
            for (int i = 0; i < 5; i++)
                other.PutNow("x", "v");
        }
        _s.PutNow("y", "v");
        Assert.Equal(5UL, _store.MaxVersion);
    }

    [Fact]
    public void ApplyPulled_NeverOverwritesNewer()
    {
        Assert.Equal(StoreStatus.Ok, _s.ApplyPulled(1, 1, B("k"), B("pulled"), 40, 0).Status);
        var (get, value) = _s.GetNow("k");
        Assert.Equal(("pulled", 40UL), (value, get.Version));
        Assert.Equal(StoreStatus.Stale, _s.ApplyPulled(1, 1, B("k"), B("older"), 39, 0).Status);
        Assert.Equal(StoreStatus.Stale, _s.ApplyPulled(1, 1, B("k"), B("same"), 40, 0).Status);
        Assert.Equal(StoreStatus.Ok, _s.ApplyPulled(1, 1, B("k"), B("newer"), 41, 0).Status);
        Assert.Equal("newer", _s.GetNow("k").Value);
        Assert.True(_store.MaxVersion >= 41);
    }

    [Fact]
    public void ApplyPulled_AfterTargetWrite_IsStale()
    {
        // Migration: the target raised its floor above the source's max version, then a client wrote the key.
        _store.RaiseVersionFloor(500);
        _s.PutNow("k", "target-write");
        Assert.Equal(StoreStatus.Stale, _s.ApplyPulled(1, 1, B("k"), B("source"), 499, 0).Status);
        Assert.Equal("target-write", _s.GetNow("k").Value);
    }

    [Fact]
    public void ApplyPulled_CannotResurrectKeyDeletedAtTarget()
    {
        _store.RaiseVersionFloor(500);
        _s.ApplyPulled(1, 1, B("k"), B("source"), 300, 0);
        Assert.Equal(StoreStatus.Ok, _s.Delete(1, 1, B("k"), 0).Status);
        Assert.Equal(StoreStatus.Stale, _s.ApplyPulled(1, 1, B("k"), B("source"), 300, 0).Status);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("k").Result.Status);
    }

    [Fact]
    public void TenantBytes_TrackLiveData()
    {
        Assert.Equal(0, _store.TenantBytes(9));
        _s.PutNow("key", "0123456789", tenant: 9);
        long one = _store.TenantBytes(9);
        Assert.True(one >= 13, $"{one}");
        _s.PutNow("key", new string('x', 500), tenant: 9);
        Assert.Equal(one + 490, _store.TenantBytes(9));
        _s.Append(9, 1, B("key"), B("yy"), 0);
        Assert.Equal(one + 492, _store.TenantBytes(9));
        _s.Increment(9, 1, B("n"), 1, 0);
        Assert.Equal(2, _store.TenantRecords(9)); // updates do not count again
        _s.Delete(9, 1, B("key"), 0);
        _s.Delete(9, 1, B("key"), 0); // a tombstone deleted again counts nothing
        _s.Delete(9, 1, B("n"), 0);
        Assert.Equal(0, _store.TenantBytes(9));
        Assert.Equal(0, _store.TenantRecords(9));
        _s.PutNow("key", "back", tenant: 9);
        Assert.Equal(1, _store.TenantRecords(9));
        Assert.Equal((0L, 0L), (_store.TenantBytes(1), _store.TenantRecords(1)));
    }

    [Fact]
    public void DropSlots_RemovesOnlyThatRange()
    {
        var keys = Enumerable.Range(0, 300).Select(i => $"key:{i}").ToList();
        foreach (var k in keys)
            _s.PutNow(k, "v" + k, tenant: 3);
        _s.Delete(3, 1, B(keys[0]), 0); // a tombstone in the range must go too
        long before = _store.TenantBytes(3);
        Assert.Equal(keys.Count - 1, _store.TenantRecords(3));
        long removed = _store.DropSlots(0, 8191);
        var inRange = keys.Where(k => Slot.Of(B(k)) <= 8191).ToList();
        Assert.Equal(inRange.Count, removed);
        Assert.Equal(keys.Count - inRange.Count, _store.TenantRecords(3));
        foreach (var k in keys)
            Assert.Equal(Slot.Of(B(k)) <= 8191 ? StoreStatus.NotFound : StoreStatus.Ok, _s.GetNow(k, tenant: 3).Result.Status);
        Assert.True(_store.TenantBytes(3) < before);
        // After a drop, a pulled record with any version is accepted again (the range came back).
        Assert.Equal(StoreStatus.Ok, _s.ApplyPulled(3, 1, B(inRange[1]), B("back"), 1, 0).Status);
    }

    [Fact]
    public void Metrics_ReportSizes()
    {
        _s.PutNow("k", "v");
        var m = _store.GetMetrics();
        Assert.True(m.MemoryBytes > 0);
        Assert.True(m.LogBytes > 0);
        Assert.Equal(1UL, m.MaxVersion);
        Assert.Equal(0, m.OperationLogBytes);
        Assert.True(_store.IsDurable(_s.LastWriteSequence));
    }

    [Fact]
    public void ConcurrentIncrements_FromTwoSessions_AreAllApplied()
    {
        const int perThread = 3000;
        var threads = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            using var s = _store.NewSession();
            for (int i = 0; i < perThread; i++)
                s.Now(x => x.Increment(1, 1, B("shared"), 1, 0));
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var (r, v) = _s.GetNow("shared");
        Assert.Equal((2 * perThread).ToString(System.Globalization.CultureInfo.InvariantCulture), v);
        Assert.Equal((ulong)(2 * perThread), r.Version);
    }
}
