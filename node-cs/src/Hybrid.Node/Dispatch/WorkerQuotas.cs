using System.Diagnostics;
using Hybrid.Node.Tenants;
using Hybrid.Storage;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// One worker's share of every tenant's quotas, so that no quota check touches memory another worker writes.
/// Ops/s: a token bucket per tenant refilled at MaxOpsPerSecond / workers (burst = 100 ms of it); a batch is
/// admitted while the bucket is positive and may drive it into debt, so a batch larger than the burst is never
/// starved. Memory: the tenant's stored bytes read from the store at each refresh, plus what this worker let
/// the tenant write since; so across workers the limit can be overshot by at most one refresh interval of writes.
/// </summary>
internal sealed class WorkerQuotas
{
    private readonly Dictionary<uint, Share> _shares = [];
    private readonly int _workers;
    private readonly double _ticksPerSecond = Stopwatch.Frequency;

    internal WorkerQuotas(int workers) => _workers = workers;

    internal bool TryChargeOps(TenantInfo tenant, int operations, WorkerMetrics metrics)
    {
        // The quota comes from the share, which each refresh updates from the registry: the connection's TenantInfo is
        // the one it authenticated with, and a quota set or lifted since must apply to it too.
        var share = ShareOf(tenant);
        if (share.Tenant.MaxOpsPerSecond <= 0)
            return true;
        long now = Stopwatch.GetTimestamp();
        double rate = (double)share.Tenant.MaxOpsPerSecond / _workers;
        double burst = Math.Max(1, rate / 10);
        share.Tokens = Math.Min(burst, share.Tokens + (now - share.LastTicks) / _ticksPerSecond * rate);
        share.LastTicks = now;
        if (share.Tokens <= 0)
        {
            metrics.For(tenant.Id).QuotaRejections += operations;
            return false;
        }
        share.Tokens -= operations;
        return true;
    }

    internal bool TryChargeBytes(TenantInfo tenant, long bytes, WorkerMetrics metrics)
    {
        var share = ShareOf(tenant);
        if (share.Tenant.MaxBytes <= 0)
            return true;
        if (share.StoredAtRefresh + share.WrittenSinceRefresh + bytes > share.Tenant.MaxBytes)
        {
            metrics.For(tenant.Id).QuotaRejections++;
            return false;
        }
        share.WrittenSinceRefresh += bytes;
        return true;
    }

    /// <summary>Epoch refresh: pick up quota changes (a share of every tenant seen, quota or not) and the tenants' stored bytes.</summary>
    internal void Refresh(IKvStore store, TenantRegistry tenants, long now)
    {
        foreach (var share in _shares.Values)
        {
            if (tenants.TryGet(share.Tenant.Id, out var current))
                share.Tenant = current;
            if (share.Tenant.MaxBytes > 0)
            {
                share.StoredAtRefresh = store.TenantBytes(share.Tenant.Id);
                share.WrittenSinceRefresh = 0;
            }
        }
    }

    private Share ShareOf(TenantInfo tenant)
    {
        if (!_shares.TryGetValue(tenant.Id, out var share))
        {
            share = new Share(tenant) { LastTicks = Stopwatch.GetTimestamp() };
            share.Tokens = Math.Max(1, (double)tenant.MaxOpsPerSecond / _workers / 10);
            _shares.Add(tenant.Id, share);
        }
        return share;
    }

    private sealed class Share(TenantInfo tenant)
    {
        public TenantInfo Tenant { get; set; } = tenant;
        public double Tokens { get; set; }
        public long LastTicks { get; set; }
        public long StoredAtRefresh { get; set; } = -1;
        public long WrittenSinceRefresh { get; set; }
    }
}
