using BenchmarkDotNet.Attributes;
using Hybrid.Protocol;

namespace Hybrid.Bench;

/// <summary>
/// CRC32C of a frame payload: SSE4.2 three-way (what frames use), SSE4.2 single stream, and the byte-wise table
/// (the scalar reference and fallback). Sizes: a small 256-byte frame and a 64-request batch of 100-byte values.
/// </summary>
[MemoryDiagnoser]
public class ProtocolBenchmarks
{
    private byte[] _frame = [];

    /// <summary>Frame payload bytes.</summary>
    [Params(256, 7680)]
    public int FrameBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _frame = new byte[FrameBytes];
        new Random(1).NextBytes(_frame);
    }

    [Benchmark(Baseline = true)]
    public uint Crc32CScalarTable() => Crc32C.ComputeScalar(_frame);

    [Benchmark]
    public uint Crc32CSse42SingleStream() => Crc32C.ComputeSse42SingleStream(_frame);

    [Benchmark]
    public uint Crc32CSse42ThreeWay() => Crc32C.Compute(_frame);
}

/// <summary>
/// Hashing every key of a batch straight out of the received frame: AVX2 eight keys per step against the scalar
/// reference, one key at a time. 64 and 512 keys of 16 bytes laid out as in a request frame.
/// </summary>
[MemoryDiagnoser]
public class ProtocolKeyHashBenchmarks
{
    private byte[] _keys = [];
    private int[] _offsets = [];
    private int[] _lengths = [];
    private ulong[] _hashes = [];

    /// <summary>Keys hashed per batch.</summary>
    [Params(64, 512)]
    public int Keys { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        // Keys as they sit in a request frame: 16-byte keys separated by request headers and values.
        const int stride = RequestHeader.Size + 16 + 100;
        _keys = new byte[Keys * stride + 8];
        random.NextBytes(_keys);
        _offsets = Enumerable.Range(0, Keys).Select(i => i * stride + RequestHeader.Size).ToArray();
        _lengths = Enumerable.Repeat(16, Keys).ToArray();
        _hashes = new ulong[Keys];
    }

    [Benchmark(Baseline = true)]
    public ulong KeyHashScalar()
    {
        KeyHash.HashBatchScalar(_keys, _offsets, _lengths, _hashes);
        return _hashes[^1];
    }

    [Benchmark]
    public ulong KeyHashAvx2Batch()
    {
        KeyHash.HashBatch(_keys, _offsets, _lengths, _hashes);
        return _hashes[^1];
    }
}
