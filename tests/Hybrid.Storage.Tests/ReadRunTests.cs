using System.Buffers;
using System.Text;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

/// <summary>
/// Read runs (<see cref="IKvSession.BeginReadRun"/>: many reads under one epoch protection) and bucket prefetching:
/// same results as plain reads, interleaved with writes and disk reads, and the protection is given back.
/// </summary>
public sealed class ReadRunTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FasterKvStore _store;
    private readonly IKvSession _s;

    public ReadRunTests()
    {
        // A small memory budget: the first keys are evicted to disk by the later ones.
        _store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory, memoryBudget: 16384));
        _s = _store.NewSession();
        for (int i = 0; i < 1500; i++)
            _s.PutNow($"k{i}", $"v{i}" + new string('.', 80));
    }

    public void Dispose()
    {
        _s.Dispose();
        _store.Dispose();
        _dir.Dispose();
    }

    private static string Expected(int i) => $"v{i}" + new string('.', 80);

    [Fact]
    public void ReadsInARun_SeeWhatPlainReadsSee_InterleavedWithWritesAndDiskReads()
    {
        _s.BeginReadRun();
        // Hot keys (in memory), written ones, deleted ones and absent ones, in one run.
        for (int i = 1400; i < 1500; i++)
            Assert.Equal(Expected(i), _s.GetNow($"k{i}").Value);
        Assert.Equal(StoreStatus.Ok, _s.PutNow("k1450", "changed").Status);
        Assert.Equal("changed", _s.GetNow("k1450").Value);
        Assert.Equal(StoreStatus.Ok, _s.Now(s => s.Delete(1, 1, B("k1451"), 0)).Status);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("k1451").Result.Status);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow("absent").Result.Status);
        // A cold key goes pending inside the run and completes (the run's protection is let go for it).
        var output = new ArrayBufferWriter<byte>();
        Assert.Equal(StoreStatus.Pending, _s.Get(1, 1, B("k0"), output, 7).Status);
        var sink = new CollectingSink();
        while (_s.PendingCount > 0)
            _s.CompletePending(sink, wait: true);
        Assert.Equal(Expected(0), Encoding.UTF8.GetString(sink.Results[7].Value));
        // More reads than a refresh interval.
        for (int round = 0; round < 3; round++)
        {
            for (int i = 1300; i < 1500; i++)
            {
                var (r, v) = _s.GetNow($"k{i}");
                if (i == 1450)
                    Assert.Equal("changed", v);
                else if (i == 1451)
                    Assert.Equal(StoreStatus.NotFound, r.Status);
                else
                    Assert.Equal(Expected(i), v);
            }
        }
        _s.EndReadRun();
        Assert.Equal("changed", _s.GetNow("k1450").Value);
    }

    [Fact]
    public void EndingOrPausingARun_GivesTheEpochBack()
    {
        // PlanScan waits until every thread has moved past the current epoch: a protection held by a run would stall
        // it. The waits run on another thread; each must finish once this thread paused or ended its run.
        _s.BeginReadRun();
        Assert.Equal(Expected(1499), _s.GetNow("k1499").Value);
        _s.PauseReadRun();
        Assert.True(PlanOnAnotherThread(), "scan planning stalled after PauseReadRun");
        Assert.Equal(Expected(1498), _s.GetNow("k1498").Value);
        _s.EndReadRun();
        Assert.True(PlanOnAnotherThread(), "scan planning stalled after EndReadRun");
    }

    /// <summary>The run's protection belongs to this thread, so the test stays on it and plans on a thread of its own.</summary>
    private bool PlanOnAnotherThread()
    {
        var planner = new Thread(() => _store.PlanScan(1));
        planner.Start();
        return planner.Join(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Prefetch_FindsTheIndex_AndChangesNoResult()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            Assert.True(_store.Prefetch.Enabled, "the FASTER index address was not found (FASTER upgraded?): batched reads are not prefetched");
        var keys = new byte[100 * 5];
        for (int i = 0; i < 100; i++)
            Encoding.ASCII.GetBytes($"k{1400 + i}").CopyTo(keys, i * 5);
        _s.Prefetch(1, 1, keys, 5);
        _s.Prefetch(1, 1, keys, 0);
        _s.Prefetch(1, 1, keys.AsSpan(0, 7), 5);
        for (int i = 1400; i < 1500; i++)
            Assert.Equal(Expected(i), _s.GetNow($"k{i}").Value);
    }

    [Fact]
    public void TwoStagePrefetch_FindsTheLogPages_AndChangesNoResult()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            Assert.True(_store.Prefetch.RecordsEnabled, "the FASTER log's page table was not found (FASTER upgraded?): records are not prefetched");
        var window = new PrefetchWindow();
        for (int i = 1400; i < 1500; i++)
        {
            int executing = i - 1400;
            window.Records(_s, executing);
            while (window.WantsMore(executing) && window.Added < 100)
            {
                if (window.Added % 10 == 9)
                    window.Skip();
                else
                    window.Add(_s, 1, 1, Encoding.ASCII.GetBytes($"k{1400 + window.Added}"));
            }
            Assert.Equal(Math.Min(100, executing + PrefetchWindow.Depth), window.Added);
            Assert.Equal(Expected(i), _s.GetNow($"k{i}").Value);
        }
        Assert.Equal(0, _s.PrefetchKey(1, 1, default)); // no key, no token
        _s.PrefetchRecords(0);
        _s.PrefetchRecords(long.MinValue); // any token: a hint never faults
        _s.PrefetchRecords(-1);
        Assert.Equal(Expected(1400), _s.GetNow("k1400").Value);
    }
}
