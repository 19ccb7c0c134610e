using System.Globalization;
using System.Text;

namespace Hybrid.Cli.Bench;

/// <summary>One workload's measured outcome; latencies in microseconds (time from batch submit to its reply).</summary>
internal sealed record BenchResult(
    string Workload,
    string Distribution,
    long Keys,
    int ValueSize,
    int Sessions,
    int Batch,
    int Pipeline,
    double Seconds,
    long Ops,
    long Errors,
    double P50Micros,
    double P99Micros,
    double P999Micros,
    double MaxMicros)
{
    /// <summary>Bytes the bench process (the client) allocated per operation in the measured window (not in the CSV).</summary>
    public double ClientBytesPerOp { get; init; }

    /// <summary>CPU time of the bench process (the client) per operation in the measured window, in µs (not in the CSV).</summary>
    public double ClientCpuMicrosPerOp { get; init; }

    /// <summary>
    /// Operations answered Ok or NotFound per second over the measured window: <see cref="Errors"/> (a quota's
    /// refusals, say) are not throughput (they were counted: 1.07M ops/s shown beside 2.15M errors). Errors are counted
    /// per request result, a few of which an operation can have (a read-modify-write), so the count stops at zero.
    /// </summary>
    public double OpsPerSecond => Seconds > 0 ? Math.Max(0, Ops - Errors) / Seconds : 0;

    /// <summary>The CSV header line <see cref="ToCsv"/> matches (column names are stable: scripts read them).</summary>
    public const string CsvHeader =
        "workload,distribution,keys,value_bytes,sessions,batch,pipeline,seconds,ops,errors,ops_per_sec,p50_us,p99_us,p999_us,max_us";

    /// <summary>One CSV line, invariant culture, no quoting needed (no field holds a comma).</summary>
    public string ToCsv()
    {
        var c = CultureInfo.InvariantCulture;
        return string.Join(',',
            Workload, Distribution, Keys.ToString(c), ValueSize.ToString(c), Sessions.ToString(c), Batch.ToString(c),
            Pipeline.ToString(c), Seconds.ToString("F3", c), Ops.ToString(c), Errors.ToString(c), OpsPerSecond.ToString("F0", c),
            P50Micros.ToString("F1", c), P99Micros.ToString("F1", c), P999Micros.ToString("F1", c), MaxMicros.ToString("F1", c));
    }

    /// <summary>Appends <paramref name="results"/> to <paramref name="path"/>, writing the header first when the file is new or empty.</summary>
    public static void AppendCsv(string path, IEnumerable<BenchResult> results)
    {
        bool fresh = !File.Exists(path) || new FileInfo(path).Length == 0;
        var text = new StringBuilder();
        if (fresh)
            text.Append(CsvHeader).Append('\n');
        foreach (var r in results)
            text.Append(r.ToCsv()).Append('\n');
        File.AppendAllText(path, text.ToString());
    }
}
