using System.Buffers.Binary;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using HdrHistogram;
using Hybrid.Client;
using Hybrid.Extensions;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Cli.Bench;

/// <summary>
/// <c>hybrid ext bench</c>: the issue's extension benchmarks, side by side in one run, each against a real node started
/// in this process (real sockets, FASTER store, the node's workers) and driven by the real client: one-read invoke vs
/// native get, aggregate over 100 records vs client multi-get (and, in Splinter's shape, over a stored key list vs client
/// get of the list + multi-get), TAO assoc_range vs client-side, short-request p99
/// while long extensions run with and without preemption, and density with many tenants.
/// </summary>
internal static class ExtBench
{
    private const long HighestNanos = 10_000_000_000;
    private const int ValueSize = 100;

    /// <summary>The shipped one-read example: the value in table 0 at the key in its args.</summary>
    private static readonly string GetOne = ExtensionExamples.Source("get");

    /// <summary>The CPUs this process may use, read at start (before the preemption case pins anything).</summary>
    private static readonly int[] s_allowedCpus = OperatingSystem.IsLinux() ? Hybrid.Transport.ThreadScheduling.AllowedCpus() : [];

    /// <summary>The shipped CPU-bound example: args[0..8] iterations, with a preemption point in its loop.</summary>
    private static readonly string LongLoop = ExtensionExamples.Source("loop");

    /// <summary>Options of one run.</summary>
    internal sealed record Options(string[] Cases, double Seconds, int Workers, int Sessions, int Depth, int Tenants, string? DataDir, double SliceMicros = 50, int Pack = 100, bool CompilerInProcess = false, bool Pin = true);

    /// <summary>The command.</summary>
    internal static Command CreateCommand()
    {
        var cases = new Option<string>("--cases") { Description = "Comma list of: get, aggregate, tao, preemption, tenants", DefaultValueFactory = _ => "get,aggregate,tao,preemption,tenants" };
        var seconds = new Option<double>("--seconds") { Description = "Duration of each measurement", DefaultValueFactory = _ => 3 };
        var workers = new Option<int>("--workers") { Description = "Node workers", DefaultValueFactory = _ => 2 };
        var sessions = new Option<int>("--sessions") { Description = "Client sessions of the throughput cases", DefaultValueFactory = _ => 4 };
        var depth = new Option<int>("--depth") { Description = "Requests in flight per session (throughput cases)", DefaultValueFactory = _ => 32 };
        var tenants = new Option<int>("--tenants") { Description = "Tenants of the density case, each with its own extension", DefaultValueFactory = _ => 5000 };
        var slice = new Option<double>("--slice-us") { Description = "Extension time slice of the throughput cases' nodes, in microseconds", DefaultValueFactory = _ => 50 };
        var pack = new Option<int>("--pack") { Description = "Density case: extensions compiled into one pack assembly (0 = no packing, one assembly each)", DefaultValueFactory = _ => 100 };
        var inProcess = new Option<bool>("--compiler-in-process") { Description = "Density case: compile in the node's process (loads Roslyn into it) instead of a child process" };
        var pin = new Option<bool>("--pin") { Description = "Preemption case: the node's worker and poller on CPU 0, this process (the client) on the others", DefaultValueFactory = _ => true };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where the benchmark nodes keep their data (default: a temporary directory, deleted after)" };
        var command = new Command("bench", "Extension benchmarks against in-process nodes (see docs/extensions.md)");
        foreach (var o in new Option[] { cases, seconds, workers, sessions, depth, tenants, dataDir, slice, pack, inProcess, pin })
            command.Options.Add(o);
        command.SetAction((result, _) => RunAsync(new Options(
            result.GetValue(cases)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            result.GetValue(seconds), result.GetValue(workers), result.GetValue(sessions), result.GetValue(depth),
            result.GetValue(tenants), result.GetValue(dataDir), result.GetValue(slice), result.GetValue(pack), result.GetValue(inProcess), result.GetValue(pin))));
        return command;
    }

    /// <summary>Runs the selected cases and prints their figures.</summary>
    internal static async Task<int> RunAsync(Options options)
    {
        string root = options.DataDir ?? Path.Combine(Path.GetTempPath(), "hybrid-ext-bench-" + Guid.NewGuid().ToString("N"));
        Console.WriteLine($"hybrid ext bench: workers={options.Workers} sessions={options.Sessions} depth={options.Depth} seconds={options.Seconds} cores={Environment.ProcessorCount}");
        try
        {
            foreach (var name in options.Cases)
            {
                string dir = Path.Combine(root, name);
                switch (name)
                {
                    case "get": await GetVsInvoke(options, dir).ConfigureAwait(false); break;
                    case "aggregate": await AggregateVsMultiGet(options, dir).ConfigureAwait(false); break;
                    case "tao": await TaoRange(options, dir).ConfigureAwait(false); break;
                    case "preemption": await Preemption(options, dir).ConfigureAwait(false); break;
                    case "tenants": await Density(options, dir).ConfigureAwait(false); break;
                    default: throw new ArgumentException($"unknown case '{name}'");
                }
            }
            return 0;
        }
        finally
        {
            if (options.DataDir is null)
            {
                try
                {
                    Directory.Delete(root, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static async Task<HybridNode> StartNode(Options options, string dir, ExtensionHostOptions? extensions = null, int[]? cpus = null)
    {
        var node = new HybridNode(new HybridNodeOptions
        {
            Cpus = cpus ?? [],
            DataDirectory = dir,
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Workers = options.Workers,
            Durability = DurabilityMode.Memory,
        });
        NodeExtensions.Configure(node, extensions ?? new ExtensionHostOptions
        {
            Limits = new ExtensionLimits { Slice = TimeSpan.FromMicroseconds(options.SliceMicros) },
        });
        await node.StartAsync().ConfigureAwait(false);
        return node;
    }

    private static Task<HybridSession> Connect(HybridNode node, string tenant = "default", byte[]? secret = null) =>
        HybridSession.ConnectAsync(new HybridClientOptions
        {
            EndPoint = new IPEndPoint(IPAddress.Loopback, node.NativePort),
            Tenant = tenant,
            Secret = secret ?? [],
            Timeout = TimeSpan.FromSeconds(60),
        });

    private static async Task Install(HybridSession session, string name, string source)
    {
        var r = await session.InstallExtensionAsync(name, source).ConfigureAwait(false);
        if (!r.Succeeded)
            throw new InvalidOperationException($"install {name}: {r.Status} {string.Join("; ", r.Errors)}");
    }

    private static byte[] Id(ulong id)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(key, id);
        return key;
    }

    /// <summary>Case 1: a one-read extension vs a native get of the same 100-byte values, same load shape.</summary>
    private static async Task GetVsInvoke(Options options, string dir)
    {
        await using var node = await StartNode(options, dir).ConfigureAwait(false);
        var sessions = await Sessions(node, options.Sessions).ConfigureAwait(false);
        const int keys = 10_000;
        var ids = Enumerable.Range(0, keys).Select(i => (ReadOnlyMemory<byte>)Id((ulong)i)).ToArray();
        var value = new byte[ValueSize];
        await Task.WhenAll(ids.Select((k, i) => sessions[i % sessions.Length].PutAsync(0, k.Span, value).AsTask())).ConfigureAwait(false);
        await Install(sessions[0], "get1", GetOne).ConfigureAwait(false);
        ReadOnlyMemory<byte> name = "get1"u8.ToArray();

        Func<HybridSession, long, Task> get = async (s, i) => Check((await s.GetAsync(0, ids[i % keys].Span).ConfigureAwait(false)).Status);
        Func<HybridSession, long, Task> invoke = async (s, i) => Check(await s.InvokeAsync(name, ids[i % keys]).ConfigureAwait(false));
        Console.WriteLine("\n== one-read extension vs native get (100-byte values, 10,000 keys) ==");
        var (gets, invokes) = await SideBySide(sessions, options, ("native get", get), ("invoke get1", invoke)).ConfigureAwait(false);
        Console.WriteLine(Invariant($"  time per op ratio invoke/get = {gets.OpsPerSecond / invokes.OpsPerSecond:F2} (target <= 1.2); p50 ratio {invokes.P50 / gets.P50:F2}"));
        await DisposeAll(sessions).ConfigureAwait(false);
    }

    /// <summary>Case 2: sum an int64 field over 100 records: the aggregate extension vs a client multi-get and a client-side sum.</summary>
    private static async Task AggregateVsMultiGet(Options options, string dir)
    {
        await using var node = await StartNode(options, dir).ConfigureAwait(false);
        var sessions = await Sessions(node, options.Sessions).ConfigureAwait(false);
        const int records = 10_000, span = 100;
        var value = new byte[16];
        await Task.WhenAll(Enumerable.Range(0, records).Select(i =>
        {
            var v = (byte[])value.Clone();
            BinaryPrimitives.WriteInt64LittleEndian(v, i);
            return sessions[i % sessions.Length].PutAsync(1, Id((ulong)i), v).AsTask();
        })).ConfigureAwait(false);
        await Install(sessions[0], "aggregate", ExtensionExamples.Source("aggregate")).ConfigureAwait(false);
        ReadOnlyMemory<byte> name = "aggregate"u8.ToArray();
        var rangeArgs = Enumerable.Range(0, records / span).Select(r =>
        {
            var a = new byte[20];
            BinaryPrimitives.WriteUInt32LittleEndian(a, 1);
            BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(4), (ulong)(r * span));
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(12), span);
            return (ReadOnlyMemory<byte>)a;
        }).ToArray();
        var keyLists = Enumerable.Range(0, records / span).Select(r => (IReadOnlyList<byte[]>)Enumerable.Range(r * span, span).Select(i => Id((ulong)i)).ToArray()).ToArray();
        // The args of aggregate.keys and aggregate.list: table 1, 8-byte keys, the field at offset 0, then what each names.
        static ReadOnlyMemory<byte> KeyedArgs(byte[] tail)
        {
            var a = new byte[12 + tail.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(a, 1);
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), 8);
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(8), 0);
            tail.CopyTo(a.AsSpan(12));
            return a;
        }
        var packedLists = keyLists.Select(list => list.SelectMany(k => k).ToArray()).ToArray();
        // aggregate.keys: the same 100 keys packed in the request, as the client's multi-get sends them.
        var keysArgs = packedLists.Select(KeyedArgs).ToArray();
        ReadOnlyMemory<byte> keysName = "aggregate.keys"u8.ToArray();
        // aggregate.list (Splinter's shape): the 100 keys are stored under a list key, which is all a request names.
        var listKeys = Enumerable.Range(0, records / span).Select(r => Encoding.ASCII.GetBytes(Invariant($"list:{r}"))).ToArray();
        await Task.WhenAll(packedLists.Select((packed, r) => sessions[r % sessions.Length].PutAsync(1, listKeys[r], packed).AsTask())).ConfigureAwait(false);
        var listArgs = listKeys.Select(KeyedArgs).ToArray();
        ReadOnlyMemory<byte> listName = "aggregate.list"u8.ToArray();
        long Expected(long r) => Enumerable.Range((int)(r * span), span).Sum(i => (long)i);
        var expected = Enumerable.Range(0, records / span).Select(r => Expected(r)).ToArray();

        // One aggregate invocation per call, its sum checked; a failed invocation (counted by Check) carries its
        // error text, not a sum.
        Func<HybridSession, long, Task> Invoker(ReadOnlyMemory<byte> extension, ReadOnlyMemory<byte>[] args, string label) => async (s, i) =>
        {
            int r = (int)(i % args.Length);
            var result = await s.InvokeAsync(extension, args[r]).ConfigureAwait(false);
            Check(result);
            if (result.Succeeded && BinaryPrimitives.ReadInt64LittleEndian(result.Value) != expected[r])
                throw new InvalidOperationException(label + ": wrong sum");
        };
        Func<HybridSession, long, Task> ext = Invoker(name, rangeArgs, "aggregate");
        Func<HybridSession, long, Task> client = async (s, i) =>
        {
            int r = (int)(i % keyLists.Length);
            long sum = 0;
            foreach (var item in await s.MultiGetAsync(1, keyLists[r]).ConfigureAwait(false))
                sum += BinaryPrimitives.ReadInt64LittleEndian(item.Value!);
            if (sum != expected[r])
                throw new InvalidOperationException("multi-get: wrong sum");
        };
        Func<HybridSession, long, Task> extKeys = Invoker(keysName, keysArgs, "aggregate.keys");
        Func<HybridSession, long, Task> extList = Invoker(listName, listArgs, "aggregate.list");
        // What a client does for Splinter's aggregate without an extension: get the list, then multi-get its keys.
        Func<HybridSession, long, Task> clientList = async (s, i) =>
        {
            int r = (int)(i % listKeys.Length);
            var list = await s.GetAsync(1, listKeys[r]).ConfigureAwait(false);
            Check(list.Status);
            byte[] packed = list.Value ?? throw new InvalidOperationException("get: no key list");
            long sum = 0;
            foreach (var item in await s.MultiGetAsync(1, packed, keySize: 8).ConfigureAwait(false))
                sum += BinaryPrimitives.ReadInt64LittleEndian(item.Value!);
            if (sum != expected[r])
                throw new InvalidOperationException("get + multi-get: wrong sum");
        };
        Console.WriteLine("\n== aggregate: sum a field over 100 records ==");
        Console.WriteLine("  range: args of 20 bytes (first id, count); the extension packs the ids as keys, 64 at a time, and sums them with SumInt64Field");
        var (e, c) = await SideBySide(sessions, options, ("extension aggregate", ext), ("client multi-get+sum", client)).ConfigureAwait(false);
        Console.WriteLine(Invariant($"  throughput ratio extension/client = {e.OpsPerSecond / c.OpsPerSecond:F2} (target >= 3){Invalid(e, c)}"));
        Console.WriteLine("  keys: the extension gets the 100 keys packed in its args (as the multi-get sends them) and sums with SumInt64Field");
        var (k, c2) = await SideBySide(sessions, options, ("extension aggregate.keys", extKeys), ("client multi-get+sum", client)).ConfigureAwait(false);
        Console.WriteLine(Invariant($"  throughput ratio extension/client = {k.OpsPerSecond / c2.OpsPerSecond:F2} (target >= 3){Invalid(k, c2)}"));
        Console.WriteLine("  list (Splinter's aggregate): the keys are stored under a list key; the client gets the list, then multi-gets its keys");
        var (l, c3) = await SideBySide(sessions, options, ("extension aggregate.list", extList), ("client get+multi-get+sum", clientList)).ConfigureAwait(false);
        Console.WriteLine(Invariant($"  throughput ratio extension/client = {l.OpsPerSecond / c3.OpsPerSecond:F2} (target >= 3){Invalid(l, c3)}"));
        await DisposeAll(sessions).ConfigureAwait(false);
    }

    /// <summary>Case 3: TAO assoc_range (10 newest of 50 associations) as an extension vs a client get and slice.</summary>
    private static async Task TaoRange(Options options, string dir)
    {
        await using var node = await StartNode(options, dir).ConfigureAwait(false);
        var sessions = await Sessions(node, options.Sessions).ConfigureAwait(false);
        const int objects = 1000, assocs = 50, limit = 10, entry = 24;
        const ushort atype = 7;
        var keys = Enumerable.Range(0, objects).Select(i => Encoding.ASCII.GetBytes($"{{{(ulong)i:x16}}}a{atype:x4}")).ToArray();
        await Task.WhenAll(keys.Select((k, i) =>
        {
            var list = new byte[assocs * entry];
            for (int a = 0; a < assocs; a++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(list.AsSpan(a * entry), (ulong)(i * 1000 + a));
                BinaryPrimitives.WriteUInt64LittleEndian(list.AsSpan(a * entry + 8), (ulong)(assocs - a));
            }
            return sessions[i % sessions.Length].PutAsync(2, k, list).AsTask();
        })).ConfigureAwait(false);
        await Install(sessions[0], "tao", ExtensionExamples.Source("tao")).ConfigureAwait(false);
        ReadOnlyMemory<byte> name = "tao.assoc_range"u8.ToArray();
        var args = Enumerable.Range(0, objects).Select(i =>
        {
            var a = new byte[18];
            BinaryPrimitives.WriteUInt64LittleEndian(a, (ulong)i);
            BinaryPrimitives.WriteUInt16LittleEndian(a.AsSpan(8), atype);
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(10), 0);
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(14), limit);
            return (ReadOnlyMemory<byte>)a;
        }).ToArray();

        Func<HybridSession, long, Task> ext = async (s, i) =>
        {
            var r = await s.InvokeAsync(name, args[i % objects]).ConfigureAwait(false);
            Check(r);
            if (r.Value.Length != limit * entry)
                throw new InvalidOperationException("assoc_range: wrong length");
        };
        Func<HybridSession, long, Task> client = async (s, i) =>
        {
            var r = await s.GetAsync(2, keys[i % objects]).ConfigureAwait(false);
            Check(r.Status);
            var range = r.Value!.AsSpan(0, Math.Min(r.Value!.Length, limit * entry)).ToArray();
            if (range.Length != limit * entry)
                throw new InvalidOperationException("client range: wrong length");
        };
        Console.WriteLine("\n== TAO assoc_range: 10 newest of 50 associations (1,200-byte list) ==");
        var (e, c) = await SideBySide(sessions, options, ("extension assoc_range", ext), ("client get+slice", client)).ConfigureAwait(false);
        Console.WriteLine(Invariant($"  throughput ratio extension/client = {e.OpsPerSecond / c.OpsPerSecond:F2}"));
        // Latency at low load (one request in flight): the client-side version moves the whole list.
        var e1 = await Drive(sessions[..1], 1, Duration(options), ext).ConfigureAwait(false);
        var c1 = await Drive(sessions[..1], 1, Duration(options), client).ConfigureAwait(false);
        Print("extension, 1 in flight", e1);
        Print("client, 1 in flight", c1);
        await DisposeAll(sessions).ConfigureAwait(false);
    }

    /// <summary>
    /// Case 4: p99 of short GETs (one session, one in flight) alone, then while other sessions keep invoking a ~10 ms
    /// CPU-bound extension; on a node with the default limits (50 µs slice, cut short after 10 µs when requests wait),
    /// one whose steps always run whole slices, and one whose slice never ends (no preemption).
    /// The node has one worker, so the short requests and the long invocations (from one other session, one at a
    /// time) share it: what the GETs wait for is exactly what preemption changes. The other core is left to the client.
    /// </summary>
    private static async Task Preemption(Options options, string dir)
    {
        Console.WriteLine("\n== p99 of short GETs while long extensions run (one worker) ==");
        var slice = TimeSpan.FromMicroseconds(options.SliceMicros);
        var never = TimeSpan.FromDays(1);
        string us = Invariant($"{slice.TotalMicroseconds:F0}");
        var modes = new[]
        {
            ($"preemption on ({us} us slice, yields after 10 us when requests wait)", "on", slice, TimeSpan.FromMicroseconds(10), true),
            ("preemption on, background steps off", "normal", slice, TimeSpan.FromMicroseconds(10), false),
            ($"preemption on, whole slices only ({us} us)", "slice", slice, slice, true),
            ("preemption off", "off", never, never, true),
        };
        // The node's one worker and its poller on CPU 0, everything else of this process (the client, its thread pool)
        // on the other CPUs, as a server with its own cores and a client elsewhere would run. Unpinned, the client's
        // threads compete with the always-busy worker for the same cores and can wait a scheduler tick (4 ms) for one.
        int[] nodeCpus = [];
        if (options.Pin && s_allowedCpus.Length >= 2)
        {
            Hybrid.Transport.ThreadScheduling.PinProcess(s_allowedCpus.AsSpan(1));
            nodeCpus = [s_allowedCpus[0]];
            Console.WriteLine($"  node worker and poller on CPU {nodeCpus[0]}, client on CPUs {string.Join(',', s_allowedCpus[1..])} (--pin false: no pinning)");
        }
        else
        {
            Console.WriteLine("  no pinning: node and client share every CPU");
        }
        try
        {
            foreach (var (label, name, sliceLength, minSlice, backgroundSteps) in modes)
            {
                if (!backgroundSteps && nodeCpus.Length > 0)
                    continue; // a pinned node never uses background steps: the default mode is this one
                var limits = new ExtensionLimits { Slice = sliceLength, MinSlice = minSlice, Cpu = TimeSpan.FromMilliseconds(200) };
                await using var node = await StartNode(options with { Workers = 1 }, Path.Combine(dir, name), new ExtensionHostOptions { Limits = limits, BackgroundSteps = backgroundSteps }, nodeCpus).ConfigureAwait(false);
                var sessions = await Sessions(node, 2).ConfigureAwait(false);
                await sessions[0].PutAsync(0, "k"u8, new byte[ValueSize]).ConfigureAwait(false);
                await Install(sessions[0], "long", LongLoop).ConfigureAwait(false);
                var n = await Calibrate(sessions[1], TimeSpan.FromMilliseconds(10)).ConfigureAwait(false);
                Func<HybridSession, long, Task> get = async (s, _) => Check((await s.GetAsync(0, "k"u8).ConfigureAwait(false)).Status);
                await Drive(sessions[..1], 1, TimeSpan.FromSeconds(1), get).ConfigureAwait(false);
                var alone = await Drive(sessions[..1], 1, Duration(options), get).ConfigureAwait(false);

                using var stop = new CancellationTokenSource();
                long longRuns = 0;
                var background = sessions[1..].Select(s => Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        Check(await s.InvokeAsync("long", n).ConfigureAwait(false));
                        Interlocked.Increment(ref longRuns);
                    }
                })).ToArray();
                var loaded = await Drive(sessions[..1], 1, Duration(options), get).ConfigureAwait(false);
                stop.Cancel();
                await Task.WhenAll(background).ConfigureAwait(false);
                Console.WriteLine($"  {label}:");
                Print("GET alone", alone);
                Print("GET with long extensions", loaded);
                Console.WriteLine(Invariant($"    long invocations run: {longRuns} ({longRuns / options.Seconds:F0}/s, {BinaryPrimitives.ReadInt64LittleEndian(n)} iterations each); p99 ratio loaded/alone = {loaded.P99 / alone.P99:F2} (target <= 1.5)"));
                await DisposeAll(sessions).ConfigureAwait(false);
            }
        }
        finally
        {
            if (nodeCpus.Length > 0)
                Hybrid.Transport.ThreadScheduling.PinProcess(s_allowedCpus); // the later cases unpinned
        }
    }

    /// <summary>
    /// Iterations of <see cref="LongLoop"/> that take about <paramref name="target"/> end to end: the fastest of five
    /// warm runs is used (the others include time the machine's other load took from the worker).
    /// </summary>
    private static async Task<byte[]> Calibrate(HybridSession session, TimeSpan target)
    {
        long n = 100_000;
        for (int round = 0; round < 3; round++)
        {
            var args = Id((ulong)n);
            double best = double.MaxValue;
            for (int run = 0; run < 5; run++)
            {
                var sw = Stopwatch.StartNew();
                Check(await session.InvokeAsync("long", args).ConfigureAwait(false));
                best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
            }
            n = Math.Max(1000, (long)(n * target.TotalMilliseconds / Math.Max(0.01, best)));
        }
        return Id((ulong)n);
    }

    /// <summary>
    /// Case 5: <see cref="Options.Tenants"/> tenants, each installing its own (distinct) extension: process RSS over
    /// the node with its tenants and no extension, install time per extension, first and second invoke times.
    /// </summary>
    private static async Task Density(Options options, string dir)
    {
        Console.WriteLine($"\n== density: {options.Tenants} tenants, each with its own extension ==");
        var secret = "s"u8.ToArray();
        var registry = Hybrid.Node.Tenants.TenantRegistry.Open(dir);
        var created = Stopwatch.StartNew();
        for (int t = 0; t < options.Tenants; t++)
            registry.Create($"t{t}", secret);
        Console.WriteLine(Invariant($"  created {options.Tenants} tenants in {created.Elapsed.TotalSeconds:F1} s"));
        await using var node = await StartNode(options, dir, new ExtensionHostOptions
        {
            ExtensionsPerPack = options.Pack,
            CompilerProcess = options.CompilerInProcess ? null : Commands.HybridCli.ExtensionCompilerProcess(),
        }).ConfigureAwait(false);
        Console.WriteLine($"  compiler {(options.CompilerInProcess ? "in the node's process" : "in a child process (hybrid ext compiler)")}, {options.Pack} extensions per pack");
        long before = SettledRss();
        // The compiler's fixed cost (Roslyn loaded and warm, its caches over CoreLib), paid once per node whatever
        // the number of tenants: one extension installed, invoked and removed.
        await using (var w = await Connect(node, "t0", secret).ConfigureAwait(false))
        {
            await Install(w, "warm", TenantSource(options.Tenants)).ConfigureAwait(false);
            Check(await w.InvokeAsync("warm", "k"u8).ConfigureAwait(false));
            if (!await w.UninstallExtensionAsync("warm").ConfigureAwait(false))
                throw new InvalidOperationException("warm-up uninstall failed");
        }
        long warmed = SettledRss();
        Console.WriteLine(Invariant($"  RSS node with {options.Tenants} tenants, no extension: {before / 1048576.0:F1} MiB; after one install + invoke + uninstall: {warmed / 1048576.0:F1} MiB (+{(warmed - before) / 1048576.0:F1} MiB fixed)"));
        long atThousand = 0;
        var install = new LongHistogram(HighestNanos, 3);
        var first = new LongHistogram(HighestNanos, 3);
        var warm = new LongHistogram(HighestNanos, 3);
        var all = Stopwatch.StartNew();
        for (int t = 0; t < options.Tenants; t++)
        {
            await using var s = await Connect(node, $"t{t}", secret).ConfigureAwait(false);
            string source = TenantSource(t);
            long start = Stopwatch.GetTimestamp();
            await Install(s, "mine", source).ConfigureAwait(false);
            install.RecordValue(Nanos(start));
            start = Stopwatch.GetTimestamp();
            var r = await s.InvokeAsync("mine", "k"u8).ConfigureAwait(false);
            first.RecordValue(Nanos(start));
            if (!r.Succeeded || BinaryPrimitives.ReadInt64LittleEndian(r.Value) != t)
                throw new InvalidOperationException($"tenant {t}: {r.Status} {r.Error}");
            start = Stopwatch.GetTimestamp();
            Check(await s.InvokeAsync("mine", "k"u8).ConfigureAwait(false));
            warm.RecordValue(Nanos(start));
            if ((t + 1) % 1000 == 0)
                Console.WriteLine(Invariant($"  {t + 1} installed, {all.Elapsed.TotalSeconds:F0} s"));
            if (t + 1 == Math.Min(1000, options.Tenants / 5))
                atThousand = SettledRss();
        }
        var host = NodeExtensions.Of(node).Host;
        long after = SettledRss();
        Report("installed and invoked twice", after, host);
        // What the background packer left (fewer than one pack's worth), packed now, then every tenant invoked once
        // more: the first call of a packed entry compiles its code again (the standalone code went with its assembly).
        var packing = Stopwatch.StartNew();
        int packed = host.Pack();
        Console.WriteLine(Invariant($"  packed the remaining {packed} in {packing.Elapsed.TotalMilliseconds:F0} ms"));
        long settled = SettledRss();
        Report("all packed", settled, host);
        var repacked = new LongHistogram(HighestNanos, 3);
        for (int t = 0; t < options.Tenants; t++)
        {
            await using var s = await Connect(node, $"t{t}", secret).ConfigureAwait(false);
            long start = Stopwatch.GetTimestamp();
            var r = await s.InvokeAsync("mine", "k"u8).ConfigureAwait(false);
            repacked.RecordValue(Nanos(start));
            if (!r.Succeeded || BinaryPrimitives.ReadInt64LittleEndian(r.Value) != t)
                throw new InvalidOperationException($"tenant {t} after packing: {r.Status} {r.Error}");
        }
        long final = SettledRss();
        Report("all packed, each invoked again", final, host);
        int first1000 = Math.Min(1000, options.Tenants / 5);
        Console.WriteLine(Invariant($"  marginal cost from {first1000} to {options.Tenants} extensions: {(final - atThousand) / 1024.0 / (options.Tenants - first1000):F1} KiB each; over the warmed node: +{(final - warmed) / 1048576.0:F1} MiB in all"));
        long trimmed = SettledRss(GCCollectionMode.Aggressive);
        Console.WriteLine(Invariant($"  after an aggressive GC (free heap memory returned to the OS): {trimmed / 1048576.0:F1} MiB, +{(trimmed - before) / 1048576.0:F1} MiB over the node without extensions"));

        void Report(string label, long rss, ExtensionHost h)
        {
            var (contexts, modules, names) = h.Counts;
            var (packs, inPacks, standalone) = h.PackCounts;
            Console.WriteLine(Invariant($"  RSS {label}: {rss / 1048576.0:F1} MiB, +{(rss - before) / 1048576.0:F1} MiB over the node with {options.Tenants} tenants and no extension ({before / 1048576.0:F1} MiB) = {(rss - before) / 1024.0 / options.Tenants:F1} KiB per extension (target <= 100 MB in all)"));
            Console.WriteLine($"    load contexts {contexts}, modules {modules} ({inPacks} in {packs} packs, {standalone} standalone), invocation names {names}");
        }
        PrintTimes("install (compile+verify+instrument+load+persist, end to end)", install);
        PrintTimes("first invoke (JIT of the new extension)", first);
        PrintTimes("second invoke", warm);
        PrintTimes("first invoke after packing (JIT of the packed code)", repacked);
    }

    /// <summary>A distinct extension per tenant (its own class and constant, so nothing is shared by hash): the tenant number, then one read.</summary>
    private static string TenantSource(int t) => $$"""
        using Hybrid.Extensions.Abstractions;
        public static class Tenant{{t}}
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                ctx.WriteInt64({{t}});
                if (ctx.TryGet(0, ctx.Args, out var value)) ctx.Write(value);
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    /// <summary>Process RSS after full collections (so it measures what stays, not garbage).</summary>
    private static long SettledRss(GCCollectionMode mode = GCCollectionMode.Forced)
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, mode, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    private static async Task<HybridSession[]> Sessions(HybridNode node, int count)
    {
        var sessions = new HybridSession[count];
        for (int i = 0; i < count; i++)
            sessions[i] = await Connect(node).ConfigureAwait(false);
        return sessions;
    }

    private static async Task DisposeAll(HybridSession[] sessions)
    {
        foreach (var s in sessions)
            await s.DisposeAsync().ConfigureAwait(false);
    }

    private static TimeSpan Duration(Options options) => TimeSpan.FromSeconds(options.Seconds);

    /// <summary>
    /// Counts a failed invocation instead of stopping the run: under CPU contention a step descheduled by the OS is
    /// billed wall time and may exceed its CPU budget. <see cref="Print"/> reports and resets the counts.
    /// </summary>
    private static void Check(ExtensionResult result)
    {
        if (!result.Succeeded)
        {
            s_failures.AddOrUpdate($"{result.Status}/{(ExtensionStatus)result.Reason}", 1, (_, n) => n + 1);
            Interlocked.Increment(ref s_failed);
        }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> s_failures = new();

    /// <summary>Failed invocations so far (a measurement keeps the difference over its run).</summary>
    private static long s_failed;

    private static void Check(Status status)
    {
        if (status != Status.Ok)
            throw new InvalidOperationException($"request failed: {status}");
    }

    private static long Nanos(long start) => (long)((Stopwatch.GetTimestamp() - start) * (1e9 / Stopwatch.Frequency));

    /// <summary>Throughput and latency of one closed-loop measurement.</summary>
    internal sealed record Measurement(long Ops, TimeSpan Elapsed, LongHistogram Latency, long Failed = 0)
    {
        public double OpsPerSecond => Ops / Elapsed.TotalSeconds;

        public double P50 => Latency.GetValueAtPercentile(50) / 1000.0;

        public double P99 => Latency.GetValueAtPercentile(99) / 1000.0;

        public Measurement Merge(Measurement other)
        {
            var merged = new LongHistogram(HighestNanos, 3);
            merged.Add(Latency);
            merged.Add(other.Latency);
            return new Measurement(Ops + other.Ops, Elapsed + other.Elapsed, merged, Failed + other.Failed);
        }
    }

    /// <summary>
    /// Warms both sides up, then measures them alternately twice (A, B, A, B, so drift in the machine's other load hits
    /// both) and prints the merged figures.
    /// </summary>
    private static async Task<(Measurement A, Measurement B)> SideBySide(HybridSession[] sessions, Options options,
        (string Label, Func<HybridSession, long, Task> Op) a, (string Label, Func<HybridSession, long, Task> Op) b)
    {
        await Drive(sessions, options.Depth, TimeSpan.FromSeconds(1), a.Op).ConfigureAwait(false);
        await Drive(sessions, options.Depth, TimeSpan.FromSeconds(1), b.Op).ConfigureAwait(false);
        var a1 = await Drive(sessions, options.Depth, Duration(options), a.Op).ConfigureAwait(false);
        var b1 = await Drive(sessions, options.Depth, Duration(options), b.Op).ConfigureAwait(false);
        var a2 = await Drive(sessions, options.Depth, Duration(options), a.Op).ConfigureAwait(false);
        var b2 = await Drive(sessions, options.Depth, Duration(options), b.Op).ConfigureAwait(false);
        var (ma, mb) = (a1.Merge(a2), b1.Merge(b2));
        Print(a.Label, ma);
        Print(b.Label, mb);
        return (ma, mb);
    }

    /// <summary>Every session keeps <paramref name="depth"/> operations in flight for <paramref name="duration"/>.</summary>
    private static async Task<Measurement> Drive(HybridSession[] sessions, int depth, TimeSpan duration, Func<HybridSession, long, Task> op)
    {
        long failedBefore = Interlocked.Read(ref s_failed);
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var loops = new List<Task<(long Ops, LongHistogram Latency)>>();
        var started = Stopwatch.StartNew();
        foreach (var session in sessions)
        {
            for (int d = 0; d < depth; d++)
            {
                long seed = loops.Count * 7919L;
                loops.Add(Task.Run(async () =>
                {
                    var histogram = new LongHistogram(HighestNanos, 3);
                    long ops = 0;
                    while (Stopwatch.GetTimestamp() < deadline)
                    {
                        long start = Stopwatch.GetTimestamp();
                        await op(session, seed + ops).ConfigureAwait(false);
                        histogram.RecordValue(Nanos(start));
                        ops++;
                    }
                    return (ops, histogram);
                }));
            }
        }
        var results = await Task.WhenAll(loops).ConfigureAwait(false);
        var elapsed = started.Elapsed;
        var latency = new LongHistogram(HighestNanos, 3);
        foreach (var r in results)
            latency.Add(r.Latency);
        return new Measurement(results.Sum(r => r.Ops), elapsed, latency, Interlocked.Read(ref s_failed) - failedBefore);
    }

    /// <summary>
    /// A warning for a ratio whose sides had failed invocations: a quarantined extension (a step descheduled past the
    /// watchdog's limit on a loaded machine) answers at once, so its throughput counts fast failures, not work.
    /// </summary>
    private static string Invalid(Measurement a, Measurement b) =>
        a.Failed + b.Failed == 0 ? "" : $"   NOT VALID: {a.Failed + b.Failed} invocations failed";

    private static void Print(string label, Measurement m)
    {
        string failures = s_failures.IsEmpty ? "" : "   failed: " + string.Join(", ", s_failures.Select(f => $"{f.Value} {f.Key}"));
        s_failures.Clear();
        Console.WriteLine(Invariant($"    {label,-28} {m.OpsPerSecond,12:N0} ops/s   p50 {m.P50,8:F1} us   p99 {m.P99,8:F1} us{failures}"));
    }

    private static void PrintTimes(string label, LongHistogram h) =>
        Console.WriteLine(Invariant($"  {label}: mean {h.GetMean() / 1e6:F2} ms, p50 {h.GetValueAtPercentile(50) / 1e6:F2} ms, p99 {h.GetValueAtPercentile(99) / 1e6:F2} ms, max {h.GetMaxValue() / 1e6:F2} ms"));

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
