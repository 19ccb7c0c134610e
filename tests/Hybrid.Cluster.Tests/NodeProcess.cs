using System.Diagnostics;
using System.Text;
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
    public static async Task<NodeProcess> StartAsync(IEnumerable<string> args, string? netns = null, string? readyPrefix = "ready", TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(netns is null ? "dotnet" : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (netns is not null)
        {
            foreach (string a in new[] { "netns", "exec", netns, "dotnet" })
                info.ArgumentList.Add(a);
        }
        info.ArgumentList.Add("exec");
        info.ArgumentList.Add(typeof(NodeProcess).Assembly.Location);
        foreach (string a in args)
            info.ArgumentList.Add(a);
        var child = new NodeProcess(Process.Start(info)!);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        child._process.OutputDataReceived += (_, e) =>
        {
            child.Append(e.Data);
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
        Kill();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The metadata store a child role names: <c>file:DIR</c> or <c>etcd:URL</c>.</summary>
    public static IMetadataStore OpenStore(string spec) => spec switch
    {
        _ when spec.StartsWith("file:", StringComparison.Ordinal) => new FileMetadataStore(spec["file:".Length..]),
        _ when spec.StartsWith("etcd:", StringComparison.Ordinal) => new EtcdMetadataStore(spec["etcd:".Length..]),
        _ => throw new ArgumentException("a metadata store is file:DIR or etcd:URL, not " + spec),
    };

    /// <summary>
    /// The child role <c>node-at STORE DATA-DIR NAME TRACE [BIND]</c>: one cluster node with sync durability on the
    /// metadata store <c>STORE</c> (see <see cref="OpenStore"/>), listening on <c>BIND</c> (default loopback), until killed.
    /// </summary>
    public static async Task<int> RunNodeAsync(string storeSpec, string dataDir, string name, string trace, string? bind = null)
    {
        await using IMetadataStore store = OpenStore(storeSpec);
        var options = new HybridNodeOptions
        {
            DataDirectory = dataDir,
            BindAddress = bind is null ? System.Net.IPAddress.Loopback : System.Net.IPAddress.Parse(bind),
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Durability = DurabilityMode.Sync,
            MemoryBudgetBytes = 1 << 22,
            ConfigureStore = o => o with { PageSizeBytes = 1 << 16, MaxKeyBytes = 256, MaxValueBytes = 1024, IndexBuckets = 1 << 14, CheckpointInterval = TimeSpan.Zero },
        };
        await using ClusterNodeHost host = await ClusterNodeHost.StartAsync(store, "/hybrid", name, options, tracePath: trace);
        Console.Out.WriteLine("ready " + name);
        Console.Out.Flush();
        await Task.Delay(Timeout.Infinite);
        return 0;
    }
}
