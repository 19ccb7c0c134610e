using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Hybrid.Cli.Commands;
using Hybrid.Extensions;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Storage;

namespace Hybrid.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        // Socket completions run on the epoll thread instead of hopping to the thread pool; with the workers' inline
        // drive (Worker.TryRunInline) a request to an idle node then costs no thread switch at all. Read once, when the
        // first socket is created, so it is set before anything else runs; an explicit setting wins.
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        // On a small machine (at most 2 cores), one socket engine (epoll thread) for all connections: with one request
        // at a time per connection, a single thread that finds many sockets ready per epoll_wait sleeps and wakes far
        // less than two that split them (redis-benchmark GET, 50 clients, pipeline 1, side by side on 2 cores: p99
        // 0.66-0.82 ms instead of 1.58-2.56 ms, 75-91k instead of 72-80k ops/s; pipeline 32 unchanged within noise).
        // Larger machines keep the runtime's default (not measured here).
        if (Environment.ProcessorCount <= 2 && Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT") is null)
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT", "1");
        if (args.Length > 0 && args[0] == "server")
            return RunServer(args[1..]);
        return HybridCli.Run(args, RunServer);
    }

    /// <summary>
    /// <c>hybrid server [--data-dir D] [--bind A] [--port P] [--resp-port P] [--metrics-port P] [--workers N]
    /// [--durability memory|async|sync] [--memory-budget BYTES] [--checkpoint-interval SECONDS]
    /// [--socket-engine auto|polled|dotnet] [--poller-spin-us N] [--transport SPEC]...</c>:
    /// runs one node until
    /// SIGTERM/SIGINT, then stops it cleanly. Port 0 = ephemeral, -1 = off. Each <c>--transport</c> adds a native-protocol
    /// listener on a message transport (<c>shm:PATH</c>, <c>memif:SOCKET[@SERVICE]</c>, <c>af_packet:IFACE[@SERVICE]</c>,
    /// <c>tcp:HOST:PORT</c>; see <see cref="Hybrid.Transport.TransportSpec"/>). Prints one line
    /// "hybrid: listening native=P metrics=P durability=D resp=P [NAME=ADDRESS]... sockets=ENGINE" once serving.
    /// </summary>
    internal static int RunServer(string[] args)
    {
        HybridNodeOptions options;
        try
        {
            if (args.Any(a => a is "--help" or "-h" or "-?"))
            {
                Console.WriteLine(ServerUsage);
                return 0;
            }
            options = ParseServerOptions(args);
            options.Validate(); // out-of-range values (--workers 0, --poller-spin-us 20000) get the same one-line error
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"hybrid server: {e.Message}");
            Console.Error.WriteLine(ServerUsage);
            return 2;
        }
        var node = new HybridNode(options);
        // Tenant code is compiled by a child process ('hybrid ext compiler'): Roslyn never loads into the node.
        NodeExtensions.Configure(node, new ExtensionHostOptions { CompilerProcess = HybridCli.ExtensionCompilerProcess() });
        try
        {
            node.StartAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException or ArgumentException
            or InvalidDataException or InvalidOperationException or System.Text.Json.JsonException)
        {
            // A port in use, a data directory that cannot be written or is damaged, a CPU this process may not use, a
            // tenant without a secret on a node others can reach: say which, without a stack trace.
            Console.Error.WriteLine($"hybrid server: cannot start: {e.Message}");
            node.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return 1;
        }
        if (NodeExtensions.Of(node).BackgroundStepsRefusal is { } why)
            Console.Error.WriteLine($"hybrid: long extension invocations run at normal CPU priority: {why}");
        HybridCli.WarnIfRenamesNotFlushed("hybrid");
        return Serve(node, options);
    }

    /// <summary>Usage of <c>hybrid server</c> (printed for --help and after a bad option).</summary>
    internal const string ServerUsage =
        "usage: hybrid server [--data-dir D] [--bind ADDRESS] [--port P] [--resp-port P] [--metrics-port P] [--metrics-bind ADDRESS] [--workers N]\n" +
        "                     [--durability memory|async|sync] [--memory-budget BYTES] [--checkpoint-interval SECONDS]\n" +
        "                     [--socket-engine auto|polled|dotnet] [--poller-spin-us N] [--cpus LIST] [--transport SPEC]...\n" +
        "  port 0 = ephemeral, -1 = off; SPEC: shm:PATH, memif:SOCKET[@SERVICE], af_packet:IFACE[@SERVICE], tcp:HOST:PORT\n" +
        "  --socket-engine: auto (default) = polled (the node's epoll loop) when libhyb_transport loads, else dotnet\n" +
        "  --checkpoint-interval: seconds between checkpoints in async and sync durability (default 60; 0 = none but a\n" +
        "    migration's); each truncates the operation log a restart replays\n" +
        "  --poller-spin-us: how long a poller looks for more events before it sleeps (default 20)\n" +
        "  --cpus: pin worker i and poller i to the i-th CPU of LIST (modulo its length), e.g. 0,1 or 2-5\n" +
        "  --metrics-bind: where the metrics port listens (default 127.0.0.1 whatever --bind is: it has no authentication)";

    /// <summary>A CPU list as taskset writes it: numbers and ranges, comma-separated (<c>0,2-3</c>).</summary>
    internal static int[] ParseCpus(string text)
    {
        try
        {
            return Hybrid.Transport.ThreadScheduling.ParseCpuList(text);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--cpus: {e.Message}", e);
        }
    }

    /// <summary>A size in bytes, with an optional binary suffix: <c>268435456</c>, <c>256M</c>, <c>256MiB</c>, <c>1G</c>.</summary>
    internal static long ParseBytes(string option, string text)
    {
        string number = text.TrimEnd('B', 'b', 'i').TrimEnd();
        int shift = number.Length == 0 ? 0 : char.ToUpperInvariant(number[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift > 0)
            number = number[..^1];
        if (!long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out long value) || value > long.MaxValue >> shift)
            throw new FormatException($"{option} takes bytes, optionally with K, M, G or T (powers of 1024): 268435456, 256M, 1G; not '{text}'");
        return value << shift;
    }

    private static TimeSpan ParseSeconds(string option, string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds >= 0 && seconds <= 86_400
            ? TimeSpan.FromSeconds(seconds)
            : throw new ArgumentException($"{option} takes seconds from 0 to 86400 (0 = off), not '{text}'");

    private static HybridNodeOptions ParseServerOptions(string[] args)
    {
        var options = new HybridNodeOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            options = args[i] switch
            {
                "--data-dir" => options with { DataDirectory = Next() },
                "--bind" => options with { BindAddress = IPAddress.Parse(Next()) },
                "--port" => options with { NativePort = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--resp-port" => options with { RespPort = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--metrics-port" => options with { MetricsPort = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--metrics-bind" => options with { MetricsBindAddress = IPAddress.Parse(Next()) },
                "--workers" => options with { Workers = int.Parse(Next(), CultureInfo.InvariantCulture) },
                "--cpus" => options with { Cpus = ParseCpus(Next()) },
                "--durability" => options with { Durability = Enum.TryParse<DurabilityMode>(Next(), ignoreCase: true, out var mode) && Enum.IsDefined(mode) ? mode : throw new ArgumentException($"--durability must be memory, async or sync, not '{args[i]}'") },
                "--memory-budget" => options with { MemoryBudgetBytes = ParseBytes("--memory-budget", Next()) },
                "--checkpoint-interval" => options with { CheckpointInterval = ParseSeconds(args[i], Next()) },
                "--poller-spin-us" => options with { PollerSpin = TimeSpan.FromMicroseconds(int.Parse(Next(), CultureInfo.InvariantCulture)) },
                "--socket-engine" => options with { SocketEngine = Enum.TryParse<SocketEngine>(Next(), ignoreCase: true, out var engine) && Enum.IsDefined(engine) ? engine : throw new ArgumentException($"--socket-engine must be auto, polled or dotnet, not '{args[i]}'") },
                "--transport" => options with { Transports = [.. options.Transports, TransportListenerOptions.FromSpec(Next())] },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }
        return options;
    }

    private static int Serve(HybridNode node, HybridNodeOptions options)
    {
        string metrics = options.MetricsPort >= 0 ? node.MetricsPort.ToString(CultureInfo.InvariantCulture) : "off";
        string native = options.NativePort >= 0 ? node.NativePort.ToString(CultureInfo.InvariantCulture) : "off";
        string resp = options.RespPort >= 0 ? node.PortOf("resp").ToString(CultureInfo.InvariantCulture) : "off";
        string extra = string.Concat(options.Transports.Select(t => $" {t.Name}={node.TransportAddressOf(t.Name)}"));
        string sockets = node.SocketEngine.ToString().ToLowerInvariant();
        Console.WriteLine($"hybrid: listening native={native} metrics={metrics} durability={options.Durability.ToString().ToLowerInvariant()} resp={resp}{extra} sockets={sockets}");
        if (node.SocketEngineFallback is { } why)
            Console.WriteLine($"hybrid: sockets on .NET's engine: {why}");
        using var stop = new ManualResetEventSlim();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
        Exception? failure = null;
        node.StorageFailed += e =>
        {
            // It died of an unhandled FASTER CommitFailureException ("error code 4294967295") with a stack trace.
            failure = e;
            string kept = options.Durability == Hybrid.Storage.DurabilityMode.Sync
                ? "Every acknowledged write is on disk"
                : "Writes acknowledged since the last commit are lost (async durability)";
            Console.Error.WriteLine($"hybrid: storage: the operation log cannot be written to disk ({e.Message}; is {options.DataDirectory ?? "the data directory"}'s "
                + $"disk full?): stopping. {kept}; free space and start the node again");
            stop.Set();
        };
        stop.Wait();
        try
        {
            node.StopAsync().GetAwaiter().GetResult();
        }
        catch (Exception e) when (failure is not null)
        {
            // Its last checkpoint fails on the same disk: nothing more to save.
            Console.Error.WriteLine($"hybrid: storage: stopped without a last checkpoint: {e.Message}");
        }
        return failure is null ? 0 : 3;
    }
}
