using System.CommandLine;
using System.Net;
using System.Text;
using Hybrid.Client;

namespace Hybrid.Cli.Commands;

/// <summary>The connection flags every client command shares (--host, --port, --tenant, --secret, --table).</summary>
internal sealed class CommonOptions
{
    public Option<string> Host { get; } = new("--host") { Description = "Node address", DefaultValueFactory = _ => "127.0.0.1" };

    public Option<int> Port { get; } = new("--port") { Description = "Node's native port", DefaultValueFactory = _ => 7100 };

    public Option<string> Tenant { get; } = new("--tenant") { Description = "Tenant name", DefaultValueFactory = _ => "default" };

    public Option<string?> Secret { get; } = new("--secret") { Description = "Tenant secret (UTF-8 text; none for the default tenant on loopback)" };

    public Option<ushort> Table { get; } = new("--table") { Description = "Table number inside the tenant", DefaultValueFactory = _ => (ushort)0 };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Host);
        command.Options.Add(Port);
        command.Options.Add(Tenant);
        command.Options.Add(Secret);
        command.Options.Add(Table);
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
