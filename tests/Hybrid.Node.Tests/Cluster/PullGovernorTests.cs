using System.Diagnostics;
using Hybrid.Node.Cluster;

namespace Hybrid.Node.Tests.Cluster;

/// <summary><see cref="PullGovernor"/>'s policy, with time as an input: additive increase, multiplicative decrease, a token bucket.</summary>
public class PullGovernorTests
{
    private static readonly PullGovernorOptions Options = new(10e6, 1e6, 40e6, 10e6, TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(50));

    private static long At(double ms) => (long)(ms / 1000 * Stopwatch.Frequency);

    [Fact]
    public void Without_slow_misses_the_rate_climbs_a_step_per_window_up_to_the_maximum()
    {
        var governor = new PullGovernor(Options);
        governor.Charge(0, At(0));
        governor.OnMiss(TimeSpan.FromMilliseconds(1)); // a fast miss is no reason to slow down
        double[] rates = [.. new[] { 50.0, 100, 150, 200 }.Select(ms => { governor.Charge(0, At(ms)); return governor.Rate; })];
        Assert.Equal([20e6, 30e6, 40e6, 40e6], rates);
    }

    [Fact]
    public void A_window_with_a_slow_miss_halves_the_rate_and_the_floor_holds()
    {
        var governor = new PullGovernor(Options);
        governor.Charge(0, At(0));
        governor.OnMiss(TimeSpan.FromMilliseconds(5));
        governor.OnMiss(TimeSpan.FromMilliseconds(1)); // the window keeps its slowest miss
        governor.Charge(0, At(20));
        Assert.Equal(10e6, governor.Rate); // decided when the window ends, not before
        governor.Charge(0, At(50));
        Assert.Equal(5e6, governor.Rate);
        for (int w = 2; w < 8; w++)
        {
            governor.OnMiss(TimeSpan.FromMilliseconds(30));
            governor.Charge(0, At(w * 50));
        }
        Assert.Equal(1e6, governor.Rate);
    }

    [Fact]
    public void A_chunk_beyond_the_allowance_pauses_for_its_deficit_at_the_rate_in_force()
    {
        var governor = new PullGovernor(Options);
        Assert.Equal(10.0, governor.Charge(100_000, At(0)).TotalMilliseconds, precision: 3); // 100 kB at 10 MB/s
        Assert.Equal(TimeSpan.Zero, governor.Charge(0, At(10))); // the pause paid the debt
        // Idle time banks at most one window of allowance. After 190 idle ms (and one window without slow misses: the
        // rate is now 20 MB/s) that is 50 ms at 20 MB/s = 1 MB, not 3.8 MB: a 1 MB chunk goes at once, the next waits.
        Assert.Equal(TimeSpan.Zero, governor.Charge(0, At(200)));
        Assert.Equal(20e6, governor.Rate);
        Assert.Equal(TimeSpan.Zero, governor.Charge(1_000_000, At(200)));
        Assert.Equal(5.0, governor.Charge(100_000, At(200)).TotalMilliseconds, precision: 3);
    }

    [Fact]
    public void Fixed_ignores_misses_and_a_cap_bounds_every_rate()
    {
        var fixedRate = new PullGovernor(PullGovernorOptions.Fixed(5_000_000));
        fixedRate.Charge(0, At(0));
        fixedRate.OnMiss(TimeSpan.FromSeconds(1));
        fixedRate.Charge(0, At(60));
        Assert.Equal(5e6, fixedRate.Rate);
        Assert.Equal(1e9, new PullGovernor(PullGovernorOptions.Fixed(0)).Rate);

        PullGovernorOptions capped = PullGovernorOptions.Default.CappedAt(3_000_000);
        Assert.Equal((3e6, 3e6, 3e6), (capped.StartRate, capped.MinRate, capped.MaxRate));
        Assert.Same(PullGovernorOptions.Default, PullGovernorOptions.Default.CappedAt(0));
    }
}
