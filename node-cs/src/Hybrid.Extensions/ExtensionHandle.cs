using System.Diagnostics;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>
/// A resolved, invocable extension entry of one tenant. Resolve once (by name) and keep it: invoking
/// through a handle costs no lookup. A handle stays usable after an uninstall or reinstall (it keeps
/// its code alive until dropped); resolve again to see the new version.
/// </summary>
public sealed class ExtensionHandle
{
    internal ExtensionHandle(ulong tenant, string name, Func<ExtensionContext, ExtensionTask> entry, LoadedModule module, TenantState tenantState)
    {
        Tenant = tenant;
        Name = name;
        Entry = entry;
        Module = module;
        TenantState = tenantState;
    }

    /// <summary>The tenant that installed it; invocations only see this tenant's records.</summary>
    public ulong Tenant { get; }

    /// <summary>The invocation name (<c>install</c> or <c>install.entry</c>).</summary>
    public string Name { get; }

    /// <summary>True once the watchdog found it stuck; it is then refused with <see cref="ExtensionStatus.Quarantined"/>.</summary>
    public bool IsQuarantined => Volatile.Read(ref _quarantined);

    private bool _quarantined;

    internal Func<ExtensionContext, ExtensionTask> Entry { get; }
    internal LoadedModule Module { get; }
    internal TenantState TenantState { get; }

    internal void Quarantine() => Volatile.Write(ref _quarantined, true);
}

/// <summary>
/// Per-tenant CPU quota: a token bucket in Stopwatch ticks. Steps subtract what they used (one
/// interlocked add per step); the watchdog thread refills it. A tenant below zero is throttled.
/// </summary>
internal sealed class TenantState
{
    private long _tokens;
    private long _ticksPerSecond;

    /// <summary>Sets the quota to <paramref name="cores"/> cores (≤ 0 = unlimited), with up to 100 ms of burst.</summary>
    internal void SetQuota(double cores)
    {
        var rate = cores <= 0 ? 0 : (long)(cores * Stopwatch.Frequency);
        Volatile.Write(ref _ticksPerSecond, rate);
        Volatile.Write(ref _tokens, rate / 10);
    }

    internal bool Throttled => Volatile.Read(ref _ticksPerSecond) > 0 && Volatile.Read(ref _tokens) < 0;

    internal void Charge(long ticks)
    {
        if (Volatile.Read(ref _ticksPerSecond) > 0)
        {
            Interlocked.Add(ref _tokens, -ticks);
        }
    }

    internal void Refill(TimeSpan elapsed)
    {
        var rate = Volatile.Read(ref _ticksPerSecond);
        if (rate == 0)
        {
            return;
        }
        var add = (long)(rate * elapsed.TotalSeconds);
        var burst = rate / 10;
        long current, next;
        do
        {
            current = Volatile.Read(ref _tokens);
            next = Math.Min(burst, current + add);
        }
        while (Interlocked.CompareExchange(ref _tokens, next, current) != current);
    }
}
