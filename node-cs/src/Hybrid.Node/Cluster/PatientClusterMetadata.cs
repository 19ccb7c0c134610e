using System.Text;
using Hybrid.Core.Interop;

namespace Hybrid.Node.Cluster;

/// <summary>
/// An <see cref="IClusterMetadata"/> that waits out an unavailable metadata store instead of failing the migration
/// that asked: reads are retried; a compare-and-swap whose outcome is unknown (the store went away mid-call) is
/// resolved by reading the state again. If it shows the state the decision produced, the write landed; if it still
/// shows the expected state, the write is tried again; otherwise another decider moved first and the caller decides
/// again (false, as for any lost race). The data path never goes through here: while the store is down, nodes keep
/// serving in the views they have; only decisions wait.
/// </summary>
/// <param name="inner">The store-backed metadata.</param>
/// <param name="isUnavailable">Which exceptions mean "unavailable for now" (e.g. Hybrid.Cluster's MetadataUnavailableException).</param>
/// <param name="nodes">The cluster's node names (to compare states).</param>
/// <param name="cores">The cluster's core names.</param>
/// <param name="ranges">The cluster's range names.</param>
public sealed class PatientClusterMetadata(IClusterMetadata inner, Func<Exception, bool> isUnavailable,
    IReadOnlyList<string> nodes, IReadOnlyList<string> cores, IReadOnlyList<string> ranges) : IClusterMetadata
{
    /// <summary>
    /// Told (once per call) when a read of the decision state or a decision's write waits for the store, and when it
    /// got through after waiting: an operator sees why a migration stalls. Null: nothing is said.
    /// </summary>
    public Action<string>? Report { get; init; }

    /// <summary>How long a call waits for the store before giving up with the store's own error.</summary>
    public TimeSpan RetryFor { get; init; } = TimeSpan.FromMinutes(2);

    /// <inheritdoc />
    public ClusterCore Current => Retry(() => inner.Current);

    /// <inheritdoc />
    public bool TryReplace(ClusterCore expected, IReadOnlyList<ClusterDecision> decisions, ClusterCore next)
    {
        DateTime started = DateTime.UtcNow, deadline = started + RetryFor;
        string before = Fingerprint(expected), after = Fingerprint(next);
        bool unknown = false;
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                // A write whose outcome was unknown may land late (the store applies it after the call gave up, and
                // after the look below saw the old state): this attempt's compare then fails against our own write.
                bool landed = inner.TryReplace(expected, decisions, next) || (unknown && Fingerprint(Current) == after);
                return Landed(landed, unknown, decisions, started);
            }
            catch (Exception e) when (isUnavailable(e) && DateTime.UtcNow < deadline)
            {
                if (!unknown)
                    Report?.Invoke($"{Kinds(decisions)} waits for the metadata store: {e.Message}");
                unknown = true;
                Thread.Sleep(Math.Min(50 * (attempt + 1), 500));
            }
            // The outcome is unknown: look at what the store holds now.
            string now = Fingerprint(Current);
            if (now == after)
                return Landed(true, unknown, decisions, started);
            if (now != before)
                return Landed(false, unknown, decisions, started);
        }
    }

    private bool Landed(bool landed, bool waited, IReadOnlyList<ClusterDecision> decisions, DateTime started)
    {
        if (waited)
        {
            Report?.Invoke($"{Kinds(decisions)} {(landed ? "published" : "lost to another decider's write")} after waiting " +
                $"{(DateTime.UtcNow - started).TotalMilliseconds:F0} ms for the metadata store");
        }
        return landed;
    }

    private static string Kinds(IReadOnlyList<ClusterDecision> decisions) => string.Join("+", decisions.Select(d => d.Kind).Distinct());

    private T Retry<T>(Func<T> call)
    {
        DateTime started = DateTime.UtcNow, deadline = started + RetryFor;
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                T result = call();
                if (attempt > 0)
                    Report?.Invoke($"read the decision state after waiting {(DateTime.UtcNow - started).TotalMilliseconds:F0} ms for the metadata store");
                return result;
            }
            catch (Exception e) when (isUnavailable(e) && DateTime.UtcNow < deadline)
            {
                if (attempt == 0)
                    Report?.Invoke("reading the decision state waits for the metadata store: " + e.Message);
                Thread.Sleep(Math.Min(50 * (attempt + 1), 500));
            }
        }
    }

    /// <summary>
    /// What a decision can change, as text: every node's view, floor and core views, every range's owner and phase.
    /// Each decision the core accepts changes at least one of them.
    /// </summary>
    private string Fingerprint(ClusterCore core)
    {
        var text = new StringBuilder();
        foreach (string n in nodes)
        {
            text.Append(n).Append(':').Append(core.View(n)).Append('/').Append(core.Floor(n));
            foreach (string c in cores)
                text.Append(',').Append(core.CoreView(n, c));
            text.Append(';');
        }
        foreach (string r in ranges)
            text.Append(r).Append('=').Append(core.Owner(r)).Append('/').Append(core.Phase(r)).Append(';');
        return text.ToString();
    }
}
