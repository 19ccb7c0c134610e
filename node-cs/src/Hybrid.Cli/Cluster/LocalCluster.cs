using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Hybrid.Cluster;
using Hybrid.Node.Cluster;

namespace Hybrid.Cli.Cluster;

/// <summary>
/// A local cluster as the CLI manages it: a directory holding the embedded metadata store (<c>DIR/metadata</c>), one
/// data directory and one log per node (<c>DIR/nI</c>, <c>DIR/nI.log</c>), node processes started with the hidden
/// <c>hybrid cluster node</c> command. The metadata may instead be etcd (<c>--metadata etcd:http://HOST:PORT</c>).
/// </summary>
internal static class LocalCluster
{
    /// <summary>What <c>cluster start</c> keeps in a cluster's directory: how to restart its nodes, and where its metadata is.</summary>
    public const string SettingsFile = "cluster-settings.json";

    /// <summary>
    /// Where the metadata lives: <paramref name="metadata"/> if given, else the store <c>cluster start</c> was given for
    /// <paramref name="dir"/> (kept in its <see cref="SettingsFile"/>: an etcd cluster's directory named without
    /// --metadata was taken for a file cluster that did not exist, and `cluster start` then built a second cluster over
    /// the nodes' data), else the file store in <paramref name="dir"/>.
    /// </summary>
    public static string MetadataSpec(string dir, string? metadata) => metadata ?? SavedMetadataSpec(dir) ?? OwnMetadataSpec(dir);

    /// <summary>The file store inside <paramref name="dir"/>, a cluster's own unless it was given another.</summary>
    public static string OwnMetadataSpec(string dir) => "file:" + Path.Combine(Path.GetFullPath(dir), "metadata");

    /// <summary>
    /// The metadata store other than its own (<see cref="OwnMetadataSpec"/>) that <c>cluster start</c> created the
    /// cluster in <paramref name="dir"/> with, or null. Its own is not recorded by path, so a moved or copied directory
    /// uses the store it carries.
    /// </summary>
    public static string? SavedMetadataSpec(string dir)
    {
        string path = Path.Combine(dir, SettingsFile);
        if (!File.Exists(path))
            return null;
        using var settings = JsonDocument.Parse(File.ReadAllText(path));
        return settings.RootElement.TryGetProperty("Metadata", out JsonElement spec) && spec.ValueKind == JsonValueKind.String ? spec.GetString() : null;
    }

    /// <summary>
    /// The metadata spec of a cluster that must exist already (every command but <c>cluster start</c>): a file store
    /// whose directory is missing is refused here, before opening it would create the directory (a mistyped --dir).
    /// </summary>
    public static string ExistingMetadataSpec(string dir, string? metadata)
    {
        string spec = MetadataSpec(dir, metadata);
        if (MetadataStores.FileDirectory(spec) is { Length: > 0 } directory && !Directory.Exists(directory))
            throw new InvalidOperationException($"no cluster at {directory} (no such directory; start one with 'hybrid cluster start')");
        return spec;
    }

    /// <summary>
    /// Initializes a cluster of <paramref name="nodes"/> nodes with <paramref name="workers"/> cores each and
    /// <paramref name="ranges"/> equal ranges, owned in contiguous blocks (or all by n1 when <paramref name="allOnFirst"/>).
    /// False when the metadata already holds a cluster (which is then used as it is).
    /// </summary>
    public static Task<bool> InitializeAsync(DurableClusterMetadata metadata, int nodes, int workers, int ranges, bool allOnFirst)
    {
        string[] names = [.. Enumerable.Range(1, nodes).Select(i => "n" + i)];
        string[] cores = [.. Enumerable.Range(1, workers).Select(i => "c" + i)];
        var layout = DurableClusterMetadata.EvenRanges(ranges);
        var owner = layout.Keys.OrderBy(r => layout[r].First).Select((r, i) => (r, i))
            .ToDictionary(x => x.r, x => allOnFirst ? names[0] : names[x.i * nodes / ranges]);
        return metadata.InitializeAsync(names, cores, layout, owner);
    }

    /// <summary>The command line that runs this CLI again (apphost, or <c>dotnet hybrid.dll</c>).</summary>
    public static (string File, List<string> Args) Self()
    {
        string process = Environment.ProcessPath ?? "dotnet";
        string entry = typeof(LocalCluster).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, [entry]) : (process, []);
    }

    /// <summary>
    /// Starts <c>hybrid cluster node</c> for <paramref name="name"/> as a detached process (its own session, output
    /// appended to <c>DIR/name.log</c>); returns the process.
    /// </summary>
    public static Process StartNode(string dir, string metadataSpec, string name, IEnumerable<string> extra)
    {
        var (file, args) = Self();
        string log = Path.Combine(Path.GetFullPath(dir), name + ".log");
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardInput = true };
        foreach (string a in new[] { "/bin/sh", "-c", "exec \"$@\" >>\"$HYBRID_NODE_LOG\" 2>&1 </dev/null", "sh", file })
            info.ArgumentList.Add(a);
        foreach (string a in args.Concat(["cluster", "node", "--name", name, "--dir", Path.GetFullPath(dir), "--metadata", metadataSpec]).Concat(extra))
            info.ArgumentList.Add(a);
        info.Environment["HYBRID_NODE_LOG"] = log;
        // The runtime recompiles a hot method with full optimisation only once 100 ms passed without a new method
        // being compiled; a node's start (and its warm-up, NodeWarmUp) compiles new methods all along, so without this
        // the warm-up's paths were still unoptimised when its first migration came (measured: NativeSession.RunBatch,
        // FASTER's InternalRMW and the source's scan reached tier 1 only during the migration; with it, during the
        // warm-up in 2 s; a node started some other way warms up for 6 s instead, NodeWarmUp.DefaultDuration).
        // Only a start-up cost: steady-state code is the same.
        if (Environment.GetEnvironmentVariable("DOTNET_TC_CallCountingDelayMs") is null)
            info.Environment["DOTNET_TC_CallCountingDelayMs"] = "0";
        return Process.Start(info) ?? throw new InvalidOperationException("could not start " + file);
    }

    /// <summary>Waits until <paramref name="names"/> are all registered as live; returns their registrations.</summary>
    public static async Task<IReadOnlyList<NodeInfo>> WaitLiveAsync(ClusterMetadata metadata, IReadOnlyCollection<string> names, TimeSpan timeout,
        IReadOnlyDictionary<string, int>? started = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            IReadOnlyList<NodeInfo> live = await metadata.ListLiveNodesAsync();
            // A node started now counts once it registered itself, not while the lease of the process it replaces lasts.
            string[] waiting = [.. names.Where(n => !live.Any(l => l.Id == n && (started is null || !started.TryGetValue(n, out int pid) || l.Pid == pid)))];
            if (waiting.Length == 0)
                return live;
            foreach (string n in waiting)
            {
                if (started is not null && started.TryGetValue(n, out int pid) && !IsRunning(pid))
                    throw new InvalidOperationException($"node {n} (pid {pid}) exited while starting: its log ({n}.log in the cluster's directory) says why");
            }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"nodes not live after {timeout}: {string.Join(", ", waiting)}");
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// False when <paramref name="node"/> is registered (its lease lasts a few seconds after it died) but its process on
    /// this machine is gone: a local cluster's node killed a moment ago must be restarted, not taken for running.
    /// </summary>
    public static bool IsRunning(NodeInfo node)
    {
        return node.Pid is not int pid || !IPEndPoint.TryParse(node.Endpoint, out IPEndPoint? endPoint) || !IPAddress.IsLoopback(endPoint.Address)
            || IsRunning(pid);
    }

    /// <summary>
    /// This machine's <c>hybrid cluster node</c> processes of the cluster in <paramref name="dir"/> (by their command
    /// line: <c>--dir</c> is the directory's full path, as <see cref="StartNode"/> passes it), with their <c>--name</c>.
    /// </summary>
    public static List<(int Pid, string Name)> NodeProcesses(string dir)
    {
        string full = Path.GetFullPath(dir);
        var found = new List<(int, string)>();
        foreach (string proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid))
                continue;
            string[] args;
            try
            {
                args = File.ReadAllText(Path.Combine(proc, "cmdline")).Split('\0');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // gone meanwhile
            }
            int node = Array.IndexOf(args, "node");
            if (node < 1 || args[node - 1] != "cluster" || ValueOf(args, "--dir") != full || ValueOf(args, "--name") is not { } name || !IsRunning(pid))
                continue;
            found.Add((pid, name));
        }
        return found;

        static string? ValueOf(string[] args, string option) => Array.IndexOf(args, option) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>Whether process <paramref name="pid"/> of this machine runs (neither gone nor a zombie).</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            // A process killed a moment ago stays a zombie until its parent (init, for a detached node) reaps it.
            string stat = File.ReadAllText($"/proc/{pid.ToString(System.Globalization.CultureInfo.InvariantCulture)}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..] is not ['Z' or 'X', ..];
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The peer connection to a live node, proving the cluster's peer key (<see cref="DurableClusterMetadata.PeerKeyAsync"/>).</summary>
    public static NetworkPeer Peer(NodeInfo node, byte[] peerKey) =>
        new(IPEndPoint.Parse(node.PeerEndpoint ?? throw new InvalidOperationException($"node {node.Id} has no peer port")), peerKey);

    /// <summary>A node's reply to a control request (default: its migration status), or null when it does not answer.</summary>
    public static async Task<JsonElement?> StatusAsync(NodeInfo node, byte[] peerKey, string op = "status")
    {
        try
        {
            using NetworkPeer peer = Peer(node, peerKey);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            return JsonDocument.Parse(await peer.ControlAsync(JsonSerializer.Serialize(new { op }), timeout.Token)).RootElement.Clone();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or PeerException)
        {
            return null;
        }
    }

    /// <summary>The ranges lying wholly in slots [<paramref name="first"/>, <paramref name="last"/>]; throws when a range is cut by a bound.</summary>
    public static List<string> RangesIn(DecisionLog log, int first, int last)
    {
        var inside = new List<string>();
        foreach (var (name, slots) in log.Ranges.OrderBy(r => r.Value.First))
        {
            bool overlaps = slots.First <= last && slots.Last >= first;
            if (!overlaps)
                continue;
            if (slots.First < first || slots.Last > last)
                throw new ArgumentException($"slots {first}-{last} cut range {name} ({slots.First}-{slots.Last}): ranges move whole");
            inside.Add(name);
        }
        if (inside.Count == 0)
            throw new ArgumentException($"no range lies in slots {first}-{last}");
        return inside;
    }
}
