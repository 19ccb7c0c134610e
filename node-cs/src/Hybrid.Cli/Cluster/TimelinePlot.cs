using System.Globalization;
using System.Text;

namespace Hybrid.Cli.Cluster;

/// <summary>
/// The migration benchmark's timeline as a PNG and an SVG (no plotting package): per run a column with throughput on
/// top and p50/p99/p99.9 latency (log scale) below, the seconds of the migration shaded.
/// </summary>
internal static class TimelinePlot
{
    private const int PanelWidth = 520, PanelHeight = 200, Margin = 60;
    private const int Blue = 0x1f77b4, Green = 0x2ca02c, Orange = 0xff7f0e, Red = 0xd62728, Shade = 0xe4e4e4, Grid = 0xcccccc;

    /// <summary>The timeline as a PNG (same layout as <see cref="Svg"/>).</summary>
    public static byte[] Png(IReadOnlyList<MigrationBench.Second> seconds)
    {
        string[] modes = [.. seconds.Select(s => s.Mode).Distinct()];
        var picture = new Raster((Math.Max(1, modes.Length) * (PanelWidth + Margin)) + Margin, (2 * (PanelHeight + Margin)) + Margin);
        double maxOps = Math.Max(1, seconds.Count == 0 ? 0 : seconds.Max(s => s.Ops));
        double maxLatency = Math.Max(10, seconds.Count == 0 ? 0 : seconds.Max(s => s.P999));
        for (int m = 0; m < modes.Length; m++)
        {
            var run = seconds.Where(s => s.Mode == modes[m]).ToList();
            int x0 = Margin + (m * (PanelWidth + Margin));
            int X(int at) => x0 + (int)Math.Round(PanelWidth * at / (double)Math.Max(1, run.Count - 1));
            int y0 = Margin, y1 = (2 * Margin) + PanelHeight;
            int YOps(double ops) => y0 + PanelHeight - (int)Math.Round(PanelHeight * ops / maxOps);
            int YLatency(double micros) => y1 + PanelHeight - (int)Math.Round(PanelHeight * Math.Log10(Math.Max(1, micros)) / Math.Log10(maxLatency));
            foreach (int top in new[] { y0, y1 })
                PngPanel(picture, x0, top, run, X);
            picture.Text(x0, y0 - 16, $"{modes[m]}: throughput, ops/s (max {maxOps:F0})", 0);
            picture.Text(x0 - 8 - Raster.TextWidth("0"), y0 + PanelHeight - 5, "0", 0);
            picture.Text(x0, y1 - 16, $"{modes[m]}: latency, us (log): p50 green, p99 orange, p99.9 red", 0);
            for (int decade = 1; Math.Pow(10, decade) <= maxLatency; decade++)
            {
                int y = YLatency(Math.Pow(10, decade));
                picture.Line(x0 + 1, y, x0 + PanelWidth - 1, y, Grid);
                string label = "1E" + decade.ToString(CultureInfo.InvariantCulture);
                picture.Text(x0 - 8 - Raster.TextWidth(label), y - 5, label, 0);
            }
            PngSeries(picture, run, X, s => YOps(s.Ops), Blue, latency: false);
            PngSeries(picture, run, X, s => YLatency(s.P50), Green, latency: true);
            PngSeries(picture, run, X, s => YLatency(s.P99), Orange, latency: true);
            PngSeries(picture, run, X, s => YLatency(s.P999), Red, latency: true);
            string span = run.Count.ToString(CultureInfo.InvariantCulture) + " s";
            picture.Text(x0 + PanelWidth - Raster.TextWidth(span), y1 + PanelHeight + 6, span, 0);
        }
        return Cluster.Png.Encode(picture);
    }

    private static void PngPanel(Raster picture, int x0, int y0, List<MigrationBench.Second> run, Func<int, int> x)
    {
        var during = run.Where(s => s.Phase == "during").ToList();
        if (during.Count > 0)
            picture.Fill(x(during[0].At), y0 + 1, Math.Max(x(during[0].At) + 1, x(during[^1].At)), y0 + PanelHeight - 1, Shade);
        picture.Box(x0, y0, x0 + PanelWidth, y0 + PanelHeight, 0);
    }

    /// <summary>One polyline; a <paramref name="latency"/> series has no point in a second that completed no request.</summary>
    private static void PngSeries(Raster picture, List<MigrationBench.Second> run, Func<int, int> x, Func<MigrationBench.Second, int> y, int rgb, bool latency)
    {
        for (int i = 1; i < run.Count; i++)
        {
            if (latency && (run[i - 1].Ops == 0 || run[i].Ops == 0))
                continue;
            picture.Line(x(run[i - 1].At), y(run[i - 1]), x(run[i].At), y(run[i]), rgb, thickness: 2);
        }
    }

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
