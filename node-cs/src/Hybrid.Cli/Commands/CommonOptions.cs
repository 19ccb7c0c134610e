using System.CommandLine;
using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Cluster;

namespace Hybrid.Cli.Commands;

/// <summary>
/// The connection flags every client command shares (--host, --port, --tenant, --secret, --table, and --cluster or
/// --metadata to send each key to its owner in a cluster instead of to one node).
/// </summary>
internal sealed class CommonOptions
{
    public Option<string> Host { get; } = new("--host") { Description = "Node address", DefaultValueFactory = _ => "127.0.0.1" };

    public Option<int> Port { get; } = new("--port") { Description = "Node's native port", DefaultValueFactory = _ => 7100 };

    public Option<string> Tenant { get; } = new("--tenant") { Description = "Tenant name", DefaultValueFactory = _ => "default" };

    public Option<string?> Secret { get; } = new("--secret") { Description = "Tenant secret (UTF-8 text; none for the default tenant on loopback)" };

    public Option<ushort> Table { get; } = new("--table") { Description = "Table number inside the tenant", DefaultValueFactory = _ => (ushort)0 };

    public Option<string?> Cluster { get; } = new("--cluster") { Description = "A local cluster's directory (hybrid cluster start --dir): the request goes to its key's owner, following migrations (--host and --port are not used)" };

    public Option<string?> Metadata { get; } = new("--metadata") { Description = "A cluster's metadata store, file:DIR or etcd:http://HOST:PORT: as --cluster" };

    /// <summary>Adds the options to <paramref name="command"/> (--cluster and --metadata unless it serves one node only).</summary>
    public void AddTo(Command command, bool cluster = true)
    {
        command.Options.Add(Host);
        command.Options.Add(Port);
        command.Options.Add(Tenant);
        command.Options.Add(Secret);
        command.Options.Add(Table);
        if (!cluster)
            return;
        command.Options.Add(Cluster);
        command.Options.Add(Metadata);
    }

    /// <summary>The metadata store of the cluster the flags name (--metadata, else --cluster's), or null for one node.</summary>
    public string? ClusterMetadataSpec(ParseResult result) =>
        result.GetValue(Metadata) is { } spec ? spec
        : result.GetValue(Cluster) is { } dir ? Cli.Cluster.LocalCluster.ExistingMetadataSpec(dir, null)
        : null;

    /// <summary>
    /// A client of the cluster in <paramref name="spec"/>'s metadata store, routing each key to its owner with these
    /// flags' tenant and secret; the store stays open until the client is disposed (the client re-reads the routing).
    /// </summary>
    public static async Task<ClusterConnection> ConnectClusterAsync(string spec, HybridClientOptions template)
    {
        IMetadataStore store = MetadataStores.Open(spec);
        try
        {
            var client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(new ClusterMetadata(store)), template).ConfigureAwait(false);
            // An interactive command says a node is unreachable in seconds, not after the library's 30 s default.
            client.RetryFor = TimeSpan.FromSeconds(10);
            return new ClusterConnection(store, client);
        }
        catch
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The endpoint the flags name (an IP address or a host name resolved now).</summary>
    public EndPoint EndPoint(ParseResult result)
    {
        string host = result.GetValue(Host)!;
        int port = result.GetValue(Port);
        return IPAddress.TryParse(host, out var address) ? new IPEndPoint(address, port) : new DnsEndPoint(host, port);
    }

    /// <summary>The secret's bytes (what the node stores; RESP AUTH takes the same text).</summary>
    public byte[] SecretBytes(ParseResult result) => result.GetValue(Secret) is { } s ? Encoding.UTF8.GetBytes(s) : [];

    /// <summary>Client options for one interactive request.</summary>
    public HybridClientOptions ClientOptions(ParseResult result) => new()
    {
        EndPoint = EndPoint(result),
        Tenant = result.GetValue(Tenant)!,
        Secret = SecretBytes(result),
    };
}
