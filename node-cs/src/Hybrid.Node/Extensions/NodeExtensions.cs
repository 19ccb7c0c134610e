using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using Hybrid.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;

namespace Hybrid.Node.Extensions;

/// <summary>
/// The tenant extensions of one node: its <see cref="ExtensionHost"/> (persisted under
/// <c>&lt;data&gt;/extensions</c>, reloaded without compiling at start), the control thread that compiles installs
/// off the workers, and the per-tenant CPU quotas. Created by the node's first worker at start and disposed when the
/// last worker stops; reach it with <see cref="Of"/>.
/// </summary>
/// <remarks>
/// Installs and uninstalls run one at a time, in arrival order, on the control thread: a worker that receives one
/// parks the connection and goes on serving others; the result comes back to that worker's queue and the reply is
/// sent from there. Nothing here is on a request's hot path except <see cref="Host"/>'s lock-free name lookups.
/// </remarks>
public sealed class NodeExtensions : IExtensionInstaller, IDisposable
{
    private static readonly ConditionalWeakTable<HybridNode, ExtensionHostOptions> s_configured = new();
    private static readonly ConditionalWeakTable<HybridNode, NodeExtensions> s_nodes = new();
    private static readonly ConditionalWeakTable<HybridNode, IExtensionCatalog> s_catalogs = new();
    private static readonly Lock s_lock = new();

    private readonly HybridNode _node;
    private readonly BlockingCollection<ControlWork> _work = new();
    private readonly Thread _control;
    private readonly TenantRegistry _tenants;
    private readonly ConcurrentDictionary<uint, double> _appliedCores = new();
    private readonly ConcurrentDictionary<uint, StrongBox<int>> _queuedByTenant = new();
    private int _users;
    private long _stuckReports;

    private NodeExtensions(HybridNode node, ExtensionHostOptions options)
    {
        _node = node;
        Host = new ExtensionHost(options);
        // The tenants' extension CPU quotas are part of their records: applied now and whenever one changes.
        _tenants = node.Tenants;
        _tenants.Changed += ApplyCpuQuota;
        ImportLegacyQuotas(Path.Combine(options.Directory ?? node.Options.DataDirectory, "cpu-quotas.tsv"));
        foreach (TenantInfo tenant in _tenants.All)
            ApplyCpuQuota(tenant);
        Host.WorkerStuck += _ => Interlocked.Increment(ref _stuckReports);
        if (!options.BackgroundSteps)
            BackgroundStepsRefusal = "turned off (ExtensionHostOptions.BackgroundSteps)";
        else if (node.Options.Cpus.Count > 0)
            BackgroundStepsRefusal = "not needed: the workers are pinned to their own CPUs (HybridNodeOptions.Cpus)";
        else if (!Hybrid.Transport.ThreadScheduling.CanUseBackground(out string? reason))
            BackgroundStepsRefusal = reason;
        _control = new Thread(ControlLoop) { IsBackground = true, Name = "hybrid-ext-control" };
        _control.Start();
    }

    /// <summary>
    /// An install or uninstall: a client's (answered through <paramref name="Origin"/>, and recorded in
    /// <see cref="Catalog"/>), or the catalog's own (<paramref name="Done"/> completes; nothing is recorded).
    /// </summary>
    private sealed record ControlWork(uint Tenant, string Name, string? Source, long Cookie, WorkerExtensions? Origin,
        TaskCompletionSource<InstallResult>? Done = null, long Revision = 0);

    /// <summary>
    /// The catalog revision of this node's own newest recorded change of each extension (control thread only): a catalog
    /// entry older than it is the echo of an earlier change of this node's and is not applied (install v1 then v2 here:
    /// v1's echo must not bring v1 back). Checked when the work runs, in order with the clients' changes.
    /// </summary>
    private readonly Dictionary<(uint Tenant, string Name), long> _recordedRevisions = [];

    /// <summary>
    /// Where a client's successful install or uninstall is recorded for the other nodes (a cluster node's catalog in the
    /// cluster metadata); null on a node outside a cluster. Called on the control thread, before the client's reply:
    /// when it throws, the change stays on this node and the client is told it was not recorded.
    /// </summary>
    public IExtensionCatalog? Catalog { get; set; }

    /// <summary>The node's extension host: install, resolve, schedulers, quotas, watchdog.</summary>
    public ExtensionHost Host { get; }

    /// <summary>
    /// Null when the workers run long invocations' later steps at background CPU priority
    /// (<see cref="ExtensionHostOptions.BackgroundSteps"/>); otherwise why they run them at normal priority.
    /// </summary>
    public string? BackgroundStepsRefusal { get; }

    /// <summary>How often the watchdog found a worker stuck inside one extension step (it quarantined the extension).</summary>
    public long StuckReports => Interlocked.Read(ref _stuckReports);

    /// <summary>
    /// Sets the extension host options a node will use (budgets, slice, directory). Call before
    /// <see cref="HybridNode.StartAsync"/>; without it the defaults apply with <c>&lt;data&gt;/extensions</c>.
    /// </summary>
    public static void Configure(HybridNode node, ExtensionHostOptions options)
    {
        lock (s_lock)
        {
            s_configured.AddOrUpdate(node, options);
        }
    }

    /// <summary>
    /// Sets the catalog a node's extensions will record their clients' changes in (<see cref="Catalog"/>) from the
    /// node's start on. Call before <see cref="HybridNode.StartAsync"/>.
    /// </summary>
    public static void UseCatalog(HybridNode node, IExtensionCatalog catalog)
    {
        lock (s_lock)
        {
            s_catalogs.AddOrUpdate(node, catalog);
        }
    }

    /// <summary>The extensions of a started node.</summary>
    public static NodeExtensions Of(HybridNode node) => Find(node) ?? throw new InvalidOperationException("node not started");

    /// <summary>The extensions of a started node; null when it has none (no worker started, or all stopped).</summary>
    internal static NodeExtensions? Find(HybridNode node)
    {
        lock (s_lock)
        {
            return s_nodes.TryGetValue(node, out var extensions) ? extensions : null;
        }
    }

    /// <summary>Called by each worker as it starts: the first creates the node's extensions (reloading persisted installs).</summary>
    internal static NodeExtensions Acquire(HybridNode node)
    {
        lock (s_lock)
        {
            if (!s_nodes.TryGetValue(node, out var extensions))
            {
                var options = s_configured.TryGetValue(node, out var configured) ? configured : new ExtensionHostOptions();
                options = options with
                {
                    Directory = options.Directory ?? Path.Combine(node.Options.DataDirectory, "extensions"),
                    SyncDirectory = options.SyncDirectory ?? (d => Transport.FileDurability.TrySyncDirectory(d)),
                };
                extensions = new NodeExtensions(node, options);
                if (s_catalogs.TryGetValue(node, out var catalog))
                    extensions.Catalog = catalog;
                s_nodes.Add(node, extensions);
            }
            extensions._users++;
            return extensions;
        }
    }

    /// <summary>Called by each worker as it stops: the last one disposes the node's extensions.</summary>
    internal void Release()
    {
        lock (s_lock)
        {
            if (--_users > 0)
                return;
            s_nodes.Remove(_node);
        }
        Dispose();
    }

    /// <summary>
    /// Limits <paramref name="tenant"/>'s extensions to <paramref name="cores"/> CPU cores on average over all workers
    /// (≤ 0 removes the limit): a change of this node's record of the tenant (<see cref="TenantInfo.ExtensionCores"/>),
    /// durable, as <c>hybrid tenant quota NAME --ext-cpu CORES --data-dir DIR</c> makes it. On a cluster node the
    /// cluster's record wins at its next change or the node's next start (set it there with <c>--cluster</c>).
    /// Invocations over it answer QuotaExceeded. Throws <see cref="KeyNotFoundException"/> for an unknown tenant.
    /// </summary>
    public void SetCpuQuota(uint tenant, double cores) => _tenants.SetExtensionCores(tenant, cores);

    /// <summary>The tenant's CPU quota in cores (0 = unlimited).</summary>
    public double CpuQuota(uint tenant) => _tenants.TryGet(tenant, out TenantInfo info) ? info.ExtensionCores : 0;

    /// <summary>Applies a tenant's CPU quota when it changed (setting it refills the tenant's tokens: not on every change).</summary>
    private void ApplyCpuQuota(TenantInfo tenant)
    {
        double applied = _appliedCores.GetValueOrDefault(tenant.Id);
        if (tenant.ExtensionCores.Equals(applied))
            return;
        _appliedCores[tenant.Id] = tenant.ExtensionCores;
        Host.SetCpuQuota(tenant.Id, tenant.ExtensionCores);
    }

    /// <summary>
    /// Earlier versions kept the quotas in <c>cpu-quotas.tsv</c>: moved into the records of the tenants this node knows,
    /// once; the file is kept as <c>cpu-quotas.tsv.imported</c>. On a cluster node the cluster's records replace these
    /// during the same start (set the quotas there with <c>hybrid tenant quota --cluster</c>).
    /// </summary>
    private void ImportLegacyQuotas(string file)
    {
        if (!File.Exists(file))
            return;
        foreach (var line in File.ReadLines(file))
        {
            var f = line.Split('\t');
            if (f.Length == 2 && uint.TryParse(f[0], out var tenant) && double.TryParse(f[1], System.Globalization.CultureInfo.InvariantCulture, out var cores)
                && _tenants.TryGet(tenant, out TenantInfo info) && info.ExtensionCores == 0)
            {
                _tenants.SetExtensionCores(tenant, cores);
            }
        }
        File.Move(file, file + ".imported", overwrite: true);
    }

    /// <summary>
    /// Most installs and uninstalls of one tenant queued for the control thread (or running there) at a time; one more
    /// is answered QuotaExceeded. Installs of a node run one at a time and a compile may take up to
    /// <see cref="ExtensionHostOptions.CompileTimeout"/>, so without it one tenant sending many installs at once held
    /// every other tenant's installs behind them.
    /// </summary>
    public const int MaxQueuedPerTenant = 4;

    /// <summary>Queues an install (<paramref name="source"/> set) or an uninstall for the control thread.</summary>
    internal void Submit(uint tenant, string name, string? source, long cookie, WorkerExtensions origin)
    {
        StrongBox<int> queued = _queuedByTenant.GetOrAdd(tenant, static _ => new StrongBox<int>());
        if (Interlocked.Increment(ref queued.Value) > MaxQueuedPerTenant)
        {
            Interlocked.Decrement(ref queued.Value);
            origin.Post(cookie, Status.QuotaExceeded, 0, Encoding.UTF8.GetBytes(
                $"{MaxQueuedPerTenant} installs or removals of this tenant wait for this node's compiler already: send it again once one is answered"));
            return;
        }
        try
        {
            _work.Add(new ControlWork(tenant, name, source, cookie, origin));
        }
        catch (InvalidOperationException)
        {
            Interlocked.Decrement(ref queued.Value);
            origin.Post(cookie, Status.Retry, 0, "node is stopping"u8.ToArray());
        }
    }

    /// <summary>
    /// Installs (<paramref name="source"/> set) or uninstalls what the cluster's catalog entry of
    /// <paramref name="revision"/> says, in order with clients' installs, without recording it again (see
    /// <see cref="IExtensionInstaller.ApplyAsync"/>). Fails (not Success: "node is stopping") when the node no longer
    /// takes work.
    /// </summary>
    public Task<InstallResult> ApplyAsync(uint tenant, string name, string? source, long revision)
    {
        var done = new TaskCompletionSource<InstallResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _work.Add(new ControlWork(tenant, name, source, 0, null, done, revision));
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            done.TrySetResult(new InstallResult(false, ["node is stopping"], [], false));
        }
        return done.Task;
    }

    private void ControlLoop()
    {
        foreach (var work in _work.GetConsumingEnumerable())
        {
            // Any failure answers the request: the control thread must outlive every install.
            if (work.Done is { } done)
            {
                try
                {
                    done.TrySetResult(ApplyFromCatalog(work));
                }
                catch (Exception e)
                {
                    done.TrySetResult(new InstallResult(false, [$"{e.GetType().Name}: {e.Message}"], [], false));
                }
                continue;
            }
            (Status Status, ulong Version, byte[] Value) answer;
            try
            {
                answer = RunClientWork(work);
            }
            catch (Exception e)
            {
                answer = (Status.InternalError, 0, Encoding.UTF8.GetBytes($"{e.GetType().Name}: {e.Message}"));
            }
            // Once, before the reply: a client that sends its next install when this one is answered finds its slot free.
            Interlocked.Decrement(ref _queuedByTenant[work.Tenant].Value);
            try
            {
                work.Origin!.Post(work.Cookie, answer.Status, answer.Version, answer.Value);
            }
            catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
            {
                // The worker is gone (the node stops): nobody is left to answer.
            }
        }
    }

    /// <summary>A client's install or uninstall, recorded in the catalog: the reply's status, version and value.</summary>
    private (Status Status, ulong Version, byte[] Value) RunClientWork(ControlWork work)
    {
        if (work.Source is null)
        {
            // Recorded whether or not this node had it: a removal sent again after a Retry (or to a node that never had
            // the extension) still clears the catalog, so the other nodes drop it too.
            bool removed = Host.Uninstall(work.Tenant, work.Name);
            var (catalogHad, why) = Recorded(work, removed);
            return why is not null ? (Status.Retry, 0UL, why) : (removed || catalogHad ? Status.Ok : Status.NotFound, 0UL, []);
        }
        var result = Host.Install(work.Tenant, work.Name, work.Source);
        if (!result.Success)
            return (Status.InstallRejected, 0, Encoding.UTF8.GetBytes(string.Join('\n', result.Errors)));
        if (Recorded(work, changedHere: true).Why is { } notRecorded)
            return (Status.Retry, 0, notRecorded);
        return (Status.Ok, result.Compiled ? 1UL : 0UL, Encoding.UTF8.GetBytes(string.Join('\n', result.Names)));
    }

    private InstallResult ApplyFromCatalog(ControlWork work)
    {
        if (_recordedRevisions.TryGetValue((work.Tenant, work.Name), out long newest) && work.Revision < newest)
            return new InstallResult(true, [], [], false);
        if (work.Source is null)
            return new InstallResult(Host.Uninstall(work.Tenant, work.Name), [], [], false);
        if (Host.IsInstalled(work.Tenant, work.Name, work.Source))
            return new InstallResult(true, [], [], false);
        return Host.Install(work.Tenant, work.Name, work.Source);
    }

    /// <summary>
    /// Records a client's change in <see cref="Catalog"/>: whether the catalog held the name before, and null when
    /// recorded (or there is no catalog), else why not.
    /// </summary>
    private (bool Had, byte[]? Why) Recorded(ControlWork work, bool changedHere)
    {
        if (Catalog is not { } catalog)
            return (false, null);
        try
        {
            CatalogRecord recorded = catalog.Record(work.Tenant, work.Name, work.Source);
            if (recorded.Revision > _recordedRevisions.GetValueOrDefault((work.Tenant, work.Name)))
                _recordedRevisions[(work.Tenant, work.Name)] = recorded.Revision;
            return (recorded.Held, null);
        }
        catch (Exception e)
        {
            string change = !changedHere ? "not" : work.Source is null ? "removed on this node, but not" : "installed on this node, but not";
            return (false, Encoding.UTF8.GetBytes($"{change} recorded for the cluster's other nodes ({e.Message}): send it again"));
        }
    }

    /// <summary>Stops the control thread (queued work answers Retry) and the host's watchdog.</summary>
    public void Dispose()
    {
        _tenants.Changed -= ApplyCpuQuota;
        _work.CompleteAdding();
        _control.Join();
        _work.Dispose();
        Host.Dispose();
    }
}
