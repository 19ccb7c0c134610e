namespace Hybrid.Node.Cluster;

/// <summary>Settings of <see cref="PullGovernor"/>; rates in payload bytes per second.</summary>
/// <param name="StartRate">The rate a job starts at.</param>
/// <param name="MinRate">The rate it never goes below (background pulls always progress).</param>
/// <param name="MaxRate">The rate it never goes above (an operator's cap, or effectively none).</param>
/// <param name="Step">What a window without slow misses adds to the rate.</param>
/// <param name="MissTarget">The longest a read miss may wait for its priority pull before the rate halves.</param>
/// <param name="Window">How often the rate is reconsidered.</param>
public sealed record PullGovernorOptions(double StartRate, double MinRate, double MaxRate, double Step, TimeSpan MissTarget, TimeSpan Window)
{
    /// <summary>
    /// Start at 32 MB/s, add 16 MB/s per 50 ms window in which no read miss waited over 2 ms, halve the rate in a window
    /// where one did, never below 4 MB/s nor above 1 GB/s. Measured on this machine (`hybrid bench migrate --records
    /// 1000000`, fixed caps, 2026-12-06): 10 MB/s gave a p99.9 during the migration 6.7-8.3x the one before, 20 MB/s
    /// 13.6-16.8x, no cap (about 90 MB/s) 20-40x.
    /// </summary>
    public static PullGovernorOptions Default { get; } = new(32e6, 4e6, 1e9, 16e6, TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(50));

    /// <summary>No adaptation: always <paramref name="bytesPerSecond"/> (0 = 1 GB/s, effectively no limit).</summary>
    public static PullGovernorOptions Fixed(long bytesPerSecond)
    {
        double rate = bytesPerSecond > 0 ? bytesPerSecond : 1e9;
        return new(rate, rate, rate, 0, TimeSpan.MaxValue, TimeSpan.FromMilliseconds(50));
    }

    /// <summary>These settings under an operator's cap of <paramref name="bytesPerSecond"/> (0 = none).</summary>
    public PullGovernorOptions CappedAt(long bytesPerSecond) => bytesPerSecond <= 0 ? this : this with
    {
        MaxRate = Math.Min(MaxRate, bytesPerSecond),
        StartRate = Math.Min(StartRate, bytesPerSecond),
        MinRate = Math.Min(MinRate, bytesPerSecond),
    };
}

/// <summary>
/// The background pulls' rate, adapted to load (Rocksteady: background pulls run below client work). The signal is
/// the one clients feel from a migration: how long a read that missed at the target waits for its priority pull. That
/// wait grows when the target's or the source's cores are busy (the pull's request, the source's read and the reply
/// each wait for a core), and background pulls are what a migration adds to that load. Additive increase,
/// multiplicative decrease per window, like TCP's congestion control; a token bucket (at most one window of burst)
/// spaces the chunks. Thread-safe: partitions charge their chunks, the priority thread reports misses. Time is an
/// input (Stopwatch ticks), so the policy is tested without clocks.
/// </summary>
public sealed class PullGovernor(PullGovernorOptions options)
{
    private readonly Lock _lock = new();
    private double _rate = options.StartRate;
    private double _allowance;
    private long _refilled = -1;
    private long _windowStart = -1;
    private long _slowestMissTicks; // this window's longest miss wait, in Stopwatch ticks

    /// <summary>The rate in force now (payload bytes per second).</summary>
    public double Rate
    {
        get
        {
            lock (_lock)
                return _rate;
        }
    }

    /// <summary>A read miss waited <paramref name="waited"/> for its priority pull.</summary>
    public void OnMiss(TimeSpan waited)
    {
        long ticks = (long)(waited.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        long seen = Volatile.Read(ref _slowestMissTicks);
        while (ticks > seen)
        {
            long was = Interlocked.CompareExchange(ref _slowestMissTicks, ticks, seen);
            if (was == seen)
                break;
            seen = was;
        }
    }

    /// <summary>
    /// A partition applied a chunk of <paramref name="bytes"/> at <paramref name="now"/> (Stopwatch ticks): returns how
    /// long it should pause before the next one. Also closes the window if it has run out and adjusts the rate.
    /// </summary>
    public TimeSpan Charge(long bytes, long now)
    {
        lock (_lock)
        {
            if (_refilled < 0)
                (_refilled, _windowStart) = (now, now);
            double window = options.Window.TotalSeconds;
            double elapsed = (double)(now - _windowStart) / System.Diagnostics.Stopwatch.Frequency;
            if (elapsed >= window)
            {
                long slowest = Interlocked.Exchange(ref _slowestMissTicks, 0);
                bool slow = slowest > options.MissTarget.TotalSeconds * System.Diagnostics.Stopwatch.Frequency;
                _rate = slow ? Math.Max(options.MinRate, _rate / 2) : Math.Min(options.MaxRate, _rate + options.Step);
                _windowStart = now;
            }
            double since = (double)(now - _refilled) / System.Diagnostics.Stopwatch.Frequency;
            _refilled = now;
            _allowance = Math.Min(_allowance + _rate * since, _rate * window) - bytes;
            return _allowance >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(-_allowance / _rate, 1));
        }
    }
}
