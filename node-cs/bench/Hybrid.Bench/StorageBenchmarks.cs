using System.Buffers;
using BenchmarkDotNet.Attributes;
using Hybrid.Storage;

namespace Hybrid.Bench;

/// <summary>
/// One worker session against the FASTER-backed store: Get and Put of 100-byte values over 100,000 keys that fit
/// in memory (the hot path; allocation must stay at zero), per durability mode (Async/Sync add the operation-log
/// append; Sync's commit wait is not part of the operation). Each invocation runs <see cref="Batch"/> operations.
/// </summary>
[MemoryDiagnoser]
public class StorageBenchmarks
{
    private const int Keys = 100_000;
    private const int Batch = 1000;

    private string _dir = "";
    private FasterKvStore _store = null!;
    private IKvSession _session = null!;
    private byte[][] _keys = [];
    private readonly byte[] _value = new byte[100];
    private readonly ArrayBufferWriter<byte> _output = new(256);
    private int _next;

    /// <summary>Durability mode of the store under test.</summary>
    [Params(DurabilityMode.Memory, DurabilityMode.Async)]
    public DurabilityMode Mode { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hybrid-storage-bench", Guid.NewGuid().ToString("N"));
        _store = FasterKvStore.Open(new StoreOptions
        {
            DataDirectory = _dir,
            Durability = Mode,
            MemoryBudgetBytes = 256L << 20,
            IndexBuckets = 1 << 17,
            CheckpointInterval = TimeSpan.Zero,
        });
        _session = _store.NewSession();
        _keys = Enumerable.Range(0, Keys).Select(i => System.Text.Encoding.ASCII.GetBytes($"key:{i:D8}")).ToArray();
        foreach (var k in _keys)
            _session.Put(1, 1, k, _value, 0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Reads of existing keys, value copied to a caller buffer.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Get()
    {
        int found = 0;
        for (int i = 0; i < Batch; i++)
        {
            _output.ResetWrittenCount();
            if (_session.Get(1, 1, NextKey(), _output, 0).Status == StoreStatus.Ok)
                found++;
        }
        return found;
    }

    /// <summary>Overwrites of existing keys (in place: same size).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public ulong Put()
    {
        ulong version = 0;
        for (int i = 0; i < Batch; i++)
            version = _session.Put(1, 1, NextKey(), _value, 0).Version;
        return version;
    }

    private byte[] NextKey()
    {
        int n = _next++;
        if (_next == Keys)
            _next = 0;
        return _keys[n];
    }
}
