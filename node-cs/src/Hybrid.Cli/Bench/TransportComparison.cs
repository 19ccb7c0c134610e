using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Node.Tenants;
using Hybrid.Transport.Dpdk;
using Spectre.Console;

namespace Hybrid.Cli.Bench;

/// <summary>
/// <c>hybrid bench transports</c>: the one-run comparison of the node over each transport. For every transport it
/// starts a fresh node (<c>hybrid server</c>, a child process, memory durability) listening on it, then runs
/// <c>hybrid bench</c> as a second child process (a process hosts one DPDK transport, and EAL must never start inside
/// this one) doing one-key GETs with one session, one request per batch and one batch in flight, so each operation
/// is one round trip; and prints ops/s and p50/p99 per transport with the targets of issue 6.
/// af_packet needs root: a veth pair is created for the run and removed after it. af_packet is a network link, so that
/// node lets no tenant in without AUTH: the bench authenticates as a tenant created (random secret) before the node starts.
/// </summary>
internal static class TransportComparison
{
    /// <summary>The command.</summary>
    public static Command Create()
    {
        var transports = new Option<string>("--transports") { Description = "Comma-separated: tcp, shm, memif, af_packet", DefaultValueFactory = _ => "tcp,shm,memif,af_packet" };
        var duration = new Option<double>("--duration") { Description = "Measured seconds per transport", DefaultValueFactory = _ => 5.0 };
        var warmup = new Option<double>("--warmup") { Description = "Unmeasured seconds before each measurement", DefaultValueFactory = _ => 1.0 };
        var keys = new Option<long>("--keys", "-k") { Description = "Records loaded first", DefaultValueFactory = _ => 1000L };
        var valueSize = new Option<int>("--value-size") { Description = "Bytes per value", DefaultValueFactory = _ => 100 };
        var workers = new Option<int>("--workers") { Description = "Node worker threads", DefaultValueFactory = _ => 1 };
        var command = new Command("transports", "One-key GET round trips over tcp, shm, memif and af_packet against a fresh node child process each");
        foreach (var option in new Option[] { transports, duration, warmup, keys, valueSize, workers })
            command.Options.Add(option);
        command.SetAction(result =>
        {
            var names = result.GetValue(transports)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var unknown = names.Where(n => n is not ("tcp" or "shm" or "memif" or "af_packet")).ToList();
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"hybrid bench transports: unknown transport(s) {string.Join(", ", unknown)} (tcp, shm, memif, af_packet)");
                return 2;
            }
            var settings = new Settings(result.GetValue(duration), result.GetValue(warmup), result.GetValue(keys), result.GetValue(valueSize), result.GetValue(workers));
            var rows = new List<Row>();
            foreach (var name in names)
            {
                Console.WriteLine($"== {name}");
                rows.Add(RunOne(name, settings));
            }
            Print(rows, settings);
            return rows.Any(r => r.Error is not null) ? 1 : 0;
        });
        return command;
    }

    private sealed record Settings(double Duration, double Warmup, long Keys, int ValueSize, int Workers);

    private sealed record Row(string Transport, double OpsPerSecond, double P50, double P99, long Errors, string? Error);

    private static Row RunOne(string name, Settings settings)
    {
        string id = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId % 10000}");
        string directory = Path.Combine(Path.GetTempPath(), $"hybrid-bench-transports-{id}-{name}");
        string csv = Path.Combine(Path.GetTempPath(), $"hybrid-bench-transports-{id}-{name}.csv");
        VethPair? veth = null;
        try
        {
            File.Delete(csv);
            string? serverSpec = null, clientSpec = null;
            List<string> auth = [];
            switch (name)
            {
                case "shm":
                    serverSpec = clientSpec = $"shm:/tmp/hyb-bench-{id}.sock";
                    break;
                case "memif":
                    serverSpec = clientSpec = $"memif:/tmp/hyb-bench-memif-{id}.sock";
                    break;
                case "af_packet":
                    veth = new VethPair("hybb" + id);
                    serverSpec = $"af_packet:{veth.A}";
                    clientSpec = $"af_packet:{veth.B}";
                    auth = CreateTenant(directory);
                    break;
            }
            var serverArgs = new List<string> { "server", "--data-dir", directory, "--port", "0", "--resp-port", "-1", "--metrics-port", "-1",
                "--durability", "memory", "--workers", settings.Workers.ToString(CultureInfo.InvariantCulture) };
            if (serverSpec is not null)
                serverArgs.AddRange(["--transport", serverSpec]);
            using var server = Child.Start(serverArgs);
            string ready = server.WaitForLine("hybrid: listening", TimeSpan.FromSeconds(60));
            string port = ready.Split(' ').First(t => t.StartsWith("native=", StringComparison.Ordinal))["native=".Length..];
            var c = CultureInfo.InvariantCulture;
            var benchArgs = new List<string> { "bench", "-w", "c", "-d", "uniform", "--keys", settings.Keys.ToString(c), "--value-size", settings.ValueSize.ToString(c),
                "-s", "1", "-b", "1", "-p", "1", "--duration", settings.Duration.ToString(c), "--warmup", settings.Warmup.ToString(c), "--port", port, "--csv", csv };
            if (clientSpec is not null)
                benchArgs.AddRange(["--transport", clientSpec]);
            benchArgs.AddRange(auth);
            using var client = Child.Start(benchArgs);
            int exit = client.WaitForExit(TimeSpan.FromSeconds(settings.Duration + settings.Warmup + 180));
            server.Terminate();
            if (!File.Exists(csv))
                return new Row(name, 0, 0, 0, 0, $"bench exited {exit} without results: {client.Output.Trim()}");
            var fields = File.ReadAllLines(csv).Last().Split(',');
            // Columns: see BenchResult.CsvHeader (ops_per_sec 10, p50_us 11, p99_us 12, errors 9).
            return new Row(name, double.Parse(fields[10], c), double.Parse(fields[11], c), double.Parse(fields[12], c), long.Parse(fields[9], c),
                exit == 0 ? null : $"bench exited {exit}");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or System.ComponentModel.Win32Exception)
        {
            return new Row(name, 0, 0, 0, 0, e.Message);
        }
        finally
        {
            veth?.Dispose();
            try
            {
                Directory.Delete(directory, recursive: true);
                File.Delete(csv);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A fresh data directory holding tenant <c>bench</c> with a random secret; the bench arguments that authenticate as it.</summary>
    private static List<string> CreateTenant(string directory)
    {
        if (Directory.Exists(directory))
            Directory.Delete(directory, recursive: true);
        Directory.CreateDirectory(directory);
        string secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        TenantRegistry.Open(directory).Create("bench", Encoding.UTF8.GetBytes(secret));
        return ["--tenant", "bench", "--secret", secret];
    }

    private static void Print(List<Row> rows, Settings settings)
    {
        var c = CultureInfo.InvariantCulture;
        var table = new Table().Title(string.Create(c,
            $"one-key GET ({settings.ValueSize} B values, {settings.Keys:N0} keys), 1 session, batch 1, pipeline 1, node with {settings.Workers} worker(s), {settings.Duration} s each"));
        foreach (var column in new[] { "transport", "ops/s", "p50 µs", "p99 µs", "p50 / tcp", "errors" })
            table.AddColumn(new TableColumn(column).RightAligned());
        var tcp = rows.FirstOrDefault(r => r.Transport == "tcp" && r.Error is null);
        foreach (var r in rows)
        {
            if (r.Error is not null)
            {
                table.AddRow(r.Transport, "failed", "", "", "", Markup.Escape(r.Error.Length > 60 ? r.Error[..60] : r.Error));
                continue;
            }
            string ratio = tcp is { P50: > 0 } ? (r.P50 / tcp.P50).ToString("F2", c) : "";
            table.AddRow(r.Transport, r.OpsPerSecond.ToString("N0", c), r.P50.ToString("F1", c), r.P99.ToString("F1", c), ratio, r.Errors.ToString(c));
        }
        Commands.Tables.WidenWhenRedirected(120);
        AnsiConsole.Write(table);
        foreach (var r in rows.Where(r => r.Error is not null))
            Console.WriteLine($"{r.Transport} failed: {r.Error}");
        var memif = rows.FirstOrDefault(r => r.Transport == "memif" && r.Error is null);
        if (memif is not null && tcp is { P50: > 0 })
            Console.WriteLine(string.Create(c, $"target memif p50 <= tcp p50 / 4: {memif.P50:F1} vs {tcp.P50 / 4:F1} µs -> {(memif.P50 <= tcp.P50 / 4 ? "met" : "NOT met")}"));
        var shm = rows.FirstOrDefault(r => r.Transport == "shm" && r.Error is null);
        if (shm is not null)
            Console.WriteLine(string.Create(c, $"target shm p50 <= 2 x 0.9 µs (raw ring round trip): {shm.P50:F1} µs -> {(shm.P50 <= 1.8 ? "met" : "NOT met")}"));
    }

    /// <summary>A <c>hybrid</c> child process (this same executable) with its output collected.</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly Lock _gate = new();

        private Child(Process process) => _process = process;

        public string Output
        {
            get
            {
                lock (_gate)
                    return _output.ToString();
            }
        }

        public static Child Start(IEnumerable<string> args)
        {
            string host = Environment.ProcessPath ?? "dotnet";
            var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(host) == "dotnet")
                info.ArgumentList.Add(typeof(TransportComparison).Assembly.Location);
            foreach (var arg in args)
                info.ArgumentList.Add(arg);
            var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {host}");
            var child = new Child(process);
            process.OutputDataReceived += (_, e) => child.Append(e.Data);
            process.ErrorDataReceived += (_, e) => child.Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return child;
        }

        private void Append(string? line)
        {
            if (line is null)
                return;
            lock (_gate)
                _output.Append(line).Append('\n');
        }

        public string WaitForLine(string prefix, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < timeout)
            {
                var line = Output.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
                if (line is not null)
                    return line;
                if (_process.HasExited)
                    throw new InvalidOperationException($"the node exited ({_process.ExitCode}): {Output.Trim()}");
                Thread.Sleep(20);
            }
            throw new TimeoutException($"no '{prefix}' line within {timeout.TotalSeconds} s: {Output.Trim()}");
        }

        public int WaitForExit(TimeSpan timeout)
        {
            if (!_process.WaitForExit(timeout))
                throw new TimeoutException($"the bench did not finish within {timeout.TotalSeconds} s: {Output.Trim()}");
            _process.WaitForExit();
            return _process.ExitCode;
        }

        /// <summary>SIGTERM (a clean stop: DPDK says goodbye and closes its port), SIGKILL after 10 s.</summary>
        public void Terminate()
        {
            if (_process.HasExited)
                return;
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
                kill.WaitForExit();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(10)))
                _process.Kill(entireProcessTree: true);
        }

        public void Dispose()
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }
}
