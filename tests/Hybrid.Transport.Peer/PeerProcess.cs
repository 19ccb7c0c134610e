using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace Hybrid.Transport.Peer;

/// <summary>
/// Starts and talks to a peer child process (this project's executable). Shared, as a linked source file, by
/// the xUnit tests and the <c>bench-all</c> benchmark, so both set DPDK up the same way.
/// </summary>
internal sealed class PeerProcess : IDisposable
{
    private readonly Process _process;
    private readonly BlockingCollection<string> _lines = [];
    private readonly ConcurrentQueue<string> _all = new();

    private PeerProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                _all.Enqueue("stderr: " + e.Data);
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            _lines.CompleteAdding();
            return;
        }
        _all.Enqueue(line);
        _lines.Add(line);
    }

    /// <summary>The peer's assembly: this program itself, or its build output beside the test project's.</summary>
    private static string PeerDll()
    {
        var own = typeof(PeerProcess).Assembly;
        if (own.GetName().Name == "Hybrid.Transport.Peer")
            return own.Location;
        string path = AppContext.BaseDirectory.Replace("Hybrid.Transport.Tests", "Hybrid.Transport.Peer", StringComparison.Ordinal);
        string dll = Path.Combine(path, "Hybrid.Transport.Peer.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"peer not built: {dll}");
    }

    public static PeerProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(PeerDll());
        foreach (var arg in args)
            psi.ArgumentList.Add(arg);
        var peer = new PeerProcess(Process.Start(psi) ?? throw new InvalidOperationException("cannot start dotnet"));
        // The EAL file prefix (inside the --eal argument): its runtime directory is removed when the peer is disposed.
        foreach (string arg in args)
        {
            int at = arg.IndexOf("--file-prefix ", StringComparison.Ordinal);
            if (at >= 0)
                peer._filePrefix = arg[(at + "--file-prefix ".Length)..].Split(' ')[0];
        }
        return peer;
    }

    private string? _filePrefix;

    public int Id => _process.Id;

    /// <summary>Everything the peer printed so far (stdout and stderr), for failure messages.</summary>
    public string Output => string.Join('\n', _all);

    /// <summary>Waits for the next line starting with one of <paramref name="prefixes"/>; fails with the whole output otherwise.</summary>
    public string WaitFor(TimeSpan timeout, params string[] prefixes)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !_lines.TryTake(out var line, left))
            {
                throw new TimeoutException(
                    $"peer {Id} printed no line starting with '{string.Join("|", prefixes)}' within {timeout.TotalSeconds} s " +
                    $"(exited: {_process.HasExited}). Output:\n{Output}");
            }
            if (prefixes.Any(p => line.StartsWith(p, StringComparison.Ordinal)))
                return line;
        }
    }

    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>SIGKILL: the process gets no chance to say goodbye.</summary>
    public void Kill9()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            throw new TimeoutException($"peer {Id} did not exit within {timeout.TotalSeconds} s. Output:\n{Output}");
        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
            Kill9();
        _process.Dispose();
        DpdkSetup.DeleteRuntime(_filePrefix);
    }
}

/// <summary>Argument sets for DPDK peers: one EAL file prefix per process, memif over a socket, af_packet over a veth.</summary>
internal static class DpdkSetup
{
    /// <summary>EAL arguments for one peer process; <paramref name="prefix"/> must be unique per process.</summary>
    public static string Eal(string prefix) =>
        $"--no-huge -m 256 --no-pci --no-telemetry --file-prefix {prefix} --lcores 0@(0-1) --log-level lib.eal:error";

    /// <summary>
    /// Removes the runtime directory EAL leaves in /var/run/dpdk for <paramref name="filePrefix"/> (a few MB of tmpfs
    /// per process, never reused by another prefix); call it once the process is gone.
    /// </summary>
    public static void DeleteRuntime(string? filePrefix)
    {
        if (string.IsNullOrEmpty(filePrefix) || filePrefix.Contains('/', StringComparison.Ordinal))
            return;
        try
        {
            string dir = Path.Combine("/var/run/dpdk", filePrefix);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind: costs tmpfs space, not correctness.
        }
    }

    /// <summary>Peer arguments for one side of a memif pair named <paramref name="id"/>.</summary>
    public static string[] Memif(string id, bool server) =>
    [
        "--vdev", $"net_memif0,role={(server ? "server" : "client")},socket=/tmp/hyb-memif-{id}.sock",
        "--eal", Eal($"hyb-{id}-{(server ? "s" : "c")}"),
    ];

    /// <summary>Peer arguments for one end of a veth pair.</summary>
    public static string[] AfPacket(string id, string iface, bool server) =>
    [
        "--vdev", $"net_af_packet0,iface={iface}",
        "--eal", Eal($"hyb-{id}-{(server ? "s" : "c")}"),
    ];
}

/// <summary>
/// The toy service the peers and the tests run behind a listener: "W key value" stores and counts one
/// execution, "R key" reads, "C" answers the number of writes executed (4 bytes), "E…" echoes (benchmark).
/// The execution counter is how tests prove that no retransmitted write ran twice. Thread-safe.
/// </summary>
internal sealed class KvService
{
    private readonly Dictionary<string, string> _store = [];
    private readonly Lock _gate = new();

    /// <summary>Writes executed so far.</summary>
    public int Executed { get; private set; }

    public byte[] Execute(ReadOnlySpan<byte> request)
    {
        if (request.Length > 0 && request[0] == (byte)'E')
            return request.ToArray();
        var parts = Encoding.UTF8.GetString(request).Split(' ', 3);
        lock (_gate)
        {
            switch (parts[0])
            {
                case "W":
                    _store[parts[1]] = parts[2];
                    Executed++;
                    return "ok"u8.ToArray();
                case "R":
                    return Encoding.UTF8.GetBytes(_store.GetValueOrDefault(parts[1], ""));
                default:
                    var count = new byte[4];
                    BinaryPrimitives.WriteInt32LittleEndian(count, Executed);
                    return count;
            }
        }
    }

    /// <summary>Answers every request of one session until it ends; returns why it ended.</summary>
    public async Task<TransportError> ServeAsync(ITransportConnection session)
    {
        while (true)
        {
            try
            {
                byte[] reply;
                using (var request = await session.ReceiveAsync())
                    reply = Execute(request.Span);
                await session.SendAsync(reply);
            }
            catch (TransportException e)
            {
                return e.Error;
            }
        }
    }
}
