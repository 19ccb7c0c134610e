using System.Buffers;
using System.Text;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

/// <summary>
/// In-place reads (<see cref="IKvSession.GetInPlace"/>): a value in memory is lent, not copied; a lent record is not
/// changed in place by a later write; and <see cref="IKvSession.RetainInPlace"/> notices when the log's head passed a
/// lent value, which is when its memory may go.
/// </summary>
public sealed class InPlaceReadTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string Value(int i, char fill = '.') => $"v{i:D4}" + new string(fill, 80);

    private static FasterKvStore Filled(TempDir dir, long memoryBudget, int count)
    {
        var store = FasterKvStore.Open(dir.Options(DurabilityMode.Memory, memoryBudget));
        using var s = store.NewSession();
        for (int i = 0; i < count; i++)
            s.PutNow($"k{i}", Value(i));
        return store;
    }

    /// <summary>The first of k1300..k1499 (as <see cref="Filled"/> wrote them) still in memory: the one evicted next.</summary>
    private static int OldestInMemory(IKvSession s)
    {
        var output = new ArrayBufferWriter<byte>();
        s.BeginReadRun();
        try
        {
            for (int i = 1300; i < 1500; i++)
            {
                var r = s.GetInPlace(1, 1, B($"k{i}"), output, out _, out bool inPlace);
                if (r.IsPending)
                    s.CompletePending(new CollectingSink(), wait: true);
                else if (inPlace)
                    return i;
            }
        }
        finally
        {
            s.EndReadRun();
        }
        Assert.Fail("no record of k1300..k1499 was in memory");
        return -1;
    }

    [Fact]
    public void AValueInMemory_IsLentNotCopied_AndADiskRecordIsCopied()
    {
        using var store = Filled(_dir, memoryBudget: 16384, count: 1500);
        using var s = store.NewSession();
        var output = new ArrayBufferWriter<byte>();
        s.BeginReadRun();
        var hot = s.GetInPlace(1, 1, B("k1499"), output, out var lent, out bool inPlace);
        Assert.Equal(StoreStatus.Ok, hot.Status);
        Assert.True(inPlace, "a record in memory should be lent in place");
        Assert.Equal(Value(1499), Encoding.UTF8.GetString(lent));
        Assert.Equal(0, output.WrittenCount);
        Assert.Equal(StoreStatus.NotFound, s.GetInPlace(1, 1, B("absent"), output, out _, out inPlace).Status);
        Assert.False(inPlace);
        // k0 was evicted by the later keys: it goes pending and arrives copied, through the sink.
        var cold = s.GetInPlace(1, 1, B("k0"), output, out _, out inPlace);
        Assert.Equal(StoreStatus.Pending, cold.Status);
        Assert.False(inPlace);
        var sink = new CollectingSink();
        while (s.PendingCount > 0)
            s.CompletePending(sink, wait: true);
        Assert.Equal(Value(0), Encoding.UTF8.GetString(sink.Results[0].Value));
        Assert.True(s.RetainInPlace(), "nothing wrote, so the head cannot have passed the lent value");
        Assert.Equal(Value(1499), Encoding.UTF8.GetString(lent));
        s.EndReadRun();
        Assert.Throws<InvalidOperationException>(() => s.GetInPlace(1, 1, B("k1"), output, out _, out _));
    }

    [Fact]
    public void ALentRecord_IsNotChangedInPlace_ByAnotherSessionsWrite()
    {
        using var store = Filled(_dir, memoryBudget: 1 << 20, count: 100);
        using var s = store.NewSession();
        s.BeginReadRun();
        Assert.Equal(StoreStatus.Ok, s.GetInPlace(1, 1, B("k42"), new ArrayBufferWriter<byte>(), out var lent, out bool inPlace).Status);
        Assert.True(inPlace);
        // Same length: without the pin the writer would overwrite these very bytes (the record is in the mutable region).
        // It runs on its own thread: epoch protection belongs to a thread, and this one holds the run's.
        string? seen = null;
        var writer = new Thread(() =>
        {
            using var w = store.NewSession();
            Assert.Equal(StoreStatus.Ok, w.PutNow("k42", Value(42, '#')).Status);
            Assert.Equal(StoreStatus.Ok, w.Now(x => x.Increment(1, 1, B("n"), 1, 0)).Status);
            seen = w.GetNow("k42").Value;
        });
        writer.Start();
        Assert.True(writer.Join(TimeSpan.FromSeconds(30)), "the writer stalled");
        Assert.Equal(Value(42, '#'), seen);
        Assert.True(s.RetainInPlace());
        Assert.Equal(Value(42), Encoding.UTF8.GetString(lent));
        s.EndReadRun();
        // The new record is not pinned by the old one's pin, and a plain read sees it.
        Assert.Equal(Value(42, '#'), s.GetNow("k42").Value);
        // A write whose data is a lent value copies it before the run lets its protection go.
        s.BeginReadRun();
        Assert.Equal(StoreStatus.Ok, s.GetInPlace(1, 1, B("k7"), new ArrayBufferWriter<byte>(), out lent, out _).Status);
        Assert.Equal(StoreStatus.Ok, s.Put(1, 1, B("copy"), lent, 0).Status);
        Assert.True(s.RetainInPlace());
        s.EndReadRun();
        Assert.Equal(Value(7), s.GetNow("copy").Value);
    }

    [Fact]
    public void RetainInPlace_TurnsFalse_OnceTheHeadPassedALentValue()
    {
        // 16 KiB of log memory in 4 KiB pages: the oldest record still in memory sits on the page evicted next.
        using var store = Filled(_dir, memoryBudget: 16384, count: 1500);
        using var s = store.NewSession();
        var output = new ArrayBufferWriter<byte>();
        int oldest = OldestInMemory(s);
        s.BeginReadRun();
        Assert.Equal(StoreStatus.Ok, s.GetInPlace(1, 1, B($"k{oldest}"), output, out var lent, out bool lentInPlace).Status);
        Assert.True(lentInPlace);
        Assert.True(s.RetainInPlace());
        // Another thread appends a few pages: the head moves past that page (it was flushed long ago), though the
        // page's eviction itself waits for this thread's protection, so the writer may stall until the run ends.
        var writer = new Thread(() =>
        {
            using var w = store.NewSession();
            for (int i = 0; i < 200; i++)
                w.PutNow($"new{i}", Value(i));
        });
        writer.Start();
        bool passed = false;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!passed && DateTime.UtcNow < deadline)
        {
            passed = !s.RetainInPlace();
            if (!passed)
                Thread.Sleep(1);
        }
        s.EndReadRun();
        Assert.True(writer.Join(TimeSpan.FromSeconds(30)), "the writer stalled after the run ended");
        Assert.True(passed, "the head passed the lent record but RetainInPlace kept saying true");
        Assert.Equal(Value(oldest), s.GetNow($"k{oldest}").Value);
    }

    [Fact]
    public void A_run_holding_a_value_near_the_head_keeps_the_epoch_for_at_most_a_millisecond_and_ReleaseReadRun_lets_it_go()
    {
        // PlanScan (on another thread) finishes only once this thread lets the epoch move: a refresh or a release.
        using var store = Filled(_dir, memoryBudget: 16384, count: 1500);
        using var s = store.NewSession();
        var output = new ArrayBufferWriter<byte>();
        int oldest = OldestInMemory(s);

        // Near the head (the oldest record in memory), within the limit (an hour here, so no timing is involved): the
        // pause keeps the epoch.
        var session = (KvSession)s;
        Assert.Equal(TimeSpan.FromMilliseconds(1), session.HoldNearHead);
        session.HoldNearHead = TimeSpan.FromHours(1);
        s.BeginReadRun();
        Assert.True(s.GetInPlace(1, 1, B($"k{oldest}"), output, out _, out _).Status == StoreStatus.Ok);
        var planner = new Thread(() => store.PlanScan(1));
        planner.Start();
        s.PauseReadRun();
        Assert.False(planner.Join(TimeSpan.FromMilliseconds(300)), "the pause let the epoch move under a value near the head");
        // Held past the limit: the next pause refreshes (and the value is still there: nothing wrote).
        session.HoldNearHead = TimeSpan.Zero;
        s.PauseReadRun();
        Assert.True(planner.Join(TimeSpan.FromSeconds(30)), "the pause kept the epoch past the limit");
        Assert.True(s.RetainInPlace());

        // ReleaseReadRun lets go at once, values lent or not; RetainInPlace takes the protection again.
        planner = new Thread(() => store.PlanScan(1));
        planner.Start();
        s.ReleaseReadRun();
        Assert.True(planner.Join(TimeSpan.FromSeconds(30)), "ReleaseReadRun kept the epoch");
        Assert.True(s.RetainInPlace());
        s.EndReadRun();
    }
}
