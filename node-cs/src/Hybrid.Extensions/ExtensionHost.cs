using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>Settings of an <see cref="ExtensionHost"/>.</summary>
public sealed record ExtensionHostOptions
{
    /// <summary>Where compiled extensions and the install catalog persist; null keeps them in memory only.</summary>
    public string? Directory { get; init; }

    /// <summary>
    /// Flushes a directory's entries after a catalog file is renamed into it (the node passes libhyb_transport's
    /// <c>FileDurability.TrySyncDirectory</c>). Null: not flushed, so a machine crash may lose an acknowledged install.
    /// </summary>
    public Action<string>? SyncDirectory { get; init; }

    /// <summary>Budgets of every invocation.</summary>
    public ExtensionLimits Limits { get; init; } = new();

    /// <summary>Extension assemblies packed into one collectible load context.</summary>
    public int ExtensionsPerLoadContext { get; init; } = 100;

    /// <summary>How often the watchdog looks at the workers (and refills CPU quotas).</summary>
    public TimeSpan WatchdogInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// A worker inside one step for longer than this is stuck (a BCL call the meters cannot see into). Where the
    /// watchdog can read the worker thread's state (a node's workers), time waiting for a CPU does not count, and time
    /// asleep counts at the rate set by <see cref="StuckAsleepAfter"/>.
    /// </summary>
    public TimeSpan StuckAfter { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// A step asleep this long (blocked in a call; not the host's own waits on its behalf, such as a record read from
    /// disk) is stuck too: sleep counts toward <see cref="StuckAfter"/> at the rate StuckAfter / StuckAsleepAfter, added
    /// to the step's CPU time. The allowlist lets extensions call nothing that sleeps, so sleep in a step is the
    /// runtime's (JIT and type-loader locks, an allocation waiting for a background collection) or the machine's (page
    /// faults under load): counted like CPU time, 204 ms of it quarantined a well-behaved extension in a loaded test
    /// run. A blocking call that slipped through the allowlist is still caught, later. Siblings may steal the worker's
    /// queue once CPU time and sleep together reach StuckAfter, whoever is to blame.
    /// </summary>
    public TimeSpan StuckAsleepAfter { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Sources compiled together into one pack assembly (≤ 1 disables packing). Installs load on their own first (an
    /// assembly each, ~30 KiB resident); packing replaces them by one assembly per this many, a few KiB each.
    /// </summary>
    public int ExtensionsPerPack { get; init; } = 100;

    /// <summary>
    /// Pack on a background thread: whenever <see cref="ExtensionsPerPack"/> installs are waiting, and whatever is
    /// waiting (two or more) once no install came for <see cref="PackIdleDelay"/>. Off: only <see cref="ExtensionHost.Pack"/> packs.
    /// </summary>
    public bool PackInBackground { get; init; } = true;

    /// <summary>Quiet time after which the background packer packs a partial batch.</summary>
    public TimeSpan PackIdleDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Compile in a child process started like this (it must run <see cref="CompilerServer.Run"/> over its standard
    /// input and output, e.g. <c>hybrid ext compiler</c>) instead of in this one: the node then never loads Roslyn
    /// (~60 MiB resident once warm, and growing with its caches). Null compiles in process.
    /// </summary>
    public ProcessStartInfo? CompilerProcess { get; init; }

    /// <summary>
    /// With <see cref="CompilerProcess"/>: how long one compile may take before the child is stopped and the install
    /// refused (Roslyn cannot be stopped in process). A short source of nested lambdas took it minutes, holding every
    /// tenant's installs.
    /// </summary>
    public TimeSpan CompileTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Let the node run the steps an invocation takes after its first (long invocations) at background CPU priority
    /// (<see cref="ExtensionScheduler.ResumingStep"/>), so that the kernel preempts them as soon as any other thread
    /// wants the CPU. It takes libhyb_transport and the right to leave that priority again (root or CAP_SYS_NICE);
    /// without them the node runs every step at normal priority and says why at start. A node whose workers are
    /// pinned to CPUs of their own does not use it: there the switches only cost (measured in docs/extensions.md).
    /// </summary>
    public bool BackgroundSteps { get; init; } = true;

    /// <summary>Largest accepted source text, in characters.</summary>
    public int MaxSourceChars { get; init; } = 256 * 1024;
}

/// <summary>The outcome of an install: the names it can be invoked by, or why it was rejected.</summary>
/// <param name="Success">True when installed.</param>
/// <param name="Errors">Rejections, each <c>file(line,col): ...</c>.</param>
/// <param name="Names">The invocation names it registered.</param>
/// <param name="Compiled">False when an identical source was already loaded and was shared.</param>
public sealed record InstallResult(bool Success, IReadOnlyList<string> Errors, IReadOnlyList<string> Names, bool Compiled);

/// <summary>Reported when the watchdog finds a worker stuck inside one extension step.</summary>
/// <param name="WorkerIndex">The stuck scheduler's <see cref="ExtensionScheduler.Index"/>.</param>
/// <param name="Tenant">The tenant whose extension was running.</param>
/// <param name="Extension">The extension's invocation name (now quarantined).</param>
/// <param name="StuckFor">How long the step had been running.</param>
public sealed record StuckWorker(int WorkerIndex, ulong Tenant, string Extension, TimeSpan StuckFor);

/// <summary>
/// Tenant extensions for one node: install (compile, verify, instrument, load, persist), name
/// resolution, per-worker schedulers, per-tenant CPU quotas and the watchdog. Thread-safe.
/// </summary>
/// <remarks>
/// <see cref="Install"/> compiles with Roslyn (10–50 ms): call it from a control thread, not a worker.
/// </remarks>
public sealed class ExtensionHost : IDisposable
{
    private static readonly Regex s_name = new(@"^[A-Za-z0-9_-]{1,64}\z", RegexOptions.CultureInvariant);

    private readonly Lock _installLock = new();
    private readonly ModuleLoader _loader;
    private readonly ICompilerBackend _compiler;
    private readonly ConcurrentDictionary<(ulong Tenant, string Name), ExtensionHandle> _handles = new();
    private readonly Dictionary<(ulong Tenant, string Name), Installed> _installs = new();
    private readonly ConcurrentDictionary<ulong, TenantState> _tenants = new();
    private readonly Catalog? _catalog;
    private readonly Thread? _watchdog;
    private readonly Thread? _packer;
    private readonly AutoResetEvent _packSignal = new(false);
    private readonly Lock _packLock = new();
    private readonly HashSet<string> _unpackable = new(StringComparer.Ordinal);
    private long _lastInstall;
    private readonly CancellationTokenSource _stop = new();
    private ExtensionScheduler[] _schedulers = [];
    private long _generation;

    private sealed record Installed(LoadedModule Module, IReadOnlyList<string> Names);

    /// <summary>Opens the host; with a <see cref="ExtensionHostOptions.Directory"/>, reloads every persisted install without recompiling.</summary>
    public ExtensionHost(ExtensionHostOptions options, bool startWatchdog = true)
    {
        Options = options;
        _loader = new ModuleLoader(options.ExtensionsPerLoadContext);
        _compiler = options.CompilerProcess is { } start ? new CompilerProcess(start, options.CompileTimeout) : new InProcessCompiler();
        if (options.Directory is { } dir)
        {
            _catalog = new Catalog(dir, options.SyncDirectory);
            Reload(_catalog);
        }
        if (options.PackInBackground && options.ExtensionsPerPack > 1)
        {
            _packer = new Thread(PackerLoop) { IsBackground = true, Name = "hybrid-ext-packer", Priority = ThreadPriority.BelowNormal };
            _packer.Start();
        }
        if (startWatchdog)
        {
            _watchdog = new Thread(WatchdogLoop) { IsBackground = true, Name = "hybrid-ext-watchdog" };
            _watchdog.Start();
        }
    }

    /// <summary>The settings the host runs with.</summary>
    public ExtensionHostOptions Options { get; }

    /// <summary>Raised on the watchdog thread when a worker is stuck; the node may replace that worker.</summary>
    public event Action<StuckWorker>? WorkerStuck;

    internal ExtensionScheduler[] Schedulers => Volatile.Read(ref _schedulers);

    /// <summary>The kernel thread id of each scheduler's thread (<see cref="ExtensionScheduler.ThreadId"/>; 0 = unknown), for diagnostics.</summary>
    public int[] SchedulerThreadIds() => [.. Schedulers.Select(s => s.ThreadId)];

    /// <summary>Each extension's invocations by outcome and the time their steps ran, summed over the workers (for metrics).</summary>
    /// <remarks>
    /// An extension no longer installed is reported once more, then forgotten (its series ends): a tenant that installs,
    /// calls and removes ever new names would otherwise grow every worker's counters and every scrape for ever.
    /// </remarks>
    public IReadOnlyList<ExtensionUsageTotals> Usage()
    {
        var schedulers = Schedulers;
        var totals = ExtensionUsageTotals.Sum(schedulers);
        foreach (var gone in totals.Where(t => Resolve(t.Tenant, t.Name) is null))
        {
            foreach (var scheduler in schedulers)
                scheduler.Forget(gone.Tenant, gone.Name);
        }
        return totals;
    }

    /// <summary>Load contexts and loaded assemblies (for density measurements).</summary>
    public (int LoadContexts, int Modules, int Names) Counts
    {
        get
        {
            lock (_installLock)
            {
                return (_loader.ContextCount, _loader.ModuleCount, _handles.Count);
            }
        }
    }

    /// <summary>Pack assemblies loaded, modules in them, and modules still loaded on their own (for density measurements).</summary>
    public (int Packs, int PackedModules, int StandaloneModules) PackCounts
    {
        get
        {
            lock (_installLock)
            {
                var packed = _installs.Values.Select(i => i.Module).Distinct().Count(m => m.Packed);
                return (_loader.PackCount, packed, _loader.ModuleCount - packed);
            }
        }
    }

    /// <summary>
    /// Grows on every install and uninstall: a caller that caches <see cref="Resolve"/> results (per connection, by
    /// name bytes) compares it to know when its cache may be stale.
    /// </summary>
    public long Generation => Volatile.Read(ref _generation);

    /// <summary>
    /// The tenant's installs, sorted by name (ordinal), each with the invocation names it registered (sorted): what a
    /// RESP <c>FUNCTION LIST</c> calls libraries and their functions.
    /// </summary>
    public IReadOnlyList<(string Name, IReadOnlyList<string> Invocations)> ListInstalls(ulong tenant)
    {
        lock (_installLock)
        {
            return [.. _installs.Where(e => e.Key.Tenant == tenant).OrderBy(e => e.Key.Name, StringComparer.Ordinal)
                .Select(e => (e.Key.Name, (IReadOnlyList<string>)[.. e.Value.Names.Order(StringComparer.Ordinal)]))];
        }
    }

    /// <summary>The tenant's invocation names, sorted (ordinal).</summary>
    public IReadOnlyList<string> List(ulong tenant)
    {
        lock (_installLock)
        {
            var names = _installs.Where(e => e.Key.Tenant == tenant).SelectMany(e => e.Value.Names).ToList();
            names.Sort(StringComparer.Ordinal);
            return names;
        }
    }

    /// <summary>Creates the scheduler of one worker; <paramref name="store"/> is that worker's storage session.</summary>
    public ExtensionScheduler CreateScheduler(IExtensionStore store, IExtensionResultSink sink)
    {
        lock (_installLock)
        {
            var scheduler = new ExtensionScheduler(this, _schedulers.Length, store, sink);
            Volatile.Write(ref _schedulers, [.. _schedulers, scheduler]);
            return scheduler;
        }
    }

    /// <summary>
    /// Installs (or replaces) <paramref name="name"/> for <paramref name="tenant"/> from C# source. Rejections
    /// name the offending symbol and its position. An identical source already loaded is shared, not recompiled.
    /// </summary>
    public InstallResult Install(ulong tenant, string name, string source)
    {
        if (!s_name.IsMatch(name))
        {
            return Rejected($"invalid extension name '{name}' (1-64 of A-Z a-z 0-9 _ -)");
        }
        if (source.Length > Options.MaxSourceChars)
        {
            return Rejected($"source longer than {Options.MaxSourceChars} characters");
        }
        var hash = ContentHash.Of(source);
        byte[]? image = null;
        bool known;
        lock (_installLock)
        {
            known = _loader.Find(hash) is not null;
        }
        if (!known)
        {
            image = _catalog?.ReadImage(hash);
            if (image is null)
            {
                var (compiled, errors) = _compiler.Compile(name, source);
                if (compiled is null)
                {
                    return new InstallResult(false, errors, [], true);
                }
                image = compiled;
                _catalog?.WriteImage(hash, image, source);
            }
        }
        lock (_installLock)
        {
            // Re-checked under the lock: another install may have loaded the same source meanwhile.
            var loaded = _loader.Find(hash) is not null ? _loader.Acquire(hash, [], null) : _loader.Acquire(hash, image!, source);
            var bad = loaded.Entries.Keys.Where(e => e.Length > 0 && !s_name.IsMatch(e)).ToList();
            if (bad.Count > 0)
            {
                _loader.Release(loaded);
                return Rejected($"invalid entry name '{bad[0]}'");
            }
            RemoveLocked(tenant, name);
            var names = Register(tenant, name, loaded);
            _catalog?.Append(tenant, name, hash);
            Volatile.Write(ref _lastInstall, Stopwatch.GetTimestamp());
            if (!loaded.Packed && _packer is not null)
            {
                _packSignal.Set();
            }
            return new InstallResult(true, [], names, !known);
        }
    }

    /// <summary>Whether <paramref name="name"/> is installed for <paramref name="tenant"/> from exactly <paramref name="source"/>.</summary>
    public bool IsInstalled(ulong tenant, string name, string source)
    {
        lock (_installLock)
        {
            return _installs.TryGetValue((tenant, name), out var installed) && installed.Module.Hash == ContentHash.Of(source);
        }
    }

    /// <summary>Removes an install; in-flight invocations finish with the old code.</summary>
    public bool Uninstall(ulong tenant, string name)
    {
        lock (_installLock)
        {
            if (!RemoveLocked(tenant, name))
            {
                return false;
            }
            _catalog?.Remove(tenant, name);
            return true;
        }
    }

    /// <summary>Finds an invocable entry by its invocation name; null when absent.</summary>
    public ExtensionHandle? Resolve(ulong tenant, string name) => _handles.GetValueOrDefault((tenant, name));

    /// <summary>Limits a tenant's extensions to <paramref name="cores"/> CPU cores on average (≤ 0 removes the limit).</summary>
    public void SetCpuQuota(ulong tenant, double cores) => TenantOf(tenant).SetQuota(cores);

    /// <summary>
    /// Packs every extension loaded on its own (whose source is known) into pack assemblies of up to
    /// <see cref="ExtensionHostOptions.ExtensionsPerPack"/>, now, on the calling thread (compiles: not on a worker).
    /// Returns how many extensions were packed. Invocations keep running throughout: handles are re-pointed at the
    /// packed code and the standalone assemblies unload once their staging context is full and empty.
    /// </summary>
    public int Pack() => PackBatches(minimum: 2);

    private int PackBatches(int minimum)
    {
        int perPack = Options.ExtensionsPerPack, packed = 0;
        if (perPack <= 1)
        {
            return 0;
        }
        lock (_packLock)
        {
            while (!_stop.IsCancellationRequested)
            {
                List<(string Hash, string Name, string Source)> batch;
                lock (_installLock)
                {
                    batch = [.. _loader.Staged.Where(m => !_unpackable.Contains(m.Hash)).Take(perPack).Select(m => (m.Hash, "x", m.Source!))];
                }
                if (batch.Count < Math.Min(minimum, perPack))
                {
                    return packed;
                }
                var (pack, left) = _compiler.CompilePack(batch);
                if (pack is not null)
                {
                    _catalog?.WritePack(pack.Id, pack.Image, pack.Members);
                }
                lock (_installLock)
                {
                    _unpackable.UnionWith(left);
                    if (pack is not null)
                    {
                        packed += Repoint(_loader.LoadPack(pack.Image, pack.Members, _ => false));
                    }
                }
            }
            return packed;
        }
    }

    /// <summary>Points every install of a replaced module (and its handles) at the packed module.</summary>
    private int Repoint(Dictionary<string, LoadedModule> replaced)
    {
        var moved = _installs.Where(e => replaced.ContainsKey(e.Value.Module.Hash) && e.Value.Module != replaced[e.Value.Module.Hash]).ToList();
        foreach (var ((tenant, name), old) in moved)
        {
            var quarantined = old.Names.Where(n => _handles.TryGetValue((tenant, n), out var h) && h.IsQuarantined).ToList();
            Register(tenant, name, replaced[old.Module.Hash]);
            foreach (var n in quarantined)
            {
                _handles[(tenant, n)].Quarantine();
            }
        }
        return replaced.Count;
    }

    private void PackerLoop()
    {
        var handles = new[] { _stop.Token.WaitHandle, _packSignal };
        while (WaitHandle.WaitAny(handles, Options.PackIdleDelay) != 0)
        {
            var quiet = Stopwatch.GetElapsedTime(Volatile.Read(ref _lastInstall)) >= Options.PackIdleDelay;
            try
            {
                PackBatches(minimum: quiet ? 2 : Options.ExtensionsPerPack);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or BadImageFormatException)
            {
                // Packing is an optimisation: a failed pack leaves the extensions loaded on their own.
                Trace.TraceWarning($"extension packing failed: {e.Message}");
            }
        }
    }

    /// <summary>Stops the watchdog and the packer.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _watchdog?.Join();
        _packer?.Join();
        _compiler.Dispose();
        _stop.Dispose();
        _packSignal.Dispose();
    }

    /// <summary>
    /// Reloads persisted installs without compiling: packs first (a pack holding a live install), then single images.
    /// An install made by an older pipeline (its content hash carries the pipeline version, see <see cref="ContentHash"/>)
    /// is not loaded from its image, whose instrumentation may lack a later protection: it is installed again from its
    /// stored source, compiled by the current pipeline (and left out, with a warning, when that refuses it or its source
    /// is gone). Telling them apart reads every stored source, so it runs only while the directory is not marked as
    /// written by the current pipeline (<see cref="Catalog.WrittenByCurrentPipeline"/>): once after an upgrade, and
    /// again at each start while an install is left out.
    /// </summary>
    private void Reload(Catalog catalog)
    {
        var (all, packs) = catalog.Load();
        if (catalog.WrittenByCurrentPipeline)
        {
            ReloadCurrent(catalog, all, packs);
            return;
        }
        var sources = all.ToDictionary(i => i.Hash, i => catalog.ReadSource(i.Hash), StringComparer.Ordinal);
        var stale = all.Where(i => sources[i.Hash] is not { } source || ContentHash.Of(source) != i.Hash).ToList();
        ReloadCurrent(catalog, [.. all.Except(stale)], packs);
        var leftOut = 0;
        foreach (var (tenant, name, hash) in stale)
        {
            if (sources[hash] is not { } source)
            {
                Trace.TraceWarning($"extension '{name}' of tenant {tenant} not reloaded: its source is missing (install it again)");
                leftOut++;
                continue;
            }
            var result = Install(tenant, name, source);
            if (!result.Success)
            {
                Trace.TraceWarning($"extension '{name}' of tenant {tenant} not reloaded: the current pipeline refuses it: {string.Join("; ", result.Errors)}");
                leftOut++;
            }
        }
        if (leftOut == 0)
        {
            catalog.MarkCurrentPipeline();
        }
    }

    private void ReloadCurrent(Catalog catalog, List<(ulong Tenant, string Name, string Hash)> installs, List<(string Id, string[] Members)> packs)
    {
        var live = installs.Select(i => i.Hash).ToHashSet(StringComparer.Ordinal);
        lock (_installLock)
        {
            foreach (var (id, members) in packs)
            {
                if (members.Any(h => live.Contains(h) && _loader.Find(h) is null) && catalog.ReadPack(id) is { } image)
                {
                    _loader.LoadPack(image, members, h => live.Contains(h) && _loader.Find(h) is null);
                }
            }
            foreach (var (tenant, name, hash) in installs)
            {
                if (_loader.Find(hash) is not null)
                {
                    Register(tenant, name, _loader.Acquire(hash, [], null));
                }
                else if (catalog.ReadImage(hash) is { } image)
                {
                    Register(tenant, name, _loader.Acquire(hash, image, catalog.ReadSource(hash)));
                }
            }
        }
    }

    private TenantState TenantOf(ulong tenant) => _tenants.GetOrAdd(tenant, _ => new TenantState());

    private List<string> Register(ulong tenant, string name, LoadedModule module)
    {
        var names = new List<string>();
        var state = TenantOf(tenant);
        foreach (var (entry, function) in module.Entries)
        {
            var full = entry.Length == 0 ? name : name + "." + entry;
            _handles[(tenant, full)] = new ExtensionHandle(tenant, full, function, module, state);
            names.Add(full);
        }
        _installs[(tenant, name)] = new Installed(module, names);
        Interlocked.Increment(ref _generation);
        return names;
    }

    private bool RemoveLocked(ulong tenant, string name)
    {
        if (!_installs.Remove((tenant, name), out var old))
        {
            return false;
        }
        foreach (var n in old.Names)
        {
            _handles.TryRemove((tenant, n), out _);
        }
        _loader.Release(old.Module);
        Interlocked.Increment(ref _generation);
        return true;
    }

    private static InstallResult Rejected(string error) => new(false, [error], [], false);

    private void WatchdogLoop()
    {
        var limit = (long)(Options.StuckAfter.TotalSeconds * Stopwatch.Frequency);
        var asleepLimit = (long)(Options.StuckAsleepAfter.TotalSeconds * Stopwatch.Frequency);
        var last = Stopwatch.GetTimestamp();
        while (!_stop.Token.WaitHandle.WaitOne(Options.WatchdogInterval))
        {
            var now = Stopwatch.GetTimestamp();
            var elapsed = Stopwatch.GetElapsedTime(last, now);
            last = now;
            foreach (var tenant in _tenants.Values)
            {
                tenant.Refill(elapsed);
            }
            foreach (var scheduler in Schedulers)
            {
                if (scheduler.StuckInvocation(now, limit, asleepLimit) is not { } stuck || stuck.Abort is not null)
                {
                    continue;
                }
                var handle = stuck.Handle;
                handle.Quarantine();
                var stuckFor = Stopwatch.GetElapsedTime(stuck.StepStart, now);
                // Sticky: when the stuck call returns, the next meter check ends the invocation.
                string detail = scheduler.StuckDetail() is { } counted ? $" ({counted})" : "";
                stuck.Aborted(ExtensionStatus.Quarantined, $"stuck in one step for {stuckFor.TotalMilliseconds:F0} ms{detail}; extension quarantined");
                WorkerStuck?.Invoke(new StuckWorker(scheduler.Index, handle.Tenant, handle.Name, stuckFor));
            }
        }
    }

    /// <summary>
    /// The persisted installs: instrumented images under <c>modules/&lt;hash&gt;.dll</c> (with the source next to it,
    /// <c>&lt;hash&gt;.cs</c>, for packing), pack images under <c>packs/&lt;id&gt;.dll</c>, and an append-only
    /// <c>catalog.log</c> of installs (<c>+</c>), removals (<c>-</c>) and packs (<c>P</c>), compacted at startup.
    /// Images are trusted: the directory belongs to the server; each image's SHA-256 is checked against the catalog
    /// on load (a pack whose image fails the check is skipped and its members load on their own).
    /// </summary>
    private sealed class Catalog
    {
        private readonly string _modules;
        private readonly string _packs;
        private readonly string _log;
        private readonly string _pipeline;
        private readonly ConcurrentDictionary<string, string> _imageHashes = new(StringComparer.Ordinal);
        private readonly Lock _appendLock = new();
        private readonly Action<string>? _syncDirectory;

        internal Catalog(string directory, Action<string>? syncDirectory)
        {
            _syncDirectory = syncDirectory;
            _modules = Path.Combine(directory, "modules");
            _packs = Path.Combine(directory, "packs");
            _log = Path.Combine(directory, "catalog.log");
            _pipeline = Path.Combine(directory, "pipeline");
            System.IO.Directory.CreateDirectory(_modules);
            System.IO.Directory.CreateDirectory(_packs);
        }

        /// <summary>Live installs in install order, and the packs holding any of them (newest first).</summary>
        internal (List<(ulong Tenant, string Name, string Hash)> Installs, List<(string Id, string[] Members)> Packs) Load()
        {
            var live = new Dictionary<(ulong, string), string>();
            var packs = new List<(string Id, string[] Members)>();
            if (File.Exists(_log))
            {
                foreach (var line in File.ReadLines(_log))
                {
                    var f = line.Split('\t');
                    if (f is ["+", var t, var n, var h, var ih] && ulong.TryParse(t, out var tenant))
                    {
                        live[(tenant, n)] = h;
                        _imageHashes[h] = ih;
                    }
                    else if (f is ["-", var t2, var n2] && ulong.TryParse(t2, out var tenant2))
                    {
                        live.Remove((tenant2, n2));
                    }
                    else if (f is ["P", var id, var ih2, var members])
                    {
                        _imageHashes["pack:" + id] = ih2;
                        packs.Add((id, members.Split(',')));
                    }
                }
            }
            var hashes = live.Values.ToHashSet(StringComparer.Ordinal);
            packs = [.. packs.Where(p => p.Members.Any(hashes.Contains)).DistinctBy(p => p.Id)];
            var lines = packs.Select(p => PackLine(p.Id, p.Members)).Concat(live.Select(e => Line(e.Key.Item1, e.Key.Item2, e.Value)));
            WriteFile(_log, System.Text.Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => l + "\n"))));
            packs.Reverse();
            return ([.. live.Select(e => (e.Key.Item1, e.Key.Item2, e.Value))], packs);
        }

        /// <summary>Every install here was compiled by <see cref="ContentHash.PipelineVersion"/> (see <see cref="Reload"/>).</summary>
        internal bool WrittenByCurrentPipeline => File.Exists(_pipeline) && File.ReadAllText(_pipeline) == ContentHash.PipelineVersion;

        internal void MarkCurrentPipeline() => WriteFile(_pipeline, System.Text.Encoding.UTF8.GetBytes(ContentHash.PipelineVersion));

        internal byte[]? ReadImage(string hash) => ReadChecked(Path.Combine(_modules, hash + ".dll"), hash);

        internal byte[]? ReadPack(string id) => ReadChecked(Path.Combine(_packs, id + ".dll"), "pack:" + id);

        internal string? ReadSource(string hash)
        {
            var path = Path.Combine(_modules, hash + ".cs");
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }

        internal void WriteImage(string hash, byte[] image, string source)
        {
            WriteFile(Path.Combine(_modules, hash + ".cs"), System.Text.Encoding.UTF8.GetBytes(source));
            WriteFile(Path.Combine(_modules, hash + ".dll"), image);
            _imageHashes[hash] = Convert.ToHexStringLower(SHA256.HashData(image));
        }

        internal void WritePack(string id, byte[] image, IReadOnlyList<string> members)
        {
            WriteFile(Path.Combine(_packs, id + ".dll"), image);
            _imageHashes["pack:" + id] = Convert.ToHexStringLower(SHA256.HashData(image));
            AppendLine(PackLine(id, members));
        }

        internal void Append(ulong tenant, string name, string hash) => AppendLine(Line(tenant, name, hash));

        internal void Remove(ulong tenant, string name) => AppendLine($"-\t{tenant}\t{name}");

        private void AppendLine(string line)
        {
            lock (_appendLock)
            {
                // On disk before the install (or removal) is acknowledged, like the files it names (WriteFile).
                using var log = new FileStream(_log, FileMode.Append, FileAccess.Write, FileShare.Read);
                log.Write(System.Text.Encoding.UTF8.GetBytes(line + "\n"));
                log.Flush(flushToDisk: true);
            }
        }

        private byte[]? ReadChecked(string path, string key)
        {
            if (!File.Exists(path) || !_imageHashes.TryGetValue(key, out var expected))
            {
                return null;
            }
            var image = File.ReadAllBytes(path);
            return Convert.ToHexStringLower(SHA256.HashData(image)) == expected ? image : null;
        }

        /// <summary>Replaces a file whole: written and flushed to disk under a temporary name, then renamed over it.</summary>
        private void WriteFile(string path, byte[] bytes)
        {
            using (var file = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write, FileShare.None))
            {
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }
            File.Move(path + ".tmp", path, overwrite: true);
            _syncDirectory?.Invoke(Path.GetDirectoryName(path)!);
        }

        private string Line(ulong tenant, string name, string hash) => $"+\t{tenant}\t{name}\t{hash}\t{_imageHashes[hash]}";

        private string PackLine(string id, IEnumerable<string> members) => $"P\t{id}\t{_imageHashes["pack:" + id]}\t{string.Join(',', members)}";
    }
}
