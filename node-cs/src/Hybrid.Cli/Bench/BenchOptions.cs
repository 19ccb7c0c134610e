using System.Net;

namespace Hybrid.Cli.Bench;

/// <summary>Everything one <c>hybrid bench</c> invocation runs: the connection, the data set and the load shape.</summary>
internal sealed record BenchOptions
{
    /// <summary>The node's native endpoint.</summary>
    public EndPoint EndPoint { get; init; } = new IPEndPoint(IPAddress.Loopback, 7100);

    /// <summary>
    /// The transport spec the sessions dial (<c>shm:PATH</c>, <c>memif:SOCKET[@SERVICE]</c>,
    /// <c>af_packet:IFACE[@SERVICE]</c>, <c>tcp:HOST:PORT</c>; see <see cref="Hybrid.Transport.TransportSpec"/>), or null for
    /// the node's native TCP socket at <see cref="EndPoint"/>.
    /// </summary>
    public string? Transport { get; init; }

    /// <summary>Tenant the sessions open.</summary>
    public string Tenant { get; init; } = "default";

    /// <summary>The tenant's secret (empty = no AUTH).</summary>
    public byte[] Secret { get; init; } = [];

    /// <summary>Table number inside the tenant.</summary>
    public ushort Table { get; init; }

    /// <summary>Workloads run one after the other on the same data, in this order.</summary>
    public IReadOnlyList<Workload> Workloads { get; init; } = [Workload.All["a"]];

    /// <summary>Key choice of reads and updates (D always reads the latest keys).</summary>
    public KeyDistribution Distribution { get; init; } = KeyDistribution.Zipf;

    /// <summary>Zipf skew.</summary>
    public double Theta { get; init; } = ZipfGenerator.DefaultTheta;

    /// <summary>Records loaded before the first workload (and the key space reads draw from).</summary>
    public long Keys { get; init; } = 1_000_000;

    /// <summary>Bytes per value.</summary>
    public int ValueSize { get; init; } = 100;

    /// <summary>Connections (one session each).</summary>
    public int Sessions { get; init; } = 4;

    /// <summary>Requests per batch (one frame).</summary>
    public int Batch { get; init; } = 64;

    /// <summary>Batches in flight per session.</summary>
    public int Pipeline { get; init; } = 4;

    /// <summary>Measured time per workload.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Unmeasured time before each workload's measurement.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Whether to insert the <see cref="Keys"/> records first (off when they are already there).</summary>
    public bool Load { get; init; } = true;

    /// <summary>Seed of every loop's generator (loop i uses Seed + i).</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Where to append the CSV results (null = none).</summary>
    public string? CsvPath { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first out-of-range setting.</summary>
    public void Validate()
    {
        if (Keys < 2)
            throw new ArgumentException("--keys must be at least 2");
        if (ValueSize is < 0 or > 1 << 20)
            throw new ArgumentException("--value-size must be 0..1048576");
        if (Sessions is < 1 or > 4096)
            throw new ArgumentException("--sessions must be 1..4096");
        if (Batch is < 1 or > 8192)
            throw new ArgumentException("--batch must be 1..8192 (the node's MaxRequestsPerBatch)");
        if (Pipeline is < 1 or > 1024)
            throw new ArgumentException("--pipeline must be 1..1024");
        if (Duration <= TimeSpan.Zero || Warmup < TimeSpan.Zero)
            throw new ArgumentException("--duration must be positive and --warmup not negative");
        if (Theta is <= 0 or >= 1)
            throw new ArgumentException("--theta must be in (0, 1)");
        if (Workloads.Count == 0)
            throw new ArgumentException("--workload names at least one workload");
    }
}
