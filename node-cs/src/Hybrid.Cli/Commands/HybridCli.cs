using System.CommandLine;

namespace Hybrid.Cli.Commands;

/// <summary>The <c>hybrid</c> command tree (System.CommandLine): server, get/put/del, tenant, bench, trace check.</summary>
internal static partial class HybridCli
{
    /// <summary>
    /// The root command. <paramref name="runServer"/> runs <c>hybrid server</c> with its raw arguments (Program owns its
    /// argument parsing; scripts and tests depend on it, so it is passed through untouched).
    /// </summary>
    public static RootCommand Build(Func<string[], int> runServer)
    {
        var root = new RootCommand("HybridKV: a multi-tenant key-value store");
        var server = new Command("server",
            "Run one node until SIGTERM/SIGINT: [--data-dir D] [--bind A] [--port P] [--resp-port P] [--metrics-port P] [--workers N] " +
            "[--durability memory|async|sync] [--memory-budget BYTES] [--checkpoint-interval SECONDS] [--transport shm|memif|shm:PATH|memif:SOCK[@SVC]|af_packet:IFACE[@SVC]|tcp:H:P]...")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        server.SetAction(result => runServer([.. result.UnmatchedTokens]));
        root.Subcommands.Add(server);
        foreach (var command in DataCommands.Create())
            root.Subcommands.Add(command);
        root.Subcommands.Add(TenantCommands.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(TraceCommand.Create());
        AddExtensionCommands(root);
        AddClusterCommands(root);
        return root;
    }

    /// <summary>Adds <c>hybrid ext ...</c> (implemented next to the extension commands).</summary>
    static partial void AddExtensionCommands(RootCommand root);

    /// <summary>Adds <c>hybrid cluster ...</c> and <c>hybrid migrate</c> (implemented next to the cluster commands).</summary>
    static partial void AddClusterCommands(RootCommand root);

    /// <summary>Parses and runs; returns the exit code.</summary>
    public static int Run(string[] args, Func<string[], int> runServer) => Build(runServer).Parse(args).Invoke();

    /// <summary>Says on stderr, as <paramref name="who"/>, when renamed files cannot be flushed to disk (libhyb_transport missing).</summary>
    public static void WarnIfRenamesNotFlushed(string who)
    {
        if (!Hybrid.Transport.FileDurability.IsAvailable(out string? reason))
            Console.Error.WriteLine($"{who}: renamed files (metadata, checkpoint metadata, tenant log, extension catalog) are not flushed to disk, a machine crash may lose the last ones: {reason}");
    }
}
