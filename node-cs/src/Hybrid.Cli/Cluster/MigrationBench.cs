using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using HdrHistogram;
using Hybrid.Cli.Bench;
using Hybrid.Client;
using Hybrid.Cluster;
using Hybrid.Protocol;

namespace Hybrid.Cli.Cluster;

/// <summary>
/// <c>hybrid bench migrate</c>: two node processes on this machine, N records of V bytes all on n1, a YCSB-B load
/// (95% reads, 5% updates, Zipf keys) through a <see cref="ClusterClient"/> the whole time; one range moves to n2 and
/// back first (not measured: the client's and nodes' migration paths are compiled then); after a quiet period
/// half of the slots move to n2 with Rocksteady, then (same data, same load) back to n1 with stop-and-copy. Reports the
/// migration rate, the time until the target first serves, and a 1-second timeline of throughput and latency
/// percentiles per run (CSV, and a PNG and an SVG plot).
/// </summary>
internal static class MigrationBench
{
    private const long HighestMicros = 600_000_000;

    /// <summary>The command.</summary>
    public static Command Command()
    {
        var records = new Option<long>("--records") { Description = "Records loaded before the runs", DefaultValueFactory = _ => 5_000_000 };
        var valueBytes = new Option<int>("--value-bytes") { Description = "Bytes per value", DefaultValueFactory = _ => 100 };
        var clients = new Option<int>("--clients") { Description = "Concurrent YCSB-B requests in flight", DefaultValueFactory = _ => 64 };
        var quiet = new Option<double>("--quiet-seconds") { Description = "Seconds of load before and after each migration", DefaultValueFactory = _ => 5 };
        var workers = new Option<int>("--workers") { Description = "Workers per node", DefaultValueFactory = _ => 2 };
        var memory = new Option<long>("--memory-budget") { Description = "Bytes of log in memory per node", DefaultValueFactory = _ => 1L << 30 };
        var output = new Option<string>("--out") { Description = "Output prefix: PREFIX.csv, PREFIX.png, PREFIX.svg", DefaultValueFactory = _ => "migrate-bench" };
        var dir = new Option<string?>("--dir") { Description = "Working directory (default: a new temp directory, deleted after)" };
        var pullRate = new Option<string>("--pull-rate")
        {
            Description = "Rocksteady's background pulls: adaptive (back off while read misses wait, the default) or max (as fast as they go)",
            DefaultValueFactory = _ => "adaptive",
        };
        pullRate.AcceptOnlyFromAmong("adaptive", "max");
        var command = new Command("migrate", "Two nodes, YCSB-B throughout: migrate half the slots with Rocksteady, then back with stop-and-copy; timeline CSV + PNG (+ SVG)");
        foreach (Option o in new Option[] { records, valueBytes, clients, quiet, workers, memory, output, dir, pullRate })
            command.Options.Add(o);
        command.SetAction(async (result, _) =>
        {
            var settings = new Settings(result.GetValue(records), result.GetValue(valueBytes), result.GetValue(clients),
                TimeSpan.FromSeconds(result.GetValue(quiet)), result.GetValue(workers), result.GetValue(memory), result.GetValue(output)!, result.GetValue(pullRate)!);
            return await RunAsync(settings, result.GetValue(dir));
        });
        return command;
    }

    internal sealed record Settings(long Records, int ValueBytes, int Clients, TimeSpan Quiet, int Workers, long MemoryBudget, string Output, string PullRate = "adaptive");

    /// <summary>One second of one run.</summary>
    internal sealed record Second(string Mode, int At, string Phase, long Ops, double P50, double P99, double P999, long Errors);

    internal static async Task<int> RunAsync(Settings settings, string? workDir)
    {
        string dir = workDir ?? Path.Combine(Path.GetTempPath(), "hybrid-bench-migrate-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        string spec = LocalCluster.MetadataSpec(dir, null);
        var processes = new List<Process>();
        try
        {
            await using IMetadataStore store = MetadataStores.Open(spec);
            var metadata = new DurableClusterMetadata(store);
            await LocalCluster.InitializeAsync(metadata, 2, settings.Workers, 16, allOnFirst: true);
            foreach (string n in new[] { "n1", "n2" })
            {
                processes.Add(LocalCluster.StartNode(dir, spec, n, ["--memory-budget", settings.MemoryBudget.ToString(CultureInfo.InvariantCulture),
                    "--durability", "async", "--trace", Path.Combine(dir, n + ".trace.ndjson")]));
            }
            IReadOnlyList<NodeInfo> live = await LocalCluster.WaitLiveAsync(metadata.Typed, ["n1", "n2"], TimeSpan.FromSeconds(60));
            byte[] peerKey = await metadata.PeerKeyAsync();
            var routing = new ClusterRoutingSource(metadata.Typed);
            await using ClusterClient client = await ClusterClient.ConnectAsync(routing, new HybridClientOptions { MaxInFlightBatches = 8 });

            var loadClock = Stopwatch.StartNew();
            await LoadAsync(client, settings);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"loaded {settings.Records:N0} records of {settings.ValueBytes} bytes in {loadClock.Elapsed.TotalSeconds:F1} s"));

            List<string> half = LocalCluster.RangesIn(metadata.Log, 0, 8191);
            // Not measured: one range to n2 and back under the same load first, so that the measured runs do not pay
            // for the first compilation of the paths a migration takes in the client (rerouting on NotOwner and
            // ViewChanged) and in both nodes (their own start-up warm-up, NodeWarmUp, covers the nodes' part too).
            var warm = settings with { Quiet = TimeSpan.FromSeconds(1) };
            Run warmThere = await RunOnceAsync("warm-up", client, warm, live.First(n => n.Id == "n2"), peerKey, [half[0]], stopAndCopy: false);
            Run warmBack = await RunOnceAsync("warm-up", client, warm, live.First(n => n.Id == "n1"), peerKey, [half[0]], stopAndCopy: false);
            long warmErrors = warmThere.Seconds.Concat(warmBack.Seconds).Sum(s => s.Errors);
            if (warmErrors > 0 || warmThere.Report.Error is not null || warmBack.Report.Error is not null)
            {
                Console.Error.WriteLine($"warm-up migration failed: {warmThere.Report.Error ?? warmBack.Report.Error ?? warmErrors + " failed requests"}");
                return 1;
            }
            Run rock = await RunOnceAsync("rocksteady", client, settings, live.First(n => n.Id == "n2"), peerKey, half, stopAndCopy: false);
            live = await metadata.Typed.ListLiveNodesAsync();
            Run stop = await RunOnceAsync("stop-and-copy", client, settings, live.First(n => n.Id == "n1"), peerKey, half, stopAndCopy: true);
            MigrationReport rockReport = rock.Report, stopReport = stop.Report;

            var seconds = rock.Seconds.Concat(stop.Seconds).ToList();
            await File.WriteAllTextAsync(settings.Output + ".csv", Csv(seconds));
            await File.WriteAllTextAsync(settings.Output + ".svg", TimelinePlot.Svg(seconds));
            await File.WriteAllBytesAsync(settings.Output + ".png", TimelinePlot.Png(seconds));
            Console.WriteLine(Summary("rocksteady", rock));
            Console.WriteLine(Summary("stop-and-copy", stop));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rocksteady vs stop-and-copy: time until the target serves {stopReport.FirstServed?.TotalMilliseconds / Math.Max(rockReport.FirstServed?.TotalMilliseconds ?? 1, 1):F1}x shorter; " +
                $"every record at the target {stop.AllAtTarget.TotalSeconds / Math.Max(rock.AllAtTarget.TotalSeconds, 1e-3):F2}x sooner; " +
                $"whole migration (with checkpoint and drop) {stopReport.Elapsed.TotalSeconds / rockReport.Elapsed.TotalSeconds:F2}x"));
            Console.WriteLine($"timeline: {settings.Output}.csv, plot: {settings.Output}.png (and .svg), node traces: {dir}/n*.trace.ndjson");
            return rockReport.Error is null && stopReport.Error is null && seconds.All(s => s.Errors == 0) ? 0 : 1;
        }
        finally
        {
            foreach (Process p in processes)
            {
                using var kill = Process.Start("kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)]);
                await kill.WaitForExitAsync();
                await p.WaitForExitAsync();
                p.Dispose();
            }
            if (workDir is null)
            {
                await Task.Delay(500);
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static byte[] Key(long i)
    {
        var key = new byte[KeyFormat.Length];
        KeyFormat.Write(i, key);
        return key;
    }

    private static async Task LoadAsync(ClusterClient client, Settings settings)
    {
        var value = new byte[settings.ValueBytes];
        Array.Fill(value, (byte)'x');
        long next = -1;
        async Task Loader()
        {
            long i;
            while ((i = Interlocked.Increment(ref next)) < settings.Records)
            {
                WriteResult w = await client.PutAsync(0, Key(i), value);
                if (w.Status != Status.Ok)
                    throw new InvalidOperationException($"load of record {i}: {w.Status}");
            }
        }
        await Task.WhenAll(Enumerable.Range(0, 256).Select(_ => Task.Run(Loader)));
    }

    /// <summary>One run: its 1-second timeline, the target's report, the coordinator's steps (name, ms) and the p99.9 (us) of each phase.</summary>
    private sealed record Run(List<Second> Seconds, MigrationReport Report, IReadOnlyList<(string Name, double Ms)> Steps, IReadOnlyDictionary<string, double> P999)
    {
        /// <summary>From the request until every record was at the target (the steps up to the end of the pulls).</summary>
        public TimeSpan AllAtTarget => TimeSpan.FromMilliseconds(Steps.TakeWhile(s => s.Name != "pulls").Sum(s => s.Ms) + Steps.Where(s => s.Name == "pulls").Sum(s => s.Ms));

        /// <summary>How long the background pulls (the copy, in stop-and-copy) ran.</summary>
        public TimeSpan Copying => TimeSpan.FromMilliseconds(Steps.Where(s => s.Name is "pulls" or "copy").Sum(s => s.Ms));
    }

    /// <summary>Load before, a migration, load after.</summary>
    private static async Task<Run> RunOnceAsync(string mode, ClusterClient client, Settings settings,
        NodeInfo target, byte[] peerKey, IReadOnlyList<string> ranges, bool stopAndCopy)
    {
        var timeline = new Timeline();
        using var stop = new CancellationTokenSource();
        var zipf = new ZipfGenerator(settings.Records);
        var value = new byte[settings.ValueBytes];
        Array.Fill(value, (byte)'y');
        async Task Loop(int seed)
        {
            var random = new FastRandom((ulong)seed + 1);
            while (!stop.IsCancellationRequested)
            {
                byte[] key = Key(zipf.NextScrambled(ref random));
                bool write = random.NextDouble() < 0.05;
                long started = Stopwatch.GetTimestamp();
                bool ok;
                try
                {
                    ok = write ? (await client.PutAsync(0, key, value)).Status == Status.Ok : (await client.GetAsync(0, key)).Status == Status.Ok;
                }
                catch (Exception e) when (e is HybridConnectionException or HybridProtocolException)
                {
                    ok = false;
                }
                timeline.Record(Stopwatch.GetElapsedTime(started), ok);
            }
        }
        Task[] loops = [.. Enumerable.Range(0, settings.Clients).Select(i => Task.Run(() => Loop(i)))];
        await Task.Delay(settings.Quiet);
        timeline.Mark("during");
        var (report, steps) = await MigrationProgressRun(mode, target, peerKey, ranges, stopAndCopy, settings.PullRate);
        timeline.Mark("after");
        await Task.Delay(settings.Quiet);
        await stop.CancelAsync();
        await Task.WhenAll(loops);
        return new Run(timeline.Seconds(mode), report, steps, new[] { "before", "during", "after" }.ToDictionary(p => p, p => timeline.Percentile(p, 99.9)));
    }

    private static async Task<(MigrationReport, IReadOnlyList<(string Name, double Ms)>)> MigrationProgressRun(string mode, NodeInfo target, byte[] peerKey,
        IReadOnlyList<string> ranges, bool stopAndCopy, string pullRate)
    {
        Console.WriteLine($"{mode}: moving {ranges.Count} ranges to {target.Id}{(stopAndCopy ? "" : $" (pull rate: {pullRate})")}...");
        MigrationReport report = await MigrationProgress.RunAsync(target, peerKey, ranges, showBar: false, stopAndCopy, pullRate);
        Console.WriteLine($"{mode}: {report.Summary()}");
        var steps = new List<(string, double)>();
        if (await LocalCluster.StatusAsync(target, peerKey) is { } status && status.TryGetProperty("steps", out JsonElement all))
        {
            // Each step reads "NAME ... 123ms": the last word is its duration.
            foreach (string step in all.EnumerateArray().Select(s => s.GetString() ?? ""))
            {
                int cut = step.LastIndexOf(' ');
                if (cut > 0 && double.TryParse(step.AsSpan(cut + 1).TrimEnd("ms"), NumberStyles.Float, CultureInfo.InvariantCulture, out double ms))
                    steps.Add((step[..cut].Split(' ')[0], ms));
            }
            Console.WriteLine($"{mode} steps: {string.Join(", ", all.EnumerateArray().Select(s => s.GetString()))}");
        }
        return (report, steps);
    }

    private static string Csv(IEnumerable<Second> seconds)
    {
        var csv = new StringBuilder("mode,second,phase,ops_per_s,p50_us,p99_us,p999_us,errors\n");
        foreach (Second s in seconds)
            csv.Append(CultureInfo.InvariantCulture, $"{s.Mode},{s.At},{s.Phase},{s.Ops},{s.P50:F0},{s.P99:F0},{s.P999:F0},{s.Errors}\n");
        return csv.ToString();
    }

    private static string Summary(string mode, Run run)
    {
        List<Second> seconds = run.Seconds;
        MigrationReport report = run.Report;
        string Phase(string phase)
        {
            var inPhase = seconds.Where(s => s.Phase == phase).ToList();
            if (inPhase.Count == 0)
                return $"{phase}: -";
            return string.Create(CultureInfo.InvariantCulture,
                $"{phase}: {inPhase.Average(s => s.Ops):F0} ops/s, p50 {inPhase.Average(s => s.P50):F0} us, p99 {inPhase.Average(s => s.P99):F0} us, p99.9 max {inPhase.Max(s => s.P999):F0} us");
        }
        string rates = string.Create(CultureInfo.InvariantCulture,
            $"every record at the target after {run.AllAtTarget.TotalSeconds:F2} s = {report.Bytes / 1e6 / Math.Max(run.AllAtTarget.TotalSeconds, 1e-3):F1} MB/s; " +
            $"{(mode == "rocksteady" ? "background pulls" : "copy")} alone {run.Copying.TotalSeconds:F2} s = {report.Bytes / 1e6 / Math.Max(run.Copying.TotalSeconds, 1e-3):F1} MB/s; " +
            $"p99.9 over each phase: before {run.P999["before"]:F0} us, during {run.P999["during"]:F0} us ({run.P999["during"] / Math.Max(run.P999["before"], 1):F1}x), after {run.P999["after"]:F0} us");
        return $"{mode}: {report.Summary()}; errors {seconds.Sum(s => s.Errors)}\n  {rates}\n  {Phase("before")}\n  {Phase("during")}\n  {Phase("after")}";
    }

    /// <summary>Per-second latency histograms and counts, recorded from many loops.</summary>
    private sealed class Timeline
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<(LongHistogram Latency, long Errors)> _seconds = [];
        private readonly List<(int From, string Phase)> _phases = [(0, "before")];
        private readonly Lock _lock = new();

        public void Mark(string phase)
        {
            lock (_lock)
                _phases.Add(((int)_clock.Elapsed.TotalSeconds, phase));
        }

        public void Record(TimeSpan latency, bool ok)
        {
            int at = (int)_clock.Elapsed.TotalSeconds;
            long micros = Math.Clamp((long)latency.TotalMicroseconds, 1, HighestMicros);
            lock (_lock)
            {
                while (_seconds.Count <= at)
                    _seconds.Add((new LongHistogram(HighestMicros, 3), 0));
                _seconds[at].Latency.RecordValue(micros);
                if (!ok)
                    _seconds[at] = (_seconds[at].Latency, _seconds[at].Errors + 1);
            }
        }

        public List<Second> Seconds(string mode)
        {
            lock (_lock)
            {
                var result = new List<Second>();
                for (int i = 0; i < _seconds.Count; i++)
                {
                    var (h, errors) = _seconds[i];
                    string phase = _phases.Last(p => p.From <= i).Phase;
                    result.Add(new Second(mode, i, phase, h.TotalCount, At(h, 50), At(h, 99), At(h, 99.9), errors));
                }
                return result;
            }
        }

        /// <summary>The <paramref name="percentile"/> of every latency recorded in <paramref name="phase"/> (0 when none).</summary>
        public double Percentile(string phase, double percentile)
        {
            lock (_lock)
            {
                var merged = new LongHistogram(HighestMicros, 3);
                for (int i = 0; i < _seconds.Count; i++)
                {
                    if (_phases.Last(p => p.From <= i).Phase == phase)
                        merged.Add(_seconds[i].Latency);
                }
                return At(merged, percentile);
            }
        }

        private static double At(LongHistogram h, double percentile) => h.TotalCount == 0 ? 0 : h.GetValueAtPercentile(percentile);
    }
}
