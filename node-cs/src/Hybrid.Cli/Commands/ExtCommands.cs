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
        install.SetAction((result, _) => WithExtSession(common, result, async session =>
        {
            string text = result.GetValue(example) is { } ex ? ExtensionExamples.Source(ex)
                : result.GetValue(source) switch
                {
                    null => throw new ArgumentException("give a source file or --example"),
                    "-" => await Console.In.ReadToEndAsync().ConfigureAwait(false),
                    var path => await File.ReadAllTextAsync(path).ConfigureAwait(false),
                };
            var r = await session.InstallExtensionAsync(result.GetValue(name)!, text).ConfigureAwait(false);
            foreach (var line in r.Succeeded ? r.Names : r.Errors)
                (r.Succeeded ? Console.Out : Console.Error).WriteLine(line);
            if (!r.Succeeded && r.Errors.Count == 0)
                Console.Error.WriteLine($"({r.Status})");
            return DataCommands.ExitCode(r.Status);
        }));

        var args = new Argument<string?>("args") { Description = "Arguments as UTF-8 text", Arity = ArgumentArity.ZeroOrOne };
        var hex = new Option<string?>("--hex") { Description = "Arguments as hex bytes instead of text (e.g. 0100000000000000)" };
        var output = new Option<string>("--output") { Description = "Print the response as text, hex or int64 (little-endian)", DefaultValueFactory = _ => "text" };
        output.AcceptOnlyFromAmong("text", "hex", "int64");
        var invoke = new Command("invoke", "Invoke an extension and print its response");
        invoke.Arguments.Add(name);
        invoke.Arguments.Add(args);
        invoke.Options.Add(hex);
        invoke.Options.Add(output);
        common.AddTo(invoke);
        invoke.SetAction((result, _) => WithExtSession(common, result, async session =>
        {
            byte[] bytes = result.GetValue(hex) is { } h ? Convert.FromHexString(h) : Encoding.UTF8.GetBytes(result.GetValue(args) ?? "");
            var r = await session.InvokeAsync(result.GetValue(name)!, bytes).ConfigureAwait(false);
            if (r.Succeeded)
                Console.WriteLine(Format(r.Value, result.GetValue(output)!));
            else
                Console.Error.WriteLine($"({r.Status}{(r.Reason != 0 ? $" {(ExtensionStatus)r.Reason}" : "")}) {r.Error}");
            return DataCommands.ExitCode(r.Status);
        }));

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

    private static async Task<int> WithExtSession(CommonOptions common, ParseResult result, Func<HybridSession, Task<int>> action)
    {
        try
        {
            await using var session = await HybridSession.ConnectAsync(common.ClientOptions(result)).ConfigureAwait(false);
            return await action(session).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or System.Net.Sockets.SocketException
            or OperationCanceledException or IOException or ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"hybrid: {e.Message}");
            return 2;
        }
    }
}
