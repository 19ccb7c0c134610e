using System.Net;
using Hybrid.Node.Cluster;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;

namespace Hybrid.Cluster;

/// <summary>
/// A cluster node as a process runs it: a <see cref="ClusterMember"/> over the durable metadata, registered under a
/// lease with its native, RESP and peer endpoints (so clients route to it and other nodes pull from it), writing its
/// protocol trace to a file if asked. <c>hybrid cluster node</c> is this class.
/// </summary>
public sealed class ClusterNodeHost : IAsyncDisposable
{
    private readonly NodeRegistration _registration;
    private readonly StreamWriter? _traceFile;
    private readonly CancellationTokenSource _stopping;
    private readonly Task _following;

    private ClusterNodeHost(ClusterMember member, DurableClusterMetadata metadata, NodeRegistration registration, StreamWriter? traceFile,
        CancellationTokenSource stopping, Task following)
    {
        Member = member;
        Metadata = metadata;
        _registration = registration;
        _traceFile = traceFile;
        _stopping = stopping;
        _following = following;
    }

    /// <summary>The running member.</summary>
    public ClusterMember Member { get; }

    /// <summary>The cluster's metadata.</summary>
    public DurableClusterMetadata Metadata { get; }

    /// <summary>How long a node's registration outlives its process (kill -9) before others see it gone.</summary>
    public static TimeSpan LeaseTtl { get; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Starts node <paramref name="name"/> of the cluster in <paramref name="store"/> under <paramref name="root"/>:
    /// its workers are the cluster's cores, its peer port is <paramref name="peerPort"/> (0 = ephemeral), and its
    /// trace goes to <paramref name="tracePath"/> (appended; null = off). Before it registers (so before any client
    /// routes to it), the node adopts the cluster's tenants (<see cref="ClusterTenants.Adopt"/>; it refuses to start when
    /// its data directory disagrees with them) and installs the extensions of the cluster's catalog
    /// (<see cref="ClusterExtensions"/>); from then on it follows both, and records its own clients' installs and
    /// uninstalls in the catalog, until it stops.
    /// </summary>
    public static async Task<ClusterNodeHost> StartAsync(IMetadataStore store, string root, string name, HybridNodeOptions options,
        int peerPort = 0, string? tracePath = null, CancellationToken cancellationToken = default)
    {
        var metadata = new DurableClusterMetadata(store, root);
        DecisionLog log = metadata.Log;
        if (!log.Nodes.Contains(name))
            throw new ArgumentException($"the cluster has no node {name} (nodes: {string.Join(", ", log.Nodes)})");
        byte[] peerKey = await metadata.PeerKeyAsync(cancellationToken).ConfigureAwait(false);
        Action<string> report = text => Console.Error.WriteLine($"hybrid: node {name}: {text}");
        if (tracePath is not null)
        {
            // Decisions this node published but was killed before tracing go into its trace before it traces again.
            TraceRepair.Result repair = TraceRepair.Repair(tracePath, log, name);
            if (repair.Refused is not null)
                report($"trace {tracePath}: {repair.Refused}");
            else if (repair.Appended > 0 || repair.TornBytes > 0)
                report($"trace {tracePath}: appended {repair.Appended} decision line(s) published before the restart but not traced" +
                    (repair.TornBytes > 0 ? $", removed a last line cut off by the stop ({repair.TornBytes} bytes)" : ""));
        }
        StreamWriter? traceFile = tracePath is null ? null : TraceRepair.Open(tracePath, log);
        var trace = traceFile is null ? MigrationTrace.Off : new MigrationTrace(traceFile);
        // Decisions wait out a metadata store that is briefly away (etcd restarting); the data path never waits for it.
        var patient = new PatientClusterMetadata(metadata, e => e is MetadataUnavailableException, log.Nodes, log.Cores, [.. metadata.Ranges.Keys])
        {
            Report = report,
        };
        var member = new ClusterMember(name, log.Cores, options, patient, metadata.Ranges, n => PeerOf(metadata, n, report),
            new IPEndPoint(options.BindAddress, peerPort), peerKey, trace)
        {
            RespEndpoints = async ct => (await metadata.Typed.ListLiveNodesAsync(ct).ConfigureAwait(false))
                .Where(n => n.RespEndpoint is not null).ToDictionary(n => n.Id, n => n.RespEndpoint!),
        };
        var stopping = new CancellationTokenSource();
        // The node's clients' installs are recorded in the catalog from its first request on.
        var catalog = new ClusterExtensions(store, root);
        NodeExtensions.UseCatalog(member.Node, catalog);
        try
        {
            await member.StartAsync(cancellationToken).ConfigureAwait(false);
            var tenants = new ClusterTenants(store, root);
            (IReadOnlyList<Hybrid.Node.Tenants.TenantInfo> known, long revision) = await tenants.ListAsync(cancellationToken).ConfigureAwait(false);
            ClusterTenants.Adopt(member.Node.Tenants, known);
            // The catalog's extensions are applied before the node registers, so every node that can be routed to has
            // them (and none removed while it was down).
            NodeExtensions extensions = NodeExtensions.Of(member.Node);
            (IReadOnlyList<ClusterExtensions.Entry> entries, long catalogRevision) = await catalog.ListAsync(cancellationToken).ConfigureAwait(false);
            await ClusterExtensions.ApplyAllAsync(extensions, entries, report).ConfigureAwait(false);
            Task followingTenants = tenants.FollowAsync(member.Node.Tenants, revision, e => report("a tenant change was not applied: " + e.Message), stopping.Token);
            Task followingCatalog = catalog.FollowAsync(extensions, catalogRevision, report, stopping.Token);
            // A follower that fails stops following: say so when it happens, not only at the node's stop.
            foreach ((Task task, string what) in new[] { (followingTenants, "tenants"), (followingCatalog, "extension catalog") })
            {
                _ = task.ContinueWith(t => report($"stopped following the cluster's {what}: {t.Exception?.GetBaseException().Message}"),
                    CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
            Task following = Task.WhenAll(followingTenants, followingCatalog);
            string host = options.BindAddress.ToString();
            var info = new NodeInfo(name, $"{host}:{member.Node.NativePort}",
                options.RespPort >= 0 ? $"{host}:{member.Node.PortOf("resp")}" : null,
                $"{host}:{member.PeerEndPoint.Port}", Environment.ProcessId);
            NodeRegistration registration;
            try
            {
                registration = await metadata.Typed.RegisterNodeAsync(info, LeaseTtl, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await StopFollowingAsync(stopping, following).ConfigureAwait(false);
                throw;
            }
            return new ClusterNodeHost(member, metadata, registration, traceFile, stopping, following);
        }
        catch
        {
            stopping.Dispose();
            await member.DisposeAsync().ConfigureAwait(false);
            traceFile?.Dispose();
            throw;
        }
    }

    private static EndPoint PeerOf(DurableClusterMetadata metadata, string node, Action<string> report)
    {
        IReadOnlyList<NodeInfo> live;
        try
        {
            live = metadata.Typed.ListLiveNodesAsync().GetAwaiter().GetResult();
        }
        catch (MetadataUnavailableException e)
        {
            // The caller dials where the peer was last found, or retries: say why a migration step may wait.
            report($"finding node {node}'s peer port waits for the metadata store: {e.Message}");
            throw;
        }
        NodeInfo info = live.FirstOrDefault(n => n.Id == node)
            ?? throw new InvalidOperationException($"node {node} is not running (no live registration)");
        return IPEndPoint.Parse(info.PeerEndpoint ?? throw new InvalidOperationException($"node {node} has no peer port"));
    }

    /// <summary>Leaves the cluster (the registration is revoked) and stops the node.</summary>
    public async ValueTask DisposeAsync()
    {
        await _registration.DisposeAsync().ConfigureAwait(false);
        await StopFollowingAsync(_stopping, _following).ConfigureAwait(false);
        _stopping.Dispose();
        await Member.DisposeAsync().ConfigureAwait(false);
        _traceFile?.Dispose();
    }

    private static async Task StopFollowingAsync(CancellationTokenSource stopping, Task following)
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await following.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stopped, as asked
        }
        catch (Exception)
        {
            // already reported when it failed; the node's stop goes on
        }
    }
}
