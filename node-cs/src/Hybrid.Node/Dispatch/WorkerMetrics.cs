using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using Hybrid.Node.Hosting;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// One worker's counters. Only its worker writes them (plain increments, no interlocked operations, no sharing);
/// the metrics scrape reads them racily and sums over workers, which is exact enough for monotonic counters.
/// </summary>
internal sealed class WorkerMetrics
{
    /// <summary>Histogram buckets: upper bounds 1 µs · 2^i, i = 0..BucketCount-1 (1 µs .. ~0.5 s), then +Inf.</summary>
    internal const int BucketCount = 20;

    private static readonly double s_ticksToMicros = 1e6 / Stopwatch.Frequency;
    private readonly ConcurrentDictionary<uint, TenantCounters> _tenants = new();
    private TenantCounters? _last;

    internal long BytesIn;
    internal long BytesOut;
    internal long Batches;
    internal long Steals;
    internal long HandlerErrors;
    internal long BatchMicrosSum;
    /// <summary>Bytes this worker thread allocated since it started (read at each refresh): the hot path should add ~0 per request.</summary>
    internal long AllocatedBytes;
    internal readonly long[] LatencyBuckets = new long[BucketCount + 1];
    internal readonly long[] Rejections = new long[256];

    internal IEnumerable<TenantCounters> Tenants => _tenants.Values;

    /// <summary>The counters of one tenant (created on first use by this worker).</summary>
    internal TenantCounters For(uint tenant)
    {
        var last = _last;
        if (last is not null && last.Tenant == tenant)
            return last;
        if (!_tenants.TryGetValue(tenant, out var counters))
        {
            counters = new TenantCounters(tenant);
            _tenants.TryAdd(tenant, counters);
        }
        _last = counters;
        return counters;
    }

    /// <summary>Records one batch's service time (from parse start to reply written).</summary>
    internal void RecordBatch(long startTimestamp)
    {
        double micros = (Stopwatch.GetTimestamp() - startTimestamp) * s_ticksToMicros;
        Batches++;
        BatchMicrosSum += (long)micros;
        int bucket = micros <= 1 ? 0 : Math.Min(BucketCount, BitOperations.Log2((ulong)Math.Ceiling(micros) - 1) + 1);
        LatencyBuckets[bucket]++;
    }
}

/// <summary>Per tenant, per worker operation counters.</summary>
internal sealed class TenantCounters(uint tenant)
{
    internal uint Tenant { get; } = tenant;
    internal readonly long[] Ops = new long[Enum.GetValues<OpKind>().Length];
    internal long QuotaRejections;
}
