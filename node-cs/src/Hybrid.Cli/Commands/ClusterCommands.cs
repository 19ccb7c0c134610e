using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Hybrid.Cli.Cluster;
using Hybrid.Cluster;
using Hybrid.Node.Hosting;
using Hybrid.Storage;
using Spectre.Console;

namespace Hybrid.Cli.Commands;

/// <summary><c>hybrid cluster start|status|stop|node</c>, <c>hybrid migrate</c> and <c>hybrid bench migrate</c>.</summary>
internal static partial class HybridCli
{
    private static readonly Option<string> s_dir = new("--dir") { Description = "Local cluster directory (metadata, node data, logs)", DefaultValueFactory = _ => "cluster" };
    private static readonly Option<string?> s_metadata = new("--metadata") { Description = "Metadata store: file:DIR or etcd:http://HOST:PORT (default file:<dir>/metadata)" };

    static partial void AddClusterCommands(RootCommand root)
    {
        var cluster = new Command("cluster", "Run and inspect a local cluster");
        cluster.Subcommands.Add(StartCommand());
        cluster.Subcommands.Add(StatusCommand());
        cluster.Subcommands.Add(StopCommand());
        cluster.Subcommands.Add(NodeCommand());
        root.Subcommands.Add(cluster);
        root.Subcommands.Add(MigrateCommand());
        if (root.Subcommands.FirstOrDefault(c => c.Name == "bench") is { } bench)
            bench.Subcommands.Add(MigrationBench.Command());
    }

    private static Command StartCommand()
    {
        var nodes = new Option<int>("--nodes") { Description = "Number of nodes", DefaultValueFactory = _ => 3 };
        var workers = new Option<int>("--workers") { Description = "Workers (cores) per node", DefaultValueFactory = _ => 2 };
        var ranges = new Option<int>("--ranges") { Description = "Number of equal slot ranges (divides 16384)", DefaultValueFactory = _ => 16 };
        var basePort = new Option<int>("--base-port") { Description = "Node i listens on native BASE+10i, RESP BASE+10i+1, peer BASE+10i+2 (0 = ephemeral)", DefaultValueFactory = _ => 7100 };
        var durability = new Option<string>("--durability") { Description = "memory|async|sync", DefaultValueFactory = _ => "async" };
        var trace = new Option<bool>("--trace")
        {
            Description = "Each node appends its protocol trace to DIR/NODE.trace.ndjson, restarts too (check them with 'hybrid trace check --cluster DIR DIR/*.trace.ndjson')",
        };
        var command = new Command("start", "Start a local cluster of N node processes on the embedded file metadata store (idempotent: reuses an existing cluster and restarts its stopped nodes with the durability and ports it was created with)");
        foreach (Option o in new Option[] { nodes, workers, ranges, basePort, durability, trace, s_dir, s_metadata })
            command.Options.Add(o);
        command.SetAction((result, _) => ReportErrors("cluster start", async () =>
        {
            string dir = result.GetValue(s_dir)!;
            Directory.CreateDirectory(dir);
            string spec = LocalCluster.MetadataSpec(dir, result.GetValue(s_metadata));
            // Another metadata store for a directory whose nodes belong to a cluster elsewhere would start a second
            // cluster over their data: refused before that store is opened (and a cluster created in it).
            string own = LocalCluster.OwnMetadataSpec(dir);
            string? kept = LocalCluster.SavedMetadataSpec(dir) ?? (Directory.Exists(Path.Combine(dir, "metadata")) ? own : null);
            if (kept is not null && spec != kept)
                throw new ArgumentException($"this cluster's metadata is {kept}, not {spec}: leave --metadata out to use it");
            await using IMetadataStore store = MetadataStores.Open(spec);
            var metadata = new DurableClusterMetadata(store);
            int n = result.GetValue(nodes);
            bool created = await LocalCluster.InitializeAsync(metadata, n, result.GetValue(workers), result.GetValue(ranges), allOnFirst: false);
            DecisionLog log = metadata.Log;
            if (!created)
            {
                // An existing cluster keeps its shape: a different one given explicitly was silently ignored.
                foreach (var (option, actual) in new (Option<int>, int)[] { (nodes, log.Nodes.Length), (workers, log.Cores.Length), (ranges, log.Ranges.Count) })
                {
                    if (result.GetResult(option) is System.CommandLine.Parsing.OptionResult { Implicit: false } && result.GetValue(option) != actual)
                        throw new ArgumentException($"this cluster has {option.Name} {actual}, not {result.GetValue(option)}: its shape is fixed when it is created");
                }
            }
            var live = (await metadata.Typed.ListLiveNodesAsync()).Where(LocalCluster.IsRunning).Select(l => l.Id).ToHashSet();
            // A node restarted later keeps the cluster's durability and ports: left out, they defaulted to async and
            // 7100 (a sync cluster's restarted node silently became async, found by an exploratory run).
            string settingsPath = Path.Combine(dir, LocalCluster.SettingsFile);
            var given = new StartSettings(result.GetValue(durability)!, result.GetValue(basePort), spec == own ? null : spec, result.GetValue(trace));
            StartSettings settings = given;
            if (!created && File.Exists(settingsPath))
            {
                StartSettings stored = JsonSerializer.Deserialize<StartSettings>(File.ReadAllText(settingsPath))
                    ?? throw new InvalidDataException($"{settingsPath} is empty");
                foreach (var (option, storedValue, givenValue) in new (Option, string, string)[]
                {
                    (durability, stored.Durability, given.Durability),
                    (basePort, stored.BasePort.ToString(CultureInfo.InvariantCulture), given.BasePort.ToString(CultureInfo.InvariantCulture)),
                    (trace, stored.Trace ? "on" : "off", given.Trace ? "on" : "off"),
                })
                {
                    if (result.GetResult(option) is System.CommandLine.Parsing.OptionResult { Implicit: false } && !string.Equals(storedValue, givenValue, StringComparison.OrdinalIgnoreCase))
                        throw new ArgumentException($"this cluster was started with {option.Name} {storedValue}, not {givenValue}: leave {option.Name} out to keep it");
                }
                settings = stored;
                if (stored.Metadata is null && given.Metadata is not null)
                {
                    // Kept by a version that did not record another store (its directory has no store of its own): record it now.
                    settings = stored with { Metadata = given.Metadata };
                    File.WriteAllText(settingsPath, JsonSerializer.Serialize(settings));
                }
            }
            else
            {
                File.WriteAllText(settingsPath, JsonSerializer.Serialize(given));
            }
            int port = settings.BasePort;
            var started = new Dictionary<string, int>();
            for (int i = 0; i < log.Nodes.Length; i++)
            {
                string name = log.Nodes[i];
                if (live.Contains(name))
                    continue;
                string Port(int offset) => (port == 0 ? 0 : port + (10 * i) + offset).ToString(CultureInfo.InvariantCulture);
                string[] traced = settings.Trace ? ["--trace", Path.Combine(Path.GetFullPath(dir), name + ".trace.ndjson")] : [];
                using var process = LocalCluster.StartNode(dir, spec, name, ["--port", Port(0), "--resp-port", Port(1), "--peer-port", Port(2), "--durability", settings.Durability, .. traced]);
                started[name] = process.Id;
            }
            await LocalCluster.WaitLiveAsync(metadata.Typed, log.Nodes, TimeSpan.FromSeconds(60), started);
            Console.WriteLine(created ? $"created cluster: {log.Nodes.Length} nodes, {log.Ranges.Count} ranges, metadata {spec}" : $"cluster exists: metadata {spec}");
            await PrintStatusAsync(metadata, store);
            return 0;
        }));
        return command;
    }

    private static Command StatusCommand()
    {
        var command = new Command("status", "Ranges, owners, views, live nodes and migrations in flight");
        command.Options.Add(s_dir);
        command.Options.Add(s_metadata);
        command.SetAction((result, _) => ReportErrors("cluster status", async () =>
        {
            await using IMetadataStore store = MetadataStores.Open(LocalCluster.ExistingMetadataSpec(result.GetValue(s_dir)!, result.GetValue(s_metadata)));
            await PrintStatusAsync(new DurableClusterMetadata(store), store);
            return 0;
        }));
        return command;
    }

    private static Command StopCommand()
    {
        var command = new Command("stop", "Stop every node of the cluster: SIGTERM to the processes it registered and to this machine's node processes of its directory; SIGKILL to one still there 20 s later");
        command.Options.Add(s_dir);
        command.Options.Add(s_metadata);
        command.SetAction((result, _) => ReportErrors("cluster stop", async () =>
        {
            string dir = result.GetValue(s_dir)!;
            await using IMetadataStore store = MetadataStores.Open(LocalCluster.ExistingMetadataSpec(dir, result.GetValue(s_metadata)));
            var metadata = new ClusterMetadata(store);
            // The registered nodes, and this machine's node processes of the directory whose registration lapsed (a node
            // too busy to renew its lease for a moment was left running, its directory then deleted under it).
            var nodes = new Dictionary<int, string>();
            foreach (NodeInfo node in await metadata.ListLiveNodesAsync())
            {
                if (node.Pid is int pid)
                    nodes[pid] = node.Id;
            }
            foreach (var (pid, name) in LocalCluster.NodeProcesses(dir))
                nodes.TryAdd(pid, name);
            foreach (var (pid, name) in nodes)
            {
                // SIGTERM: the node stops cleanly (closes its store, revokes its registration).
                using var kill = System.Diagnostics.Process.Start("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)]);
                await kill.WaitForExitAsync();
            }
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            foreach (var (pid, name) in nodes)
            {
                while (LocalCluster.IsRunning(pid) && DateTime.UtcNow < deadline)
                    await Task.Delay(50);
                if (LocalCluster.IsRunning(pid))
                {
                    // A node that does not finish stopping is stopped all the same (its restart recovers it).
                    using var kill = System.Diagnostics.Process.Start("kill", ["-KILL", pid.ToString(CultureInfo.InvariantCulture)]);
                    await kill.WaitForExitAsync();
                    Console.WriteLine($"killed {name} (pid {pid}): still running 20 s after SIGTERM");
                    continue;
                }
                Console.WriteLine($"stopped {name} (pid {pid})");
            }
            return 0;
        }));
        return command;
    }

    private static Command NodeCommand()
    {
        var name = new Option<string>("--name") { Description = "Node name (n1, n2, ...)", Required = true };
        var port = new Option<int>("--port") { DefaultValueFactory = _ => 0 };
        var respPort = new Option<int>("--resp-port") { DefaultValueFactory = _ => -1 };
        var peerPort = new Option<int>("--peer-port") { DefaultValueFactory = _ => 0 };
        var durability = new Option<string>("--durability") { DefaultValueFactory = _ => "async" };
        var memory = new Option<long>("--memory-budget") { DefaultValueFactory = _ => 256L << 20 };
        var trace = new Option<string?>("--trace") { Description = "Append the node's protocol trace (ndjson) to FILE" };
        var warmUp = new Option<bool>("--warm-up")
        {
            Description = "At start, compile the request and migration paths by running scratch migrations in the background (see NodeWarmUp)",
            DefaultValueFactory = _ => true,
        };
        var command = new Command("node", "Run one cluster node in the foreground (what 'cluster start' spawns; its ports and durability are yours to give)");
        foreach (Option o in new Option[] { name, port, respPort, peerPort, durability, memory, trace, warmUp, s_dir, s_metadata })
            command.Options.Add(o);
        command.SetAction(async (result, _) =>
        {
            string dir = result.GetValue(s_dir)!;
            string node = result.GetValue(name)!;
            await using IMetadataStore store = MetadataStores.Open(LocalCluster.MetadataSpec(dir, result.GetValue(s_metadata)));
            var options = new HybridNodeOptions
            {
                DataDirectory = Path.Combine(dir, node),
                NativePort = result.GetValue(port),
                RespPort = result.GetValue(respPort),
                MetricsPort = -1,
                Durability = Enum.Parse<DurabilityMode>(result.GetValue(durability)!, ignoreCase: true),
                MemoryBudgetBytes = result.GetValue(memory),
            };
            using var stop = new ManualResetEventSlim();
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Set(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Set(); });
            ClusterNodeHost host = await ClusterNodeHost.StartAsync(store, "/hybrid", node, options, result.GetValue(peerPort), result.GetValue(trace));
            bool failed = false;
            host.Member.Node.StorageFailed += e =>
            {
                Console.Error.WriteLine($"hybrid: node {node}: storage: the operation log cannot be written to disk ({e.Message}; is the disk full?): stopping");
                failed = true;
                stop.Set();
            };
            try
            {
                Console.WriteLine($"hybrid cluster node {node}: native={host.Member.Node.NativePort} peer={host.Member.PeerEndPoint.Port} view={host.Member.Node.View.Current} pid={Environment.ProcessId}");
                HybridCli.WarnIfRenamesNotFlushed($"hybrid: node {node}");
                using var warmUpCancel = new CancellationTokenSource();
                Task warming = result.GetValue(warmUp) ? Task.Run(() => WarmUpAsync(options, warmUpCancel.Token)) : Task.CompletedTask;
                stop.Wait();
                // A stop during the warm-up ends it first, so its scratch nodes and directory go too.
                await warmUpCancel.CancelAsync();
                await warming.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
            }
            finally
            {
                try
                {
                    await host.DisposeAsync();
                }
                catch (Exception e) when (failed)
                {
                    // Its last checkpoint fails on the same disk: nothing more to save.
                    Console.Error.WriteLine($"hybrid: node {node}: stopped without a last checkpoint: {e.Message}");
                }
            }
            return failed ? 3 : 0;
        });
        return command;
    }

    /// <summary>Runs <see cref="NodeWarmUp"/> once and says how it went; a failure is reported, never fatal.</summary>
    private static async Task WarmUpAsync(HybridNodeOptions options, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // Under the node's own directory, not /tmp: a node killed during its warm-up leaves the scratch there, and
            // the next start (or whoever removes the node's directory) cleans it.
            long reads = await NodeWarmUp.RunAsync(options.Workers, options.SocketEngine, NodeWarmUp.DefaultDuration,
                directory: Path.Combine(options.DataDirectory, "warm-up"), cancellationToken: cancellationToken);
            Console.WriteLine($"warm-up: {reads} reads answered during scratch migrations, {clock.Elapsed.TotalSeconds:F1} s");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Console.WriteLine($"warm-up: stopped with the node after {clock.Elapsed.TotalSeconds:F1} s");
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"warm-up failed after {clock.Elapsed.TotalSeconds:F1} s (the node serves on, unwarmed): {e.Message}");
        }
    }

    private static Command MigrateCommand()
    {
        var slots = new Option<string>("--slots") { Description = "Slots A-B (whole ranges)", Required = true };
        var to = new Option<string>("--to") { Description = "Target node", Required = true };
        var pullRate = new Option<string>("--pull-rate")
        {
            Description = "Background pulls: adaptive (back off while reads of keys not pulled yet wait, the default) or max (as fast as they go)",
            DefaultValueFactory = _ => "adaptive",
        };
        pullRate.AcceptOnlyFromAmong("adaptive", "max");
        var command = new Command("migrate", "Move slots A-B to NODE (Rocksteady) with a live progress bar");
        foreach (Option o in new Option[] { slots, to, pullRate, s_dir, s_metadata })
            command.Options.Add(o);
        command.SetAction((result, _) => ReportErrors("migrate", async () =>
        {
            string[] bounds = result.GetValue(slots)!.Split('-');
            if (bounds.Length != 2 || !int.TryParse(bounds[0], out int first) || !int.TryParse(bounds[1], out int last) || first > last)
            {
                Console.Error.WriteLine("--slots must be A-B with A <= B");
                return 2;
            }
            if (first < 0 || last >= Slot.Count)
            {
                Console.Error.WriteLine($"--slots must lie within 0-{Slot.Count - 1}, not {first}-{last}");
                return 2;
            }
            await using IMetadataStore store = MetadataStores.Open(LocalCluster.ExistingMetadataSpec(result.GetValue(s_dir)!, result.GetValue(s_metadata)));
            var metadata = new DurableClusterMetadata(store);
            string target = result.GetValue(to)!;
            List<string> ranges;
            NodeInfo? node = (await metadata.Typed.ListLiveNodesAsync()).FirstOrDefault(n => n.Id == target);
            try
            {
                ranges = LocalCluster.RangesIn(metadata.Log, first, last);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
            if (node is null)
            {
                Console.Error.WriteLine($"node {target} is not running");
                return 2;
            }
            // What the target does not own yet, or is still moving; and each range's source must be up (the node
            // would wait for it silently, with the range half moved).
            var core = metadata.Current;
            ranges = [.. ranges.Where(r => core.Owner(r) != target || core.Phase(r).Length > 0)];
            if (ranges.Count == 0)
            {
                Console.WriteLine($"nothing to move: slots {first}-{last} are on {target} already");
                return 0;
            }
            // Up: registered (a lease outlives a killed process by its TTL) and answering on its peer port.
            Dictionary<string, NodeInfo> registered = (await metadata.Typed.ListLiveNodesAsync()).ToDictionary(n => n.Id);
            byte[] peerKey = await metadata.PeerKeyAsync();
            foreach (string r in ranges.DistinctBy(core.MovesFrom))
            {
                if (!registered.TryGetValue(core.MovesFrom(r), out NodeInfo? source) || await LocalCluster.StatusAsync(source, peerKey, "peer") is null)
                {
                    Console.Error.WriteLine($"node {core.MovesFrom(r)}, the source of {r}, is not running: start it first ('hybrid cluster start' restarts a local cluster's stopped nodes)");
                    return 2;
                }
            }
            MigrationReport report = await MigrationProgress.RunAsync(node, peerKey, ranges, showBar: true, pullRate: result.GetValue(pullRate)!);
            Console.WriteLine(report.Summary());
            return report.Error is null ? 0 : 1;
        }));
        return command;
    }

    /// <summary>
    /// Runs a cluster command: a metadata store that cannot be reached, a cluster that does not exist there, a bad
    /// argument or a file that cannot be read ends the command with one line on stderr and exit code 2, not a stack trace.
    /// </summary>
    private static async Task<int> ReportErrors(string command, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is MetadataUnavailableException or InvalidOperationException or ArgumentException or IOException
            or InvalidDataException or UnauthorizedAccessException or JsonException)
        {
            Console.Error.WriteLine($"hybrid {command}: {e.Message}");
            return 2;
        }
    }

    private static async Task PrintStatusAsync(DurableClusterMetadata metadata, IMetadataStore store)
    {
        VersionedClusterState state = await metadata.Typed.ReadAsync()
            ?? throw new InvalidOperationException("no cluster in this metadata store (start one with 'hybrid cluster start')");
        IReadOnlyList<NodeInfo> live = await metadata.Typed.ListLiveNodesAsync();
        byte[] peerKey = await metadata.PeerKeyAsync();
        var nodes = new Table().AddColumns("node", "view", "native", "resp", "peer", "pid", "migration", "peer refusals");
        foreach (string n in state.State.View.Keys)
        {
            NodeInfo? info = live.FirstOrDefault(l => l.Id == n);
            string migration = "";
            if (info is not null && await LocalCluster.StatusAsync(info, peerKey) is { } status && status.GetProperty("ranges").GetArrayLength() > 0)
            {
                migration = status.GetProperty("finished").ValueKind == JsonValueKind.Null
                    ? $"{(status.TryGetProperty("pullsEnded", out JsonElement ended) && ended.ValueKind == JsonValueKind.True ? "pulled, checkpointing" : "pulling")} {status.GetProperty("current")}: {status.GetProperty("records")} records"
                    : $"last: {string.Join(",", status.GetProperty("done").EnumerateArray())} ({status.GetProperty("records")} records){(status.GetProperty("error").ValueKind == JsonValueKind.String ? " FAILED " + status.GetProperty("error") : "")}";
            }
            // Connections the node's peer port refused (no or a wrong peer key): a probe, or a node of another cluster.
            string refusals = "";
            if (info is not null && await LocalCluster.StatusAsync(info, peerKey, "peer") is { } peer && peer.GetProperty("refused").GetInt64() > 0)
                refusals = $"{peer.GetProperty("refused")} (last: {peer.GetProperty("lastRefusal")})";
            nodes.AddRow(n, state.State.View[n].ToString(CultureInfo.InvariantCulture), info?.Endpoint ?? "[red]down[/]", info?.RespEndpoint ?? "", info?.PeerEndpoint ?? "",
                info?.Pid?.ToString(CultureInfo.InvariantCulture) ?? "", Markup.Escape(migration), Markup.Escape(refusals));
        }
        var ranges = new Table().AddColumns("range", "slots", "owner", "migration", "lineage");
        foreach (var (r, slots) in state.State.Ranges.OrderBy(r => r.Value.First))
        {
            string mig = state.State.Mig.TryGetValue(r, out RangeMigration? m) ? $"{m.Src} -> {m.Tgt} {m.Phase}" : "";
            string lineage = state.State.Lineage.TryGetValue(r, out Lineage? l) ? $"{l.Src} -> {l.Tgt}" : "";
            ranges.AddRow(r, $"{slots.First}-{slots.Last}", state.State.Owner[r], mig, lineage);
        }
        Tables.WidenWhenRedirected(160);
        AnsiConsole.Write(nodes);
        AnsiConsole.Write(ranges);
        Console.WriteLine($"revision {state.Revision}, {metadata.Log.Decisions.Count} decisions");
        (IReadOnlyList<Hybrid.Node.Tenants.TenantInfo> tenants, _) = await new ClusterTenants(store).ListAsync();
        (IReadOnlyList<ClusterExtensions.Entry> extensions, _) = await new ClusterExtensions(store).ListAsync();
        string names = string.Join(", ", tenants.Take(10).Select(t => $"{t.Name} ({t.Id})")) + (tenants.Count > 10 ? ", ..." : "");
        Console.WriteLine($"tenants: default (1, on loopback-only nodes){(tenants.Count > 0 ? ", " + names : "")}; extensions in the catalog: {extensions.Count(e => e.Source is not null)}");
    }

    /// <summary>
    /// What <c>cluster start</c> started a local cluster's nodes with, kept in its directory for later restarts, and its
    /// metadata store when it is not its own file store (null), which every command then finds by --dir, and whether
    /// its nodes trace.
    /// </summary>
    private sealed record StartSettings(string Durability, int BasePort, string? Metadata = null, bool Trace = false);
}
