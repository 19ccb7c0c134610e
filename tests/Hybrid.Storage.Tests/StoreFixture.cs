using System.Buffers;
using System.Text;

namespace Hybrid.Storage.Tests;

/// <summary>A store in a fresh temporary directory with small sizes; deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "hybrid-storage-tests", Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public StoreOptions Options(DurabilityMode mode, long memoryBudget = 1 << 20) => new()
    {
        DataDirectory = Path,
        Durability = mode,
        MemoryBudgetBytes = memoryBudget,
        PageSizeBytes = 4096,
        IndexBuckets = 1 << 12,
        MaxKeyBytes = 256,
        MaxValueBytes = 1024,
        CommitInterval = TimeSpan.FromMilliseconds(2),
        CheckpointInterval = TimeSpan.Zero,
        MaxSessions = 8,
    };

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Collects completions handed back by CompletePending / MultiGet.</summary>
internal sealed class CollectingSink : ICompletionSink
{
    public readonly Dictionary<ulong, (StoreResult Result, byte[] Value)> Results = [];

    public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
        => Results.Add(context, (result, value.ToArray()));
}

/// <summary>Counts completions (for background writers that do not check results).</summary>
internal sealed class CountingSink : ICompletionSink
{
    public int Count;

    public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value) => Count++;
}

/// <summary>Collects scanned records.</summary>
internal sealed class ScanCollector : IScanSink
{
    public readonly List<(uint Tenant, uint Table, string Key, string Value, ulong Version)> Records = [];

    public void OnRecord(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version)
    {
        lock (Records)
            Records.Add((tenant, table, Encoding.UTF8.GetString(key), Encoding.UTF8.GetString(value), version));
    }
}

internal static class Ops
{
    public static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Get that waits for a pending read, returning (result, value as string).</summary>
    public static (StoreResult Result, string Value) GetNow(this IKvSession s, string key, uint tenant = 1, uint table = 1)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var result = s.Get(tenant, table, B(key), buffer, 42);
        if (result.IsPending)
        {
            var sink = new CollectingSink();
            while (s.PendingCount > 0)
                s.CompletePending(sink, wait: true);
            var (r, v) = sink.Results[42];
            return (r, Encoding.UTF8.GetString(v));
        }
        return (result, Encoding.UTF8.GetString(buffer.WrittenSpan));
    }

    /// <summary>Runs a write; if it went pending, waits and returns the completed result.</summary>
    public static StoreResult Now(this IKvSession s, Func<IKvSession, StoreResult> op)
    {
        var result = op(s);
        if (!result.IsPending)
            return result;
        var sink = new CollectingSink();
        while (s.PendingCount > 0)
            s.CompletePending(sink, wait: true);
        return sink.Results.Values.Single().Result;
    }

    public static StoreResult PutNow(this IKvSession s, string key, string value, uint tenant = 1, uint table = 1)
        => s.Now(x => x.Put(tenant, table, B(key), B(value), 7));

    /// <summary>Scans all partitions of a fresh plan with small chunks; returns every record returned.</summary>
    public static List<(uint Tenant, uint Table, string Key, string Value, ulong Version)> ScanAll(
        IKvStore store, int slotLo, int slotHi, int partitions, int chunk)
    {
        var sink = new ScanCollector();
        var plan = store.PlanScan(partitions);
        var threads = plan.Select(p => new Thread(() =>
        {
            using var scanner = store.NewScanner();
            var c = p;
            while (!c.IsDone)
            {
                var before = c;
                c = scanner.ScanChunk(c, slotLo, slotHi, chunk, int.MaxValue, sink);
                Assert.True(c.Next > before.Next, "a chunk must make progress");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return sink.Records;
    }
}
