namespace Hybrid.Cli.Bench;

/// <summary>
/// Zipfian ranks over [0, n) by the Gray et al. method YCSB uses ("Quickly generating billion-record synthetic
/// databases"): zeta(n, θ) is computed once (O(n)), then each draw costs one uniform number and one Pow. Rank 0 is
/// the most popular; P(rank 0) = 1/zeta(n, θ) exactly. Immutable after construction, so loops share one instance.
/// </summary>
internal sealed class ZipfGenerator
{
    /// <summary>YCSB's default skew.</summary>
    public const double DefaultTheta = 0.99;

    private readonly long _n;
    private readonly double _theta;
    private readonly double _alpha;
    private readonly double _zetaN;
    private readonly double _eta;
    private readonly double _half;

    /// <summary>A generator of ranks in [0, <paramref name="n"/>) with skew <paramref name="theta"/> (0 &lt; θ &lt; 1).</summary>
    public ZipfGenerator(long n, double theta = DefaultTheta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 2);
        if (theta is <= 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(theta), "theta must be in (0, 1)");
        _n = n;
        _theta = theta;
        _zetaN = Zeta(n, theta);
        double zeta2 = Zeta(2, theta);
        _alpha = 1.0 / (1.0 - theta);
        _eta = (1 - Math.Pow(2.0 / n, 1 - theta)) / (1 - zeta2 / _zetaN);
        _half = 1 + Math.Pow(0.5, theta);
    }

    /// <summary>Number of items.</summary>
    public long Count => _n;

    /// <summary>zeta(n, θ) = Σ_{i=1..n} 1/i^θ; the exact probability of rank r is 1/((r+1)^θ · zeta).</summary>
    public double ZetaN => _zetaN;

    /// <summary>Exact probability of <paramref name="rank"/> under the Zipf law (what the draws approximate).</summary>
    public double Probability(long rank) => 1.0 / (Math.Pow(rank + 1, _theta) * _zetaN);

    /// <summary>Draws a rank (0 = most popular).</summary>
    public long Next(ref FastRandom random)
    {
        double u = random.NextDouble();
        double uz = u * _zetaN;
        if (uz < 1)
            return 0;
        if (uz < _half)
            return 1;
        long rank = (long)(_n * Math.Pow(_eta * u - _eta + 1, _alpha));
        return Math.Min(rank, _n - 1);
    }

    /// <summary>
    /// Draws a rank and scatters it over the key space with FNV-1a (YCSB's scrambled Zipfian), so the hot keys are
    /// not neighbours and do not all land in one slot range.
    /// </summary>
    public long NextScrambled(ref FastRandom random) => (long)(Fnv1a((ulong)Next(ref random)) % (ulong)_n);

    private static double Zeta(long n, double theta)
    {
        double sum = 0;
        for (long i = 1; i <= n; i++)
            sum += 1.0 / Math.Pow(i, theta);
        return sum;
    }

    private static ulong Fnv1a(ulong value)
    {
        ulong hash = 0xCBF29CE484222325;
        for (int i = 0; i < 8; i++)
        {
            hash ^= value & 0xFF;
            hash *= 0x100000001B3;
            value >>= 8;
        }
        return hash;
    }
}
