using System.CommandLine;
using System.Globalization;
using Hybrid.Cli.Bench;
using Spectre.Console;

namespace Hybrid.Cli.Commands;

/// <summary><c>hybrid bench</c>: YCSB A–F and noop over the native protocol, with live progress, a table and optional CSV.</summary>
internal static class BenchCommand
{
    /// <summary>The command; its options map one to one onto <see cref="BenchOptions"/>.</summary>
    public static Command Create()
    {
        var common = new CommonOptions();
        var workload = new Option<string>("--workload", "-w") { Description = "Comma-separated workloads: a,b,c,d,e,f,noop", DefaultValueFactory = _ => "a" };
        var distribution = new Option<KeyDistribution>("--distribution", "-d") { Description = "uniform or zipf", DefaultValueFactory = _ => KeyDistribution.Zipf };
        var theta = new Option<double>("--theta") { Description = "Zipf skew", DefaultValueFactory = _ => ZipfGenerator.DefaultTheta };
        var keys = new Option<long>("--keys", "-k") { Description = "Records (loaded first unless --no-load)", DefaultValueFactory = _ => 1_000_000L };
        var valueSize = new Option<int>("--value-size") { Description = "Bytes per value", DefaultValueFactory = _ => 100 };
        var sessions = new Option<int>("--sessions", "-s") { Description = "Connections", DefaultValueFactory = _ => 4 };
        var batch = new Option<int>("--batch", "-b") { Description = "Requests per batch (frame)", DefaultValueFactory = _ => 64 };
        var pipeline = new Option<int>("--pipeline", "-p") { Description = "Batches in flight per connection", DefaultValueFactory = _ => 4 };
        var duration = new Option<double>("--duration") { Description = "Measured seconds per workload", DefaultValueFactory = _ => 10.0 };
        var warmup = new Option<double>("--warmup") { Description = "Unmeasured seconds before each workload", DefaultValueFactory = _ => 2.0 };
        var noLoad = new Option<bool>("--no-load") { Description = "The records are already there: skip the load phase" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1UL };
        var csv = new Option<string?>("--csv") { Description = "Append results to this CSV file" };
        var transport = new Option<string>("--transport", "-t")
        {
            Description = "tcp (the native socket at --host/--port), shm[:PATH], memif[:SOCKET[@SERVICE]], af_packet:IFACE[@SERVICE] or tcp:HOST:PORT (length-prefixed messages)",
            DefaultValueFactory = _ => "tcp",
        };
        var command = new Command("bench", "YCSB-style load over the native protocol (" + Workload.ScanNote + ")");
        common.AddTo(command, cluster: false); // the bench drives one node
        foreach (var option in new Option[] { workload, distribution, theta, keys, valueSize, sessions, batch, pipeline, duration, warmup, noLoad, seed, csv, transport })
            command.Options.Add(option);
        command.SetAction(async (result, cancellationToken) =>
        {
            BenchOptions options;
            try
            {
                options = new BenchOptions
                {
                    EndPoint = common.EndPoint(result),
                    Transport = ParseTransport(result.GetValue(transport)!),
                    Tenant = result.GetValue(common.Tenant)!,
                    Secret = common.SecretBytes(result),
                    Table = result.GetValue(common.Table),
                    Workloads = ParseWorkloads(result.GetValue(workload)!),
                    Distribution = result.GetValue(distribution),
                    Theta = result.GetValue(theta),
                    Keys = result.GetValue(keys),
                    ValueSize = result.GetValue(valueSize),
                    Sessions = result.GetValue(sessions),
                    Batch = result.GetValue(batch),
                    Pipeline = result.GetValue(pipeline),
                    Duration = TimeSpan.FromSeconds(result.GetValue(duration)),
                    Warmup = TimeSpan.FromSeconds(result.GetValue(warmup)),
                    Load = !result.GetValue(noLoad),
                    Seed = result.GetValue(seed),
                    CsvPath = result.GetValue(csv),
                };
                options.Validate();
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"hybrid bench: {e.Message}");
                return 2;
            }
            return await RunAsync(options, cancellationToken).ConfigureAwait(false);
        });
        command.Subcommands.Add(TransportComparison.Create());
        return command;
    }

    /// <summary>
    /// The bench's <c>--transport</c>: <c>tcp</c> means the native socket (null); anything else must be a transport spec
    /// (checked now, so a typo fails before connecting).
    /// </summary>
    internal static string? ParseTransport(string text)
    {
        if (text.Equals("tcp", StringComparison.OrdinalIgnoreCase))
            return null;
        Hybrid.Transport.TransportSpec.Parse(text, server: false);
        return text;
    }

    /// <summary>Workload names, comma-separated, case-insensitive; throws <see cref="ArgumentException"/> on an unknown one.</summary>
    internal static IReadOnlyList<Workload> ParseWorkloads(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(n => Workload.All.TryGetValue(n, out var w) ? w : throw new ArgumentException($"unknown workload '{n}' (a-f, noop)"))
            .ToArray();

    private static async Task<int> RunAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        IReadOnlyList<BenchResult> results = [];
        try
        {
            if (AnsiConsole.Profile.Capabilities.Interactive)
            {
                await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn())
                    .StartAsync(async ctx =>
                    {
                        var tasks = new Dictionary<string, ProgressTask>();
                        var runner = new BenchRunner(options)
                        {
                            Progress = (phase, done, rate) =>
                            {
                                if (!tasks.TryGetValue(phase, out var task))
                                    tasks[phase] = task = ctx.AddTask(phase, maxValue: 1);
                                task.Value = done;
                                task.Description = $"{phase}: {rate.ToString("N0", CultureInfo.InvariantCulture)} ops/s";
                            },
                        };
                        results = await runner.RunAsync(cancellationToken).ConfigureAwait(false);
                    }).ConfigureAwait(false);
            }
            else
            {
                // Not a terminal (CI, a script): one plain line per second instead of a live display.
                long lastSecond = -1;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var runner = new BenchRunner(options)
                {
                    Progress = (phase, done, rate) =>
                    {
                        long second = (long)clock.Elapsed.TotalSeconds;
                        if (second == lastSecond)
                            return;
                        lastSecond = second;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{phase}: {done:P0} {rate:N0} ops/s"));
                    },
                };
                results = await runner.RunAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Hybrid.Client.HybridProtocolException or Hybrid.Client.HybridConnectionException
            or System.Net.Sockets.SocketException or Hybrid.Transport.TransportException)
        {
            Console.Error.WriteLine($"hybrid bench: {e.Message}");
            return 2;
        }
        Print(options, results);
        if (options.CsvPath is { } path)
            BenchResult.AppendCsv(path, results);
        return results.Any(r => r.Errors > 0) ? 1 : 0;
    }

    private static void Print(BenchOptions options, IReadOnlyList<BenchResult> results)
    {
        var c = CultureInfo.InvariantCulture;
        Tables.WidenWhenRedirected(120);
        var table = new Table().Title(string.Create(c,
            $"{options.Keys:N0} keys x {options.ValueSize} B, {options.Sessions} sessions x {options.Pipeline} batches in flight x {options.Batch} requests over {options.Transport ?? "tcp"}"));
        foreach (var column in new[] { "workload", "key choice", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "errors" })
            table.AddColumn(new TableColumn(column).RightAligned());
        foreach (var r in results)
        {
            table.AddRow(r.Workload, r.Distribution, r.OpsPerSecond.ToString("N0", c), r.P50Micros.ToString("N1", c), r.P99Micros.ToString("N1", c),
                r.P999Micros.ToString("N1", c), r.MaxMicros.ToString("N1", c), r.Errors.ToString(c));
        }
        AnsiConsole.Write(table);
        foreach (var r in results)
        {
            AnsiConsole.MarkupLine(Markup.Escape(string.Create(c,
                $"{r.Workload}: client {r.ClientCpuMicrosPerOp:F2} µs CPU/op, {r.ClientBytesPerOp:F1} B allocated/op")));
        }
        if (results.Any(r => r.Workload == "E"))
            AnsiConsole.MarkupLine(Markup.Escape(Workload.ScanNote));
        var noop = results.FirstOrDefault(r => r.Workload == "noop");
        if (noop is { OpsPerSecond: > 0 })
        {
            foreach (var r in results.Where(r => r != noop))
                AnsiConsole.MarkupLine(Markup.Escape(string.Create(c, $"{r.Workload}: {r.OpsPerSecond / noop.OpsPerSecond:P0} of the noop ceiling")));
        }
    }
}
