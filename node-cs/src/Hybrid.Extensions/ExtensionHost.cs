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

    /// <summary>Budgets of every invocation.</summary>
    public ExtensionLimits Limits { get; init; } = new();

    /// <summary>Extension assemblies packed into one collectible load context.</summary>
    public int ExtensionsPerLoadContext { get; init; } = 100;

    /// <summary>How often the watchdog looks at the workers (and refills CPU quotas).</summary>
    public TimeSpan WatchdogInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>A worker inside one step for longer than this is stuck (a BCL call the meters cannot see into).</summary>
    public TimeSpan StuckAfter { get; init; } = TimeSpan.FromMilliseconds(200);

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
    private static readonly Regex s_name = new("^[A-Za-z0-9_-]{1,64}$", RegexOptions.CultureInvariant);

    private readonly Lock _installLock = new();
    private readonly ModuleLoader _loader;
    private readonly ConcurrentDictionary<(ulong Tenant, string Name), ExtensionHandle> _handles = new();
    private readonly Dictionary<(ulong Tenant, string Name), Installed> _installs = new();
    private readonly ConcurrentDictionary<ulong, TenantState> _tenants = new();
    private readonly Catalog? _catalog;
    private readonly Thread? _watchdog;
    private readonly CancellationTokenSource _stop = new();
    private ExtensionScheduler[] _schedulers = [];
    private long _generation;

    private sealed record Installed(LoadedModule Module, IReadOnlyList<string> Names);

    /// <summary>Opens the host; with a <see cref="ExtensionHostOptions.Directory"/>, reloads every persisted install without recompiling.</summary>
    public ExtensionHost(ExtensionHostOptions options, bool startWatchdog = true)
    {
        Options = options;
        _loader = new ModuleLoader(options.ExtensionsPerLoadContext);
        if (options.Directory is { } dir)
        {
            _catalog = new Catalog(dir);
            foreach (var (tenant, name, hash) in _catalog.Load())
            {
                if (_catalog.ReadImage(hash) is { } image)
                {
                    lock (_installLock)
                    {
                        Register(tenant, name, _loader.Acquire(hash, image));
                    }
                }
            }
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

    /// <summary>
    /// Grows on every install and uninstall: a caller that caches <see cref="Resolve"/> results (per connection, by
    /// name bytes) compares it to know when its cache may be stale.
    /// </summary>
    public long Generation => Volatile.Read(ref _generation);

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
        var hash = ExtensionCompiler.HashOf(source);
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
                var (module, errors) = ExtensionCompiler.Compile(name, source);
                if (module is null)
                {
                    return new InstallResult(false, errors, [], true);
                }
                image = module.Image;
                _catalog?.WriteImage(hash, image);
            }
        }
        lock (_installLock)
        {
            // Re-checked under the lock: another install may have loaded the same source meanwhile.
            var loaded = _loader.Find(hash) is not null ? _loader.Acquire(hash, []) : _loader.Acquire(hash, image!);
            var bad = loaded.Entries.Keys.Where(e => e.Length > 0 && !s_name.IsMatch(e)).ToList();
            if (bad.Count > 0)
            {
                _loader.Release(loaded);
                return Rejected($"invalid entry name '{bad[0]}'");
            }
            RemoveLocked(tenant, name);
            var names = Register(tenant, name, loaded);
            _catalog?.Append(tenant, name, hash);
            return new InstallResult(true, [], names, !known);
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

    /// <summary>Stops the watchdog.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _watchdog?.Join();
        _stop.Dispose();
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
                if (scheduler.StuckInvocation(now, limit) is not { } stuck || stuck.Abort is not null)
                {
                    continue;
                }
                var handle = stuck.Handle;
                handle.Quarantine();
                var stuckFor = Stopwatch.GetElapsedTime(stuck.StepStart, now);
                // Sticky: when the stuck call returns, the next meter check ends the invocation.
                stuck.Aborted(ExtensionStatus.Quarantined, $"stuck in one step for {stuckFor.TotalMilliseconds:F0} ms; extension quarantined");
                WorkerStuck?.Invoke(new StuckWorker(scheduler.Index, handle.Tenant, handle.Name, stuckFor));
            }
        }
    }

    /// <summary>
    /// The persisted installs: instrumented images under <c>modules/&lt;hash&gt;.dll</c> and an append-only
    /// <c>catalog.log</c> of installs and removals, compacted at startup. Images are trusted: the directory
    /// belongs to the server; each image's SHA-256 is checked against the catalog on load.
    /// </summary>
    private sealed class Catalog
    {
        private readonly string _modules;
        private readonly string _log;
        private readonly ConcurrentDictionary<string, string> _imageHashes = new(StringComparer.Ordinal);

        internal Catalog(string directory)
        {
            _modules = Path.Combine(directory, "modules");
            _log = Path.Combine(directory, "catalog.log");
            System.IO.Directory.CreateDirectory(_modules);
        }

        internal List<(ulong Tenant, string Name, string Hash)> Load()
        {
            var live = new Dictionary<(ulong, string), string>();
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
                }
            }
            var tmp = _log + ".tmp";
            File.WriteAllLines(tmp, live.Select(e => Line(e.Key.Item1, e.Key.Item2, e.Value)));
            File.Move(tmp, _log, overwrite: true);
            return [.. live.Select(e => (e.Key.Item1, e.Key.Item2, e.Value))];
        }

        internal byte[]? ReadImage(string hash)
        {
            var path = Path.Combine(_modules, hash + ".dll");
            if (!File.Exists(path) || !_imageHashes.TryGetValue(hash, out var expected))
            {
                return null;
            }
            var image = File.ReadAllBytes(path);
            return Convert.ToHexStringLower(SHA256.HashData(image)) == expected ? image : null;
        }

        internal void WriteImage(string hash, byte[] image)
        {
            var path = Path.Combine(_modules, hash + ".dll");
            File.WriteAllBytes(path + ".tmp", image);
            File.Move(path + ".tmp", path, overwrite: true);
            _imageHashes[hash] = Convert.ToHexStringLower(SHA256.HashData(image));
        }

        internal void Append(ulong tenant, string name, string hash) => File.AppendAllLines(_log, [Line(tenant, name, hash)]);

        internal void Remove(ulong tenant, string name) => File.AppendAllLines(_log, [$"-\t{tenant}\t{name}"]);

        private string Line(ulong tenant, string name, string hash) => $"+\t{tenant}\t{name}\t{hash}\t{_imageHashes[hash]}";
    }
}
