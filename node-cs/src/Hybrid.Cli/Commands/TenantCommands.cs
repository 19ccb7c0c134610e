using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Node.Tenants;

namespace Hybrid.Cli.Commands;

/// <summary>
/// <c>hybrid tenant create NAME</c>. The node has no admin operation for tenants (the native protocol reserves none),
/// so this writes the data directory's <c>tenants.log</c> through <see cref="TenantRegistry"/>: run it while the node
/// is stopped; the node reads the registry when it starts.
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
        var dataDir = new Option<string>("--data-dir") { Description = "The node's data directory (the node must be stopped)", DefaultValueFactory = _ => "data" };
        var create = new Command("create", "Create a tenant in a stopped node's data directory (tenants.log)");
        create.Arguments.Add(name);
        create.Options.Add(secret);
        create.Options.Add(maxBytes);
        create.Options.Add(maxOps);
        create.Options.Add(dataDir);
        create.SetAction(result =>
        {
            string text = result.GetValue(secret) ?? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            if (text.Length == 0)
            {
                Console.Error.WriteLine("hybrid: a tenant other than 'default' needs a secret (only 'default' may skip AUTH, on a node only this host reaches: loopback, shm, memif)");
                return 2;
            }
            try
            {
                var registry = TenantRegistry.Open(result.GetValue(dataDir));
                var tenant = registry.Create(result.GetValue(name)!, Encoding.UTF8.GetBytes(text), result.GetValue(maxBytes), result.GetValue(maxOps));
                Console.WriteLine($"tenant {tenant.Name} id {tenant.Id} secret {text}");
                return 0;
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or IOException)
            {
                Console.Error.WriteLine($"hybrid: {e.Message}");
                return 2;
            }
        });
        var tenant = new Command("tenant", "Manage tenants");
        tenant.Subcommands.Add(create);
        return tenant;
    }
}
