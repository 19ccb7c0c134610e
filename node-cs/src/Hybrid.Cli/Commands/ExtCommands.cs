using System.Buffers.Binary;
using System.CommandLine;
using System.Text;
using Hybrid.Cli.Bench;
using Hybrid.Client;
using Hybrid.Extensions;

namespace Hybrid.Cli.Commands;

/// <summary>
/// <c>hybrid ext install|invoke|list|remove|bench</c>: tenant extensions over the native protocol. Exit codes as the data
/// commands: 0 Ok, 1 NotFound, 2 anything else (rejected install, failed invocation, connection error).
/// </summary>
internal static partial class HybridCli
{
    static partial void AddExtensionCommands(RootCommand root)
    {
        var ext = new Command("ext", "Tenant extensions: C# source compiled and run inside the node, next to the data");
        var common = new CommonOptions();
        var name = new Argument<string>("name") { Description = "Install name (install/remove) or invocation name (invoke: name or name.entry)" };

        var source = new Argument<string?>("file") { Description = "C# source file ('-' = stdin)", Arity = ArgumentArity.ZeroOrOne };
        var example = new Option<string?>("--example") { Description = $"Install a shipped example instead of a file: {string.Join(", ", ExtensionExamples.Names)}" };
        var install = new Command("install", "Compile and install an extension for the tenant (prints its invocation names)");
        install.Arguments.Add(name);
        install.Arguments.Add(source);
        install.Options.Add(example);
        common.AddTo(install);
        install.SetAction((result, _) => Guarded(async () =>
        {
            string text = result.GetValue(example) is { } ex ? ExtensionExamples.Source(ex)
                : result.GetValue(source) switch
                {
                    null => throw new ArgumentException("give a source file or --example"),
                    "-" => await Console.In.ReadToEndAsync().ConfigureAwait(false),
                    var path => await File.ReadAllTextAsync(path).ConfigureAwait(false),
                };
            if (!InCluster(common, result))
            {
                return await WithExtSession(common, result, async session =>
                    PrintInstall(await session.InstallExtensionAsync(result.GetValue(name)!, text).ConfigureAwait(false)));
            }
            // Every running node compiles it before the command returns (the catalog alone brings it to the others
            // a compile later, so an invocation right after could find it missing there).
            return await WithCluster(common, result, async cluster =>
            {
                var results = await cluster.Client.InstallExtensionAsync(result.GetValue(name)!, text).ConfigureAwait(false);
                if (results.Count == 0)
                    throw new HybridConnectionException("no node of the cluster is running");
                // Names once; each distinct error once (a compile error is every node's; an unreachable node's names it).
                foreach (string line in results.Values.FirstOrDefault(r => r.Succeeded)?.Names ?? [])
                    Console.WriteLine(line);
                foreach (string line in results.Values.Where(r => !r.Succeeded).SelectMany(r => r.Errors.Count > 0 ? r.Errors : [$"({r.Status})"]).Distinct())
                    Console.Error.WriteLine(line);
                return results.Values.Max(r => DataCommands.ExitCode(r.Status));
            });
        }));

        var args = new Argument<string?>("args") { Description = "Arguments as UTF-8 text", Arity = ArgumentArity.ZeroOrOne };
        var hex = new Option<string?>("--hex") { Description = "Arguments as hex bytes instead of text (e.g. 0100000000000000)" };
        var output = new Option<string>("--output") { Description = "Print the response as text, hex or int64 (little-endian)", DefaultValueFactory = _ => "text" };
        output.AcceptOnlyFromAmong("text", "hex", "int64");
        var routingKey = new Option<string?>("--key") { Description = "With --cluster or --metadata: the key (or {tag}) of the data the extension works on; the call goes to its owner" };
        var invoke = new Command("invoke", "Invoke an extension and print its response");
        invoke.Arguments.Add(name);
        invoke.Arguments.Add(args);
        invoke.Options.Add(hex);
        invoke.Options.Add(output);
        invoke.Options.Add(routingKey);
        common.AddTo(invoke);
        invoke.SetAction(async (result, _) =>
        {
            byte[] bytes;
            try
            {
                bytes = result.GetValue(hex) is { } h ? Convert.FromHexString(h) : Encoding.UTF8.GetBytes(result.GetValue(args) ?? "");
            }
            catch (FormatException e)
            {
                Console.Error.WriteLine($"hybrid: --hex: {e.Message}");
                return 2;
            }
            int Print(ExtensionResult r)
            {
                if (r.Succeeded)
                    Console.WriteLine(Format(r.Value, result.GetValue(output)!));
                else
                    Console.Error.WriteLine($"({r.Status}{(r.Reason != 0 ? $" {(ExtensionStatus)r.Reason}" : "")}) {r.Error}");
                return DataCommands.ExitCode(r.Status);
            }
            if (!InCluster(common, result))
            {
                return await WithExtSession(common, result, async session =>
                    Print(await session.InvokeAsync(result.GetValue(name)!, bytes).ConfigureAwait(false)));
            }
            if (result.GetValue(routingKey) is not { } key)
            {
                Console.Error.WriteLine("hybrid: in a cluster, give --key: the key (or {tag}) of the data the extension works on, to find the node that owns it");
                return 2;
            }
            return await WithCluster(common, result, async cluster =>
                Print(await cluster.Client.InvokeAsync(result.GetValue(name)!, Encoding.UTF8.GetBytes(key), bytes).ConfigureAwait(false)));
        });

        var list = new Command("list", "List the tenant's invocation names");
        common.AddTo(list);
        list.SetAction((result, _) => WithExtSession(common, result, async session =>
        {
            foreach (var n in await session.ListExtensionsAsync().ConfigureAwait(false))
                Console.WriteLine(n);
            return 0;
        }));

        var remove = new Command("remove", "Uninstall an extension of the tenant");
        remove.Arguments.Add(name);
        common.AddTo(remove);
        remove.SetAction((result, _) => WithExtSession(common, result, async session =>
        {
            bool removed = await session.UninstallExtensionAsync(result.GetValue(name)!).ConfigureAwait(false);
            Console.WriteLine(removed ? "OK" : "(NotFound)");
            return removed ? 0 : 1;
        }));

        ext.Subcommands.Add(install);
        ext.Subcommands.Add(invoke);
        ext.Subcommands.Add(list);
        ext.Subcommands.Add(remove);
        ext.Subcommands.Add(ExtBench.CreateCommand());
        var compiler = new Command("compiler", "Serve extension compiles over stdin/stdout for a node (started by the node itself)") { Hidden = true };
        compiler.SetAction(_ => CompilerServer.Run(Console.OpenStandardInput(), Console.OpenStandardOutput()));
        ext.Subcommands.Add(compiler);
        root.Subcommands.Add(ext);
    }

    /// <summary>
    /// How a node started by this executable runs its extension compiler out of process (<c>hybrid ext compiler</c>):
    /// set it as <see cref="ExtensionHostOptions.CompilerProcess"/> so the node never loads Roslyn.
    /// </summary>
    internal static System.Diagnostics.ProcessStartInfo ExtensionCompilerProcess()
    {
        string self = Environment.ProcessPath ?? "dotnet";
        var start = new System.Diagnostics.ProcessStartInfo(self);
        // Under the muxer ('dotnet hybrid.dll') the assembly comes first; the apphost is the program itself.
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            start.ArgumentList.Add(typeof(HybridCli).Assembly.Location);
        start.ArgumentList.Add("ext");
        start.ArgumentList.Add("compiler");
        return start;
    }

    /// <summary>Renders a response: UTF-8 text, hex, or a little-endian int64 (the aggregate examples answer one).</summary>
    internal static string Format(byte[] value, string output) => output switch
    {
        "hex" => Convert.ToHexStringLower(value),
        "int64" when value.Length >= 8 => BinaryPrimitives.ReadInt64LittleEndian(value).ToString(System.Globalization.CultureInfo.InvariantCulture),
        "int64" => $"(response of {value.Length} bytes is not an int64)",
        _ => Encoding.UTF8.GetString(value),
    };

    /// <summary>Prints an install's invocation names, or its errors.</summary>
    private static int PrintInstall(ExtensionInstallResult r)
    {
        foreach (string line in r.Succeeded ? r.Names : [])
            Console.WriteLine(line);
        foreach (string line in r.Succeeded ? [] : r.Errors.Count > 0 ? r.Errors : [$"({r.Status})"])
            Console.Error.WriteLine(line);
        return DataCommands.ExitCode(r.Status);
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a session to the node the flags name or, in a cluster, to one of its running
    /// nodes (an install or removal there reaches every node through the cluster's extension catalog).
    /// </summary>
    private static Task<int> WithExtSession(CommonOptions common, ParseResult result, Func<HybridSession, Task<int>> action) =>
        !InCluster(common, result)
            ? Guarded(async () =>
            {
                await using var session = await HybridSession.ConnectAsync(common.ClientOptions(result)).ConfigureAwait(false);
                return await action(session).ConfigureAwait(false);
            })
            : WithCluster(common, result, async cluster =>
            {
                var node = cluster.Client.Routing.EndPoints.OrderBy(e => e.Key, StringComparer.Ordinal).FirstOrDefault();
                if (node.Value is null)
                    throw new HybridConnectionException("no node of the cluster is running");
                await using var session = await HybridSession.ConnectAsync(common.ClientOptions(result) with { EndPoint = node.Value }).ConfigureAwait(false);
                return await action(session).ConfigureAwait(false);
            });

    /// <summary>Whether the flags name a cluster (--cluster or --metadata); whether that cluster exists is found when it is used.</summary>
    private static bool InCluster(CommonOptions common, ParseResult result) => result.GetValue(common.Cluster) is not null || result.GetValue(common.Metadata) is not null;

    private static Task<int> WithCluster(CommonOptions common, ParseResult result, Func<ClusterConnection, Task<int>> action) => Guarded(async () =>
    {
        await using ClusterConnection cluster = await CommonOptions.ConnectClusterAsync(common.ClusterMetadataSpec(result)!, common.ClientOptions(result)).ConfigureAwait(false);
        return await action(cluster).ConfigureAwait(false);
    });

    private static async Task<int> Guarded(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or System.Net.Sockets.SocketException
            or OperationCanceledException or IOException or ArgumentException or FormatException
            or Hybrid.Cluster.MetadataUnavailableException or InvalidOperationException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"hybrid: {e.Message}");
            return 2;
        }
    }
}
