using System.Diagnostics;

namespace Hybrid.Extensions;

/// <summary>
/// One worker's count of one extension's invocations by outcome, and the time their steps ran: written by that worker's
/// thread only (no interlocked operation on the invocation path), read by a metrics scrape.
/// </summary>
internal sealed class ExtensionUsage
{
    private readonly long[] _outcomes = new long[Enum.GetValues<ExtensionStatus>().Length];
    private long _stepTicks;

    internal void Add(ExtensionStatus status, long stepTicks)
    {
        int at = (int)status;
        Volatile.Write(ref _outcomes[at], _outcomes[at] + 1);
        Volatile.Write(ref _stepTicks, _stepTicks + stepTicks);
    }

    internal long Outcomes(ExtensionStatus status) => Volatile.Read(ref _outcomes[(int)status]);

    internal long StepTicks => Volatile.Read(ref _stepTicks);
}

/// <summary>
/// What a tenant's extension came to on this node since it started, summed over the workers: invocations by outcome
/// (<see cref="ExtensionStatus.Throttled"/> ones, and <see cref="ExtensionStatus.Quarantined"/> ones refused at start,
/// did not run; the invocation the watchdog stopped counts as quarantined) and the time their steps ran, in seconds
/// (wall-clock time inside steps, which is what the CPU budget and quota count).
/// </summary>
/// <param name="Tenant">The tenant.</param>
/// <param name="Name">The invocation name (<c>install</c> or <c>install.entry</c>).</param>
/// <param name="Invocations">Count by outcome; outcomes that never happened are left out.</param>
/// <param name="StepSeconds">Time the invocations' steps ran.</param>
public sealed record ExtensionUsageTotals(ulong Tenant, string Name, IReadOnlyDictionary<ExtensionStatus, long> Invocations, double StepSeconds)
{
    internal static IReadOnlyList<ExtensionUsageTotals> Sum(IEnumerable<ExtensionScheduler> schedulers)
    {
        ExtensionStatus[] statuses = Enum.GetValues<ExtensionStatus>();
        var outcomes = new SortedDictionary<(ulong Tenant, string Name), long[]>();
        var ticks = new Dictionary<(ulong Tenant, string Name), long>();
        foreach (var scheduler in schedulers)
        {
            foreach (var (key, usage) in scheduler.Usage)
            {
                if (!outcomes.TryGetValue(key, out long[]? sum))
                    outcomes[key] = sum = new long[statuses.Length];
                foreach (ExtensionStatus status in statuses)
                    sum[(int)status] += usage.Outcomes(status);
                ticks[key] = ticks.GetValueOrDefault(key) + usage.StepTicks;
            }
        }
        return [.. outcomes.Select(kv => new ExtensionUsageTotals(kv.Key.Tenant, kv.Key.Name,
            statuses.Where(s => kv.Value[(int)s] > 0).ToDictionary(s => s, s => kv.Value[(int)s]),
            (double)ticks[kv.Key] / Stopwatch.Frequency))];
    }
}
