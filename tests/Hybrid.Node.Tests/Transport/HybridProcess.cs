using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Hybrid.Node.Tests.Transport;

/// <summary>
/// The real CLI (<c>hybrid.dll</c>, copied next to the tests by the project reference) as a child process with its
/// output collected: DPDK peers (memif) must run in child processes, never in the test host (EAL initialises once per
/// process and pins threads).
/// </summary>
internal sealed class HybridProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _gate = new();

    private HybridProcess(Process process) => _process = process;

    internal string Output
    {
        get
        {
            lock (_gate)
                return _output.ToString();
        }
    }

    internal bool HasExited => _process.HasExited;

    internal static HybridProcess Start(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "hybrid.dll");
        Assert.True(File.Exists(dll), $"CLI not found at {dll}");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        var child = new HybridProcess(Process.Start(info)!);
        child._process.OutputDataReceived += (_, e) => child.Append(e.Data);
        child._process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        return child;
    }

    /// <summary>A node child process with small settings; returns it once it prints its listening line.</summary>
    internal static (HybridProcess Server, int NativePort) StartServer(string directory, params string[] extra)
    {
        var server = Start(["server", "--data-dir", directory, "--port", "0", "--resp-port", "-1", "--metrics-port", "-1", "--workers", "2",
            "--durability", "memory", "--memory-budget", (16 << 20).ToString(CultureInfo.InvariantCulture), .. extra]);
        string line = server.WaitForLine("hybrid: listening", TimeSpan.FromSeconds(60));
        int port = int.Parse(line.Split(' ').First(t => t.StartsWith("native=", StringComparison.Ordinal))["native=".Length..], CultureInfo.InvariantCulture);
        return (server, port);
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_gate)
            _output.Append(line).Append('\n');
    }

    /// <summary>Waits for an output line starting with <paramref name="prefix"/>; fails with the output if the process exits first.</summary>
    internal string WaitForLine(string prefix, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var line = Output.Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (line is not null)
                return line;
            if (_process.HasExited)
                throw new InvalidOperationException($"hybrid exited ({_process.ExitCode}) before '{prefix}':\n{Output}");
            Thread.Sleep(20);
        }
        throw new TimeoutException($"no '{prefix}' within {timeout.TotalSeconds} s:\n{Output}");
    }

    internal int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            throw new TimeoutException($"hybrid did not exit within {timeout.TotalSeconds} s:\n{Output}");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: no shutdown code runs, nobody says goodbye.</summary>
    internal void Kill9()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            Kill9();
        int pid = _process.Id;
        _process.Dispose();
        // EAL's runtime directory of a DPDK child (TransportSpec's per-process file prefix), a few MB of tmpfs each.
        foreach (string role in new[] { "node", "client" })
        {
            try
            {
                string dir = $"/var/run/dpdk/hyb-{role}-{pid}";
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left behind: costs tmpfs space, not correctness.
            }
        }
    }
}
