using Hybrid.Cli.Bench;

namespace Hybrid.Cli.Tests;

public class CsvTests
{
    private static BenchResult Sample(string workload) => new(workload, "zipf", 1000, 100, 4, 64, 4, 2.0, 1_000_000, 4, 12.34, 56.78, 90.12, 345.6);

    [Fact]
    public void LineMatchesHeader()
    {
        var columns = BenchResult.CsvHeader.Split(',');
        var cells = Sample("A").ToCsv().Split(',');
        Assert.Equal(columns.Length, cells.Length);
        string Cell(string name) => cells[Array.IndexOf(columns, name)];
        Assert.Equal("A", Cell("workload"));
        Assert.Equal("499998", Cell("ops_per_sec")); // errors (a quota's refusals) are not throughput
        Assert.Equal("12.3", Cell("p50_us"));
        Assert.Equal("90.1", Cell("p999_us"));
        Assert.Equal("2.000", Cell("seconds"));
        Assert.Equal("4", Cell("errors"));
    }

    [Fact]
    public void AppendWritesTheHeaderOnce()
    {
        string path = Path.GetTempFileName();
        try
        {
            BenchResult.AppendCsv(path, [Sample("A"), Sample("B")]);
            BenchResult.AppendCsv(path, [Sample("noop")]);
            var lines = File.ReadAllLines(path);
            Assert.Equal([BenchResult.CsvHeader, Sample("A").ToCsv(), Sample("B").ToCsv(), Sample("noop").ToCsv()], lines);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
