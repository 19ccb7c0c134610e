using System.Globalization;
using System.Text;

namespace Hybrid.Cli.Cluster;

/// <summary>
/// The migration benchmark's timeline as an SVG (no plotting package): per run a column with throughput on top and
/// p50/p99/p99.9 latency (log scale) below, the seconds of the migration shaded.
/// </summary>
internal static class TimelinePlot
{
    private const int PanelWidth = 520, PanelHeight = 200, Margin = 60;

    public static string Svg(IReadOnlyList<MigrationBench.Second> seconds)
    {
        string[] modes = [.. seconds.Select(s => s.Mode).Distinct()];
        int width = (modes.Length * (PanelWidth + Margin)) + Margin, height = (2 * (PanelHeight + Margin)) + Margin;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        svg.Append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
        double maxOps = Math.Max(1, seconds.Max(s => s.Ops));
        double maxLatency = Math.Max(10, seconds.Max(s => s.P999));
        for (int m = 0; m < modes.Length; m++)
        {
            var run = seconds.Where(s => s.Mode == modes[m]).ToList();
            int x0 = Margin + (m * (PanelWidth + Margin));
            double X(int at) => x0 + (PanelWidth * at / (double)Math.Max(1, run.Count - 1));
            Panel(svg, x0, Margin, $"{modes[m]}: throughput (ops/s, max {maxOps:F0})", run, X);
            Series(svg, run.Select(s => (X(s.At), Margin + PanelHeight - (PanelHeight * s.Ops / maxOps))), "#1f77b4");
            int y1 = (2 * Margin) + PanelHeight;
            Panel(svg, x0, y1, $"{modes[m]}: latency (log10 us): p50 green, p99 orange, p99.9 red", run, X);
            double Y(double micros) => y1 + PanelHeight - (PanelHeight * Math.Log10(Math.Max(1, micros)) / Math.Log10(maxLatency));
            Series(svg, run.Select(s => (X(s.At), Y(s.P50))), "#2ca02c");
            Series(svg, run.Select(s => (X(s.At), Y(s.P99))), "#ff7f0e");
            Series(svg, run.Select(s => (X(s.At), Y(s.P999))), "#d62728");
            for (int decade = 1; Math.Pow(10, decade) <= maxLatency; decade++)
                svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 - 4}\" y=\"{Y(Math.Pow(10, decade)) + 4:F1}\" text-anchor=\"end\">1e{decade}</text>\n");
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void Panel(StringBuilder svg, int x0, int y0, string title, List<MigrationBench.Second> run, Func<int, double> x)
    {
        var during = run.Where(s => s.Phase == "during").ToList();
        if (during.Count > 0)
        {
            double from = x(during[0].At), to = x(during[^1].At);
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{from:F1}\" y=\"{y0}\" width=\"{Math.Max(2, to - from):F1}\" height=\"{PanelHeight}\" fill=\"#eeeeee\"/>\n");
        }
        svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x0}\" y=\"{y0}\" width=\"{PanelWidth}\" height=\"{PanelHeight}\" fill=\"none\" stroke=\"black\"/>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0}\" y=\"{y0 - 6}\">{title}</text>\n");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{x0 + PanelWidth}\" y=\"{y0 + PanelHeight + 14}\" text-anchor=\"end\">{run.Count} s</text>\n");
    }

    private static void Series(StringBuilder svg, IEnumerable<(double X, double Y)> points, string color)
    {
        svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"");
        foreach (var (x, y) in points)
            svg.Append(CultureInfo.InvariantCulture, $"{x:F1},{y:F1} ");
        svg.Append("\"/>\n");
    }
}
