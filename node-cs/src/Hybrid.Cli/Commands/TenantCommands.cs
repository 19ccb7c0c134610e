using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Cli.Cluster;
using Hybrid.Cluster;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;

namespace Hybrid.Cli.Commands;

/// <summary>
/// <c>hybrid tenant create NAME</c>, <c>hybrid tenant quota NAME</c> and <c>hybrid tenant list</c>, for one node or for a
/// cluster. One node: the node has
/// no admin operation for tenants (the native protocol reserves none), so this writes the data directory's
/// <c>tenants.log</c> through <see cref="TenantRegistry"/>; run it while the node is stopped, the node reads the registry
/// when it starts. A cluster (<c>--cluster DIR</c> or <c>--metadata LOCATION</c>): the tenant goes into the cluster's
/// metadata with a cluster-wide id (<see cref="ClusterTenants"/>), and running nodes adopt it within moments.
/// </summary>
internal static class TenantCommands
{
    /// <summary>The <c>tenant</c> command with its <c>create</c> subcommand.</summary>
    public static Command Create()
    {
        var name = new Argument<string>("name") { Description = "Tenant name" };
        var secret = new Option<string?>("--secret") { Description = "Secret (UTF-8 text); a random one is generated and printed when absent" };
        var maxBytes = new Option<long>("--max-bytes") { Description = "Memory quota in bytes (0 = none)" };
        var maxOps = new Option<long>("--max-ops") { Description = "Operations per second quota (0 = none)" };
        var extCpu = new Option<double>("--ext-cpu") { Description = "CPU quota of the tenant's extensions, in cores on average (0 = none)" };
        var dataDir = new Option<string>("--data-dir") { Description = "The node's data directory (the node must be stopped)", DefaultValueFactory = _ => "data" };
        var clusterDir = new Option<string?>("--cluster") { Description = "A local cluster's directory (as 'hybrid cluster start --dir'): the tenant is the cluster's, nodes may run" };
        var metadata = new Option<string?>("--metadata") { Description = "A cluster's metadata store: file:DIR or etcd:http://HOST:PORT (nodes may run)" };
        var create = new Command("create", "Create a tenant: in a stopped node's data directory (tenants.log), or in a cluster's metadata");
        create.Arguments.Add(name);
        foreach (Option o in new Option[] { secret, maxBytes, maxOps, extCpu, dataDir, clusterDir, metadata })
            create.Options.Add(o);
        create.SetAction(async (result, cancellationToken) =>
        {
            string text = SecretText(result.GetValue(secret));
            if (text.Length == 0)
            {
                Console.Error.WriteLine("hybrid: a tenant other than 'default' needs a secret (only 'default' may skip AUTH, on a node only this host reaches: loopback, shm, memif)");
                return 2;
            }
            try
            {
                byte[] secretBytes = Encoding.UTF8.GetBytes(text);
                TenantInfo tenant;
                if (ClusterLocation(result, dataDir, clusterDir, metadata) is { } location)
                {
                    await using IMetadataStore store = await OpenClusterAsync(location, cancellationToken);
                    tenant = await new ClusterTenants(store).CreateAsync(result.GetValue(name)!, secretBytes, result.GetValue(maxBytes), result.GetValue(maxOps),
                        result.GetValue(extCpu), cancellationToken);
                }
                else
                {
                    using var held = DataDirectoryLock.Acquire(result.GetValue(dataDir)!);
                    tenant = TenantRegistry.Open(result.GetValue(dataDir)).Create(result.GetValue(name)!, secretBytes, result.GetValue(maxBytes), result.GetValue(maxOps),
                        result.GetValue(extCpu));
                }
                Console.WriteLine($"tenant {tenant.Name} id {tenant.Id} secret {text}");
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException or InvalidDataException or MetadataUnavailableException)
            {
                Console.Error.WriteLine($"hybrid: {e.Message}");
                return 2;
            }
        });
        var quotaName = new Argument<string>("name") { Description = "Tenant name" };
        var quotaBytes = new Option<long?>("--max-bytes") { Description = "Memory quota in bytes (0 = none; absent = unchanged)" };
        var quotaOps = new Option<long?>("--max-ops") { Description = "Operations per second quota (0 = none; absent = unchanged)" };
        var quotaCpu = new Option<double?>("--ext-cpu") { Description = "Extension CPU quota in cores (0 = none; absent = unchanged)" };
        var quota = new Command("quota", "Change a tenant's quotas: in a stopped node's data directory, or in a cluster (nodes apply it within moments)");
        quota.Arguments.Add(quotaName);
        foreach (Option o in new Option[] { quotaBytes, quotaOps, quotaCpu, dataDir, clusterDir, metadata })
            quota.Options.Add(o);
        quota.SetAction(async (result, cancellationToken) =>
        {
            string tenantName = result.GetValue(quotaName)!;
            try
            {
                TenantInfo tenant;
                if (ClusterLocation(result, dataDir, clusterDir, metadata) is { } location)
                {
                    await using IMetadataStore store = await OpenClusterAsync(location, cancellationToken);
                    tenant = await new ClusterTenants(store).SetQuotasAsync(tenantName, result.GetValue(quotaBytes), result.GetValue(quotaOps), result.GetValue(quotaCpu), cancellationToken);
                }
                else
                {
                    using var held = DataDirectoryLock.Acquire(result.GetValue(dataDir)!);
                    TenantRegistry registry = TenantRegistry.Open(result.GetValue(dataDir));
                    if (!registry.TryGet(tenantName, out TenantInfo old))
                        throw new KeyNotFoundException($"no tenant '{tenantName}'");
                    tenant = registry.SetQuotas(tenantName, result.GetValue(quotaBytes) ?? old.MaxBytes, result.GetValue(quotaOps) ?? old.MaxOpsPerSecond, result.GetValue(quotaCpu));
                }
                Console.WriteLine(Describe(tenant));
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException or InvalidDataException or MetadataUnavailableException or KeyNotFoundException)
            {
                Console.Error.WriteLine($"hybrid: {e.Message}");
                return 2;
            }
        });
        var secretName = new Argument<string>("name") { Description = "Tenant name ('default' too, in a node's data directory)" };
        var newSecret = new Option<string?>("--secret") { Description = "The new secret (UTF-8 text); a random one is generated and printed when absent" };
        var rotate = new Command("secret", "Replace a tenant's secret: in a stopped node's data directory, or in a cluster (sessions opened from then on prove the new one)");
        rotate.Arguments.Add(secretName);
        foreach (Option o in new Option[] { newSecret, dataDir, clusterDir, metadata })
            rotate.Options.Add(o);
        rotate.SetAction(async (result, cancellationToken) =>
        {
            string tenantName = result.GetValue(secretName)!;
            string text = SecretText(result.GetValue(newSecret));
            if (text.Length == 0)
            {
                Console.Error.WriteLine("hybrid: a secret cannot be empty");
                return 2;
            }
            try
            {
                byte[] secretBytes = Encoding.UTF8.GetBytes(text);
                if (ClusterLocation(result, dataDir, clusterDir, metadata) is { } location)
                {
                    await using IMetadataStore store = await OpenClusterAsync(location, cancellationToken);
                    await new ClusterTenants(store).SetSecretAsync(tenantName, secretBytes, cancellationToken);
                }
                else
                {
                    // A node whose data directory's default tenant has no secret refuses to listen beyond loopback: this
                    // is how it gets one (the data directory of an embedded node, moved to a network address).
                    using var held = DataDirectoryLock.Acquire(result.GetValue(dataDir)!);
                    TenantRegistry.Open(result.GetValue(dataDir)).SetSecret(tenantName, secretBytes);
                }
                Console.WriteLine($"tenant {tenantName} secret {text}");
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException or InvalidDataException or MetadataUnavailableException or KeyNotFoundException)
            {
                Console.Error.WriteLine($"hybrid: {e.Message}");
                return 2;
            }
        });
        var list = new Command("list", "List tenants (id, name, quotas; never secrets) of a node's data directory or of a cluster");
        foreach (Option o in new Option[] { dataDir, clusterDir, metadata })
            list.Options.Add(o);
        list.SetAction(async (result, cancellationToken) =>
        {
            try
            {
                IReadOnlyList<TenantInfo> tenants;
                if (ClusterLocation(result, dataDir, clusterDir, metadata) is { } location)
                {
                    await using IMetadataStore store = await OpenClusterAsync(location, cancellationToken);
                    (tenants, _) = await new ClusterTenants(store).ListAsync(cancellationToken);
                }
                else
                {
                    tenants = [.. TenantRegistry.Open(result.GetValue(dataDir)).All.OrderBy(t => t.Id)];
                }
                foreach (TenantInfo t in tenants)
                    Console.WriteLine(Describe(t));
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException or InvalidDataException or MetadataUnavailableException)
            {
                Console.Error.WriteLine($"hybrid: {e.Message}");
                return 2;
            }
        });
        var tenant = new Command("tenant", "Manage tenants");
        tenant.Subcommands.Add(create);
        tenant.Subcommands.Add(quota);
        tenant.Subcommands.Add(rotate);
        tenant.Subcommands.Add(list);
        return tenant;
    }

    /// <summary>One line per tenant: id, name, quotas, whether it authenticates (never its secret).</summary>
    private static string Describe(TenantInfo t) => string.Create(CultureInfo.InvariantCulture,
        $"{t.Id}\t{t.Name}\tmax-bytes {t.MaxBytes}\tmax-ops {t.MaxOpsPerSecond}\text-cpu {t.ExtensionCores}\t{(t.RequiresAuth ? "auth" : "no auth")}");

    /// <summary>Opens a cluster's metadata store; refuses one that holds no cluster (a mistyped directory would be created).</summary>
    /// <summary>The secret given, or a random one (16 bytes, hex) that the command prints.</summary>
    private static string SecretText(string? given) => given ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private static async Task<IMetadataStore> OpenClusterAsync(string location, CancellationToken cancellationToken)
    {
        string? directory = location.StartsWith("etcd:", StringComparison.Ordinal) ? null
            : location.StartsWith("file:", StringComparison.Ordinal) ? location["file:".Length..] : location;
        if (directory is not null && !Directory.Exists(directory))
            throw new InvalidOperationException($"no cluster at {location} (start one with 'hybrid cluster start')");
        IMetadataStore store = MetadataStores.Open(location);
        try
        {
            if (await new ClusterMetadata(store).ReadAsync(cancellationToken) is null)
                throw new InvalidOperationException($"no cluster at {location} (start one with 'hybrid cluster start')");
            return store;
        }
        catch
        {
            await store.DisposeAsync();
            throw;
        }
    }

    /// <summary>The cluster metadata store the options name, or null for a node's data directory.</summary>
    private static string? ClusterLocation(ParseResult result, Option<string> dataDir, Option<string?> clusterDir, Option<string?> metadata)
    {
        string? dir = result.GetValue(clusterDir);
        string? location = result.GetValue(metadata);
        if (dir is null && location is null)
            return null;
        if (result.GetResult(dataDir) is { Implicit: false })
            throw new ArgumentException("--data-dir is one node's; --cluster and --metadata are a cluster's: give one of them");
        return LocalCluster.ExistingMetadataSpec(dir ?? ".", location);
    }
}
