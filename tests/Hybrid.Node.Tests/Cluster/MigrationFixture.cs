using System.Buffers;
using System.Text;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>A FASTER store in a fresh temporary directory, small pages so records spill to disk; deleted on dispose.</summary>
internal sealed class TempStore : IDisposable
{
    private readonly string _dir = NewDirectory();

    public TempStore() => Store = FasterKvStore.Open(Options(_dir, DurabilityMode.Async));

    public IKvStore Store { get; }

    /// <summary>A fresh directory path under the temporary folder (created by the store that opens in it).</summary>
    internal static string NewDirectory() => Path.Combine(Path.GetTempPath(), "hybrid-cluster-tests", Guid.NewGuid().ToString("N"));

    /// <summary>The small store the cluster tests use, in <paramref name="dir"/>.</summary>
    internal static StoreOptions Options(string dir, DurabilityMode durability, long memoryBudget = 1 << 18, int pageSize = 1 << 14) => new()
    {
        DataDirectory = dir,
        Durability = durability,
        MemoryBudgetBytes = memoryBudget,
        PageSizeBytes = pageSize,
        IndexBuckets = 1 << 12,
        MaxKeyBytes = 256,
        MaxValueBytes = 1024,
        CommitInterval = TimeSpan.FromMilliseconds(2),
        CheckpointInterval = TimeSpan.Zero,
        MaxSessions = 32,
    };

    /// <summary>Deletes <paramref name="dir"/>, ignoring a directory that is gone or still in use.</summary>
    internal static void DeleteDirectory(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public void Dispose()
    {
        Store.Dispose();
        DeleteDirectory(_dir);
    }
}

/// <summary>Blocking helpers over one session: every operation is finished (pending ones included) before it returns.</summary>
internal sealed class SyncSession(IKvSession session) : ICompletionSink, IDisposable
{
    private readonly ArrayBufferWriter<byte> _out = new();
    private StoreResult _last;
    private byte[] _value = [];

    public ulong Put(string key, string value)
    {
        StoreResult r = session.Put(1, 1, Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value), 0);
        if (r.IsPending)
        {
            session.CompletePending(this, wait: true);
            r = _last;
        }
        Assert.Equal(StoreStatus.Ok, r.Status);
        return r.Version;
    }

    /// <summary>The value and version of <paramref name="key"/>, or null when absent.</summary>
    public (string Value, ulong Version)? Get(string key)
    {
        _out.ResetWrittenCount();
        StoreResult r = session.Get(1, 1, Encoding.UTF8.GetBytes(key), _out, 0);
        byte[] value;
        if (r.IsPending)
        {
            session.CompletePending(this, wait: true);
            r = _last;
            value = _value;
        }
        else
        {
            value = _out.WrittenSpan.ToArray();
        }
        return r.Status == StoreStatus.Ok ? (Encoding.UTF8.GetString(value), r.Version) : null;
    }

    public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
    {
        _last = result;
        _value = value.ToArray();
    }

    public void Dispose() => session.Dispose();
}

/// <summary>Cores that adopt a new view at once, as idle workers woken by the view change do.</summary>
internal sealed class PromptCores(int cores) : ICoreViews
{
    private readonly int[] _views = Enumerable.Repeat(1, cores).ToArray();

    public int CoreCount => _views.Length;

    public void Advance(int view, IReadOnlyList<SlotRange> owned)
    {
        for (int i = 0; i < _views.Length; i++)
            Volatile.Write(ref _views[i], view);
    }

    public int CoreView(int core) => Volatile.Read(ref _views[core]);
}

/// <summary>Two nodes (n1 owns r1 = slots 0..8191 and r2 = 8192..16383; n2 owns nothing) with their stores and a coordinator.</summary>
internal sealed class TwoNodes : IDisposable
{
    public static readonly SlotRange R1 = new(0, 8191);
    public static readonly SlotRange R2 = new(8192, 16383);
    private static readonly string[] s_cores = ["c1", "c2"];

    public TwoNodes(bool traced)
    {
        Metadata = new InMemoryClusterMetadata(ClusterCore.Create(["n1", "n2"], s_cores, new Dictionary<string, string> { ["r1"] = "n1", ["r2"] = "n1" }));
        Trace = traced ? new MigrationTrace(TraceText) : MigrationTrace.Off;
        Coordinator = new MigrationCoordinator(Metadata, Trace, new Dictionary<string, SlotRange> { ["r1"] = R1, ["r2"] = R2 });
        Source = new MigrationSource(SourceStore.Store);
        Target = new MigrationTarget(TargetStore.Store, Trace, partitions: 4);
    }

    public TempStore SourceStore { get; } = new();
    public TempStore TargetStore { get; } = new();
    public StringWriter TraceText { get; } = new();
    public InMemoryClusterMetadata Metadata { get; }
    public MigrationTrace Trace { get; }
    public MigrationCoordinator Coordinator { get; }
    public MigrationSource Source { get; }
    public MigrationTarget Target { get; }
    public MigrationNode N1 { get; } = new("n1", s_cores, new PromptCores(2));
    public MigrationNode N2 { get; } = new("n2", s_cores, new PromptCores(2));

    public static string Key(int i) => "key:" + i;

    /// <summary>The value key i is loaded with at the source: about 100 bytes.</summary>
    public static string Value(int i) => $"v{i}-{new string('x', 92)}";

    /// <summary>Loads keys 0..count-1 into the source with <see cref="Value"/>(i); returns the keys of r1.</summary>
    public List<int> Load(int count)
    {
        using var s = new SyncSession(SourceStore.Store.NewSession());
        var moving = new List<int>();
        for (int i = 0; i < count; i++)
        {
            s.Put(Key(i), Value(i));
            if (R1.ContainsKey(Encoding.UTF8.GetBytes(Key(i))))
                moving.Add(i);
        }
        return moving;
    }

    public void Dispose()
    {
        Source.Dispose();
        SourceStore.Dispose();
        TargetStore.Dispose();
    }
}
