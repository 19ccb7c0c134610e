using System.Buffers;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

/// <summary>
/// Runs alone, so other tests' stores do not run deferred work (page flushes) on this thread through FASTER's
/// epoch machinery and charge it to the measurement.
/// </summary>
[CollectionDefinition(nameof(HotPathAllocationTests), DisableParallelization = true)]
public sealed class HotPathAllocationCollection;

[Collection(nameof(HotPathAllocationTests))]
public sealed class HotPathAllocationTests
{
    private static readonly byte[] s_counter = B("alloc-counter");

    [Fact]
    public void HotPath_GetAndPut_AllocateNothing()
    {
        using var dir = new TempDir();
        using var store = FasterKvStore.Open(dir.Options(DurabilityMode.Memory));
        using var s = store.NewSession();
        byte[] key = B("alloc-key");
        byte[] value = new byte[100];
        var output = new ArrayBufferWriter<byte>(256);
        for (int i = 0; i < 100; i++) // warm up (JIT, first record, tenant cell)
        {
            s.Put(1, 1, key, value, 0);
            output.ResetWrittenCount();
            s.Get(1, 1, key, output, 0);
            s.Increment(1, 1, s_counter, 1, 0);
        }
        long puts = MinAllocated(() => s.Put(1, 1, key, value, 0));
        long gets = MinAllocated(() =>
        {
            output.ResetWrittenCount();
            s.Get(1, 1, key, output, 0);
        });
        long increments = MinAllocated(() => s.Increment(1, 1, s_counter, 1, 0));
        Assert.Equal((0L, 0L, 0L), (puts, gets, increments));
    }

    /// <summary>
    /// Least bytes allocated by 1000 calls over 5 rounds: a per-request allocation shows in every round, while
    /// occasional background bookkeeping that FASTER runs on this thread (epoch drain actions) shows in few.
    /// </summary>
    private static long MinAllocated(Action op)
    {
        long min = long.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
                op();
            min = Math.Min(min, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return min;
    }

    [Fact]
    public void HotPath_LoggedPut_AllocatesNothingPerRequest()
    {
        using var dir = new TempDir();
        using var store = FasterKvStore.Open(dir.Options(DurabilityMode.Async));
        using var s = store.NewSession();
        byte[] key = B("logged");
        byte[] value = new byte[100];
        for (int i = 0; i < 100; i++)
            s.Put(1, 1, key, value, 0);
        long before = GC.GetAllocatedBytesForCurrentThread();
        const int ops = 5000;
        for (int i = 0; i < ops; i++)
            s.Put(1, 1, key, value, 0);
        // The operation log occasionally runs page-flush and commit bookkeeping on the writing thread (a few
        // hundred bytes per 1 MiB log page); any per-request object (>= 24 bytes each) would blow this bound.
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < ops * 4, $"{allocated} bytes for {ops} logged puts");
        Assert.True(s.LastWriteSequence > 0);
    }
}
