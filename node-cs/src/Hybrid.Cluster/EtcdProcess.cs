using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Hybrid.Cluster;

/// <summary>
/// A single-member etcd server on 127.0.0.1 that this process starts and owns: tests and
/// <c>hybrid cluster start</c> use it so that nobody has to run etcd by hand. It picks free ports, keeps
/// its data in a directory (a fresh temp one unless given), waits until etcd reports healthy, and can be
/// stopped, killed with SIGKILL (fault tests) and restarted on the same data directory and ports.
/// </summary>
public sealed class EtcdProcess : IAsyncDisposable
{
    /// <summary>Where Debian's <c>etcd-server</c> package puts the binary.</summary>
    public const string DefaultBinary = "/usr/bin/etcd";

    private const int MaxLogLines = 40;

    private readonly string _binary;
    private readonly bool _ownsDataDirectory;
    private readonly Queue<string> _log = new();
    private Process? _process;

    private EtcdProcess(string binary, string dataDirectory, bool ownsDataDirectory, int clientPort, int peerPort)
    {
        _binary = binary;
        DataDirectory = dataDirectory;
        _ownsDataDirectory = ownsDataDirectory;
        ClientPort = clientPort;
        PeerPort = peerPort;
    }

    /// <summary>The etcd data directory; it survives kills and restarts.</summary>
    public string DataDirectory { get; }

    /// <summary>The client port on 127.0.0.1.</summary>
    public int ClientPort { get; }

    /// <summary>The peer port on 127.0.0.1 (unused by clients, but etcd must listen somewhere).</summary>
    public int PeerPort { get; }

    /// <summary>The endpoint to give <see cref="EtcdMetadataStore"/>.</summary>
    public string ClientUrl => $"http://127.0.0.1:{ClientPort}";

    /// <summary>True while the etcd process is alive.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>
    /// Finds the etcd binary: <c>HYBRID_ETCD</c>, then <see cref="DefaultBinary"/>, then PATH. Null when
    /// there is none (install Debian's <c>etcd-server</c>).
    /// </summary>
    public static string? FindBinary()
    {
        var configured = Environment.GetEnvironmentVariable("HYBRID_ETCD");
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? configured : null;
        }

        if (File.Exists(DefaultBinary))
        {
            return DefaultBinary;
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "etcd"))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// Starts etcd on free ports and waits until it is healthy.
    /// </summary>
    /// <param name="dataDirectory">Data directory to use (kept on dispose); null = a fresh temp directory
    /// that dispose deletes.</param>
    /// <param name="binary">The etcd binary; null = <see cref="FindBinary"/>.</param>
    /// <param name="clientPort">Client port; 0 = pick a free one (an existing cluster keeps its ports).</param>
    /// <param name="peerPort">Peer port; 0 = pick a free one.</param>
    /// <param name="cancellationToken">Cancels the wait for health (the process is then killed).</param>
    public static async Task<EtcdProcess> StartAsync(
        string? dataDirectory = null, string? binary = null, int clientPort = 0, int peerPort = 0,
        CancellationToken cancellationToken = default)
    {
        binary ??= FindBinary() ?? throw new FileNotFoundException(
            "etcd not found (set HYBRID_ETCD or install the Debian package etcd-server: apt-get install -y etcd-server)");
        var owns = dataDirectory is null;
        dataDirectory ??= Path.Combine(Path.GetTempPath(), "hybrid-etcd-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dataDirectory);

        // A port picked free can be taken before etcd binds it; a few fresh picks make that harmless.
        for (var attempt = 1; ; attempt++)
        {
            var ports = FreePorts(2);
            var etcd = new EtcdProcess(
                binary, dataDirectory, owns, clientPort != 0 ? clientPort : ports[0], peerPort != 0 ? peerPort : ports[1]);
            try
            {
                await etcd.RunAsync(cancellationToken);
                return etcd;
            }
            catch (InvalidOperationException) when (attempt < 3 && owns && !cancellationToken.IsCancellationRequested)
            {
                // Most likely a port was taken: retry on fresh ports, with a clean data directory so the
                // member is not recorded with the old peer address.
                await etcd.KillAsync();
                Directory.Delete(dataDirectory, recursive: true);
                Directory.CreateDirectory(dataDirectory);
            }
            catch
            {
                await etcd.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Kills the process with SIGKILL (no shutdown, no flush beyond what etcd already fsynced).</summary>
    public async Task KillAsync()
    {
        if (_process is { } process)
        {
            if (!process.HasExited)
            {
                process.Kill();
            }

            await process.WaitForExitAsync();
            process.Dispose();
            _process = null;
        }
    }

    /// <summary>
    /// Stops etcd gracefully (SIGTERM, sent with <c>kill</c>, so no P/Invoke is needed here), and kills it
    /// if it has not exited within <paramref name="grace"/> (default 10 s).
    /// </summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        if (_process is { HasExited: false } process)
        {
            using var signal = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)])
            {
                UseShellExecute = false,
            });
            if (signal is not null)
            {
                await signal.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                // Did not stop in time: fall through to the kill.
            }
        }

        await KillAsync();
    }

    /// <summary>Starts etcd again (after a kill or stop) on the same data directory and ports, and waits for health.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await KillAsync();
        await RunAsync(cancellationToken);
    }

    /// <summary>
    /// Ends etcd and deletes the data directory if this object created it: a temp directory's etcd is
    /// simply killed, an etcd on a kept directory is stopped gracefully.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsDataDirectory)
        {
            await KillAsync();
        }
        else
        {
            await StopAsync();
        }

        if (_ownsDataDirectory && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }

    /// <summary>The last lines etcd wrote, for error messages.</summary>
    public string RecentLog()
    {
        lock (_log)
        {
            return string.Join('\n', _log);
        }
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        var client = $"http://127.0.0.1:{ClientPort}";
        var peer = $"http://127.0.0.1:{PeerPort}";
        var info = new ProcessStartInfo(_binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--name", "hybrid", "--data-dir", DataDirectory,
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", "hybrid=" + peer,
                     // Every state update is a new revision: keep a bounded history (watchers further
                     // behind get MetadataCompactedException and re-read).
                     "--auto-compaction-mode", "revision", "--auto-compaction-retention", "10000",
                 })
        {
            info.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        try
        {
            await WaitHealthyAsync(process, cancellationToken);
        }
        catch
        {
            await KillAsync();
            throw;
        }
    }

    private async Task WaitHealthyAsync(Process process, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new InvalidOperationException(
                    $"etcd exited with code {process.ExitCode.ToString(CultureInfo.InvariantCulture)} while starting:\n{RecentLog()}");
            }

            try
            {
                var health = await http.GetStringAsync($"{ClientUrl}/health", cancellationToken);
                if (health.Contains("\"health\":\"true\"", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The probe timed out; etcd is still starting.
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"etcd at {ClientUrl} was not healthy within 30 s:\n{RecentLog()}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.Enqueue(line);
            while (_log.Count > MaxLogLines)
            {
                _log.Dequeue();
            }
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        try
        {
            foreach (var listener in listeners)
            {
                listener.Start();
            }

            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners)
            {
                listener.Stop();
            }
        }
    }
}
