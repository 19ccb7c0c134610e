namespace Hybrid.Cli.Bench;

/// <summary>One operation a load loop issues.</summary>
internal enum OpKind : byte
{
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
    Noop,
}

/// <summary>How read/update keys are chosen.</summary>
internal enum KeyDistribution
{
    Uniform,
    Zipf,
}

/// <summary>
/// A YCSB core workload (A–F) or <c>noop</c>: the operation mix as proportions that sum to 1. D always reads the
/// latest inserted keys (its own request distribution); the others use the distribution the run asks for.
/// </summary>
internal sealed record Workload(string Name, double Read, double Update, double Insert, double Scan, double ReadModifyWrite, double Noop, bool Latest)
{
    /// <summary>Longest scan (YCSB's maxscanlength default); a scan's length is uniform in [1, MaxScanLength].</summary>
    public const int MaxScanLength = 100;

    /// <summary>The built-in workloads by (case-insensitive) name.</summary>
    public static IReadOnlyDictionary<string, Workload> All { get; } = new Dictionary<string, Workload>(StringComparer.OrdinalIgnoreCase)
    {
        ["a"] = new("A", 0.5, 0.5, 0, 0, 0, 0, false),
        ["b"] = new("B", 0.95, 0.05, 0, 0, 0, 0, false),
        ["c"] = new("C", 1, 0, 0, 0, 0, 0, false),
        ["d"] = new("D", 0.95, 0, 0.05, 0, 0, 0, true),
        ["e"] = new("E", 0, 0, 0.05, 0.95, 0, 0, false),
        ["f"] = new("F", 0.5, 0, 0, 0, 0.5, 0, false),
        ["noop"] = new("noop", 0, 0, 0, 0, 0, 1, false),
    };

    /// <summary>
    /// What workload E runs: the store has no range scan (keys are hashed; the native protocol has no Scan op), so a
    /// "scan" is a MultiGet of consecutive key numbers: the same number of records, read by point lookups.
    /// </summary>
    public const string ScanNote = "E: no range scan in the store; a scan is a MultiGet of 1-100 consecutive keys";

    /// <summary>Picks an operation with these proportions from a uniform draw in [0, 1).</summary>
    public OpKind Choose(double u)
    {
        if ((u -= Read) < 0)
            return OpKind.Read;
        if ((u -= Update) < 0)
            return OpKind.Update;
        if ((u -= Insert) < 0)
            return OpKind.Insert;
        if ((u -= Scan) < 0)
            return OpKind.Scan;
        if ((u -= ReadModifyWrite) < 0)
            return OpKind.ReadModifyWrite;
        return Noop > 0 ? OpKind.Noop : OpKind.Read;
    }
}
