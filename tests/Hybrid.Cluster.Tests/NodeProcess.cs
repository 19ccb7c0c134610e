using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Hybrid.Node.Hosting;
using Hybrid.Storage;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A child process of this test assembly running one role (a cluster node, a workload), optionally inside a network
/// namespace (<c>ip netns exec</c>), that can be killed with SIGKILL. Its output is kept for error messages.
/// </summary>
internal sealed class NodeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly Channel<string> _replies = Channel.CreateUnbounded<string>();

    private NodeProcess(Process process) => _process = process;

    /// <summary>Everything the child printed so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
                return _log.ToString();
        }
    }

    /// <summary>True while the child runs.</summary>
    public bool IsRunning => !_process.HasExited;

    /// <summary>The exit code (after it exited).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>
    /// Starts <paramref name="args"/> as a role of this assembly (see <see cref="Program"/>), inside
    /// <paramref name="netns"/> if given, and waits until it prints a line starting with <paramref name="readyPrefix"/>
    /// (null: do not wait).
    /// </summary>
    public static Task<NodeProcess> StartAsync(IEnumerable<string> args, string? netns = null, string? readyPrefix = "ready", TimeSpan? timeout = null) =>
        StartDllAsync(typeof(NodeProcess).Assembly.Location, args, netns, readyPrefix, timeout);

    /// <summary>
    /// Starts the real CLI (<c>hybrid.dll</c>, copied next to the tests by the project reference) with
    /// <paramref name="args"/> (e.g. <c>server ... --transport memif:SOCKET</c>) and waits for a line starting with
    /// <paramref name="readyPrefix"/>.
    /// </summary>
    public static Task<NodeProcess> StartCliAsync(IEnumerable<string> args, string readyPrefix, TimeSpan? timeout = null)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "hybrid.dll");
        if (!File.Exists(dll))
            throw new FileNotFoundException("the CLI is not next to the tests", dll);
        return StartDllAsync(dll, args, null, readyPrefix, timeout);
    }

    private static async Task<NodeProcess> StartDllAsync(string dll, IEnumerable<string> args, string? netns, string? readyPrefix, TimeSpan? timeout)
    {
        var info = new ProcessStartInfo(netns is null ? "dotnet" : "ip") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (netns is not null)
        {
            foreach (string a in new[] { "netns", "exec", netns, "dotnet" })
                info.ArgumentList.Add(a);
        }
        info.ArgumentList.Add("exec");
        info.ArgumentList.Add(dll);
        foreach (string a in args)
            info.ArgumentList.Add(a);
        var child = new NodeProcess(Process.Start(info)!);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        child._process.OutputDataReceived += (_, e) =>
        {
            child.Append(e.Data);
            if (e.Data is null)
                child._replies.Writer.TryComplete();
            else if (e.Data.StartsWith(ReplyPrefix, StringComparison.Ordinal))
                child._replies.Writer.TryWrite(e.Data[ReplyPrefix.Length..]);
            if (readyPrefix is not null && e.Data?.StartsWith(readyPrefix, StringComparison.Ordinal) == true)
                ready.TrySetResult();
        };
        child._process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        child._process.BeginOutputReadLine();
        child._process.BeginErrorReadLine();
        if (readyPrefix is not null
            && await Task.WhenAny(ready.Task, child._process.WaitForExitAsync(), Task.Delay(timeout ?? TimeSpan.FromSeconds(60))) != ready.Task)
        {
            await child.DisposeAsync();
            throw new InvalidOperationException($"{string.Join(' ', args)} did not start: {child.Log}");
        }
        return child;
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_log)
            _log.AppendLine(line);
    }

    /// <summary>The start of a scripted child's answer line (<see cref="ScriptClient"/>).</summary>
    public const string ReplyPrefix = "reply ";

    /// <summary>
    /// Sends one command line to a scripted child (<see cref="ScriptClient"/>) and returns its answer: the next output line
    /// starting with <see cref="ReplyPrefix"/>, without it. Throws with the child's output if none comes within
    /// <paramref name="timeout"/> (default 60 s) or the child exits.
    /// </summary>
    public async Task<string> RequestAsync(string command, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await _process.StandardInput.WriteLineAsync(command);
            await _process.StandardInput.FlushAsync();
            return await _replies.Reader.ReadAsync(cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException or IOException)
        {
            throw new InvalidOperationException($"no reply to '{command}' ({e.GetType().Name}): {Log}", e);
        }
    }

    /// <summary>Closes the child's input (a scripted child then ends orderly) and waits for it to exit; returns its exit code.</summary>
    public Task<int> CloseInputAndWaitAsync(TimeSpan timeout)
    {
        _process.StandardInput.Close();
        return WaitAsync(timeout);
    }

    /// <summary>Waits for the child to exit (or kills it after <paramref name="timeout"/>); returns its exit code.</summary>
    public async Task<int> WaitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
            throw new TimeoutException($"the child did not finish within {timeout}: {Log}");
        }
        _process.WaitForExit(); // drains the output handlers
        return _process.ExitCode;
    }

    /// <summary>SIGTERM (a <c>hybrid server</c> then stops its node cleanly) and waits for the exit; returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            using Process kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }
        return await WaitAsync(timeout);
    }

    /// <summary>SIGKILL: no shutdown code runs in the child.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
            _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        int pid = _process.Id;
        Kill();
        _process.Dispose();
        DeleteDpdkRuntime(pid);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Removes the runtime directory EAL leaves behind when the child ran DPDK (about 3 MB of tmpfs each), named by the
    /// per-process file prefix of <see cref="Hybrid.Transport.TransportSpec.EalArgs"/>: <c>hyb-node-PID</c> or <c>hyb-client-PID</c>.
    /// </summary>
    private static void DeleteDpdkRuntime(int pid)
    {
        foreach (string role in new[] { "node", "client" })
        {
            string dir = $"/var/run/dpdk/hyb-{role}-{pid}";
            try
            {
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left behind: costs tmpfs space, not correctness.
            }
        }
    }

    /// <summary>The metadata store a child role names: <c>file:DIR</c> or <c>etcd:URL</c>.</summary>
    public static IMetadataStore OpenStore(string spec) => spec switch
    {
        _ when spec.StartsWith("file:", StringComparison.Ordinal) => new FileMetadataStore(spec["file:".Length..]),
        _ when spec.StartsWith("etcd:", StringComparison.Ordinal) => new EtcdMetadataStore(spec["etcd:".Length..]),
        _ => throw new ArgumentException("a metadata store is file:DIR or etcd:URL, not " + spec),
    };

    /// <summary>The file in a node's data directory that names the decision to stall after (<see cref="StallingMetadataStore"/>).</summary>
    public const string StallFileName = "stall-after";

    /// <summary>
    /// The child role <c>node-at STORE DATA-DIR NAME TRACE [BIND] [--transport SPEC]...</c>: one cluster node with sync
    /// durability on the metadata store <c>STORE</c> (see <see cref="OpenStore"/>), listening on <c>BIND</c> (default
    /// loopback) and on each of <paramref name="transports"/> (<see cref="TransportListenerOptions.FromSpec"/>), until
    /// killed. Its ready line is <c>ready NAME</c> followed by <c>LISTENER=ADDRESS</c> per transport.
    /// </summary>
    public static async Task<int> RunNodeAsync(string storeSpec, string dataDir, string name, string trace, string? bind = null, IReadOnlyList<string>? transports = null)
    {
        // A test can hold this node right after it publishes a decision (StallingMetadataStore; no file: no effect).
        await using IMetadataStore store = new StallingMetadataStore(OpenStore(storeSpec), Path.Combine(dataDir, StallFileName));
        var options = new HybridNodeOptions
        {
            DataDirectory = dataDir,
            BindAddress = bind is null ? System.Net.IPAddress.Loopback : System.Net.IPAddress.Parse(bind),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Durability = DurabilityMode.Sync,
            MemoryBudgetBytes = 1 << 22,
            Transports = [.. (transports ?? []).Select(TransportListenerOptions.FromSpec)],
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 14, CheckpointInterval = TimeSpan.Zero },
        };
        await using ClusterNodeHost host = await ClusterNodeHost.StartAsync(store, "/hybrid", name, options, tracePath: trace);
        Console.Out.WriteLine(string.Join(' ', ["ready", name, .. options.Transports.Select(t => t.Name + "=" + host.Member.Node.TransportAddressOf(t.Name))]));
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
