using System.Globalization;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Entry point used only when a test starts this assembly as a child process (`dotnet exec
/// Hybrid.Cluster.Tests.dll counter DIR N`): the child increments a counter in a file store N times and
/// prints each value it committed, so the parent can check cross-process atomicity and crash safety.
/// `node-at file:DIR|etcd:URL DATA-DIR NAME TRACE-FILE [BIND] [--transport SPEC]...` runs one cluster node (sync
/// durability) on that metadata store until killed, listening on each transport SPEC (e.g. `memif:/tmp/x.sock`) besides
/// TCP. `client-over SPEC [TENANT SECRET]` runs client sessions over a transport, driven line by line on stdin
/// (<see cref="ScriptClient"/>).
/// </summary>
public static class Program
{
    /// <summary>Runs a child role; returns a non-zero exit code on bad arguments.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args is ["node-at", var storeSpec, var nodeDataDir, var nodeName, var nodeTrace, .. var rest]
            && TrySplitNodeOptions(rest, out string? bind, out List<string> transports))
        {
            return await NodeProcess.RunNodeAsync(storeSpec, nodeDataDir, nodeName, nodeTrace, bind, transports);
        }
        if (args is ["client-over", var spec])
            return await ScriptClient.RunAsync(spec, "default", "-");
        if (args is ["client-over", var tenantSpec, var tenant, var secret])
            return await ScriptClient.RunAsync(tenantSpec, tenant, secret);
        if (args is not ["counter", var directory, var count])
        {
            await Console.Error.WriteLineAsync("usage: counter DIR N | node-at file:DIR|etcd:URL DATA-DIR NAME TRACE-FILE [BIND] [--transport SPEC]... | client-over SPEC [TENANT SECRET]");
            return 2;
        }

        await using var store = new FileMetadataStore(directory);
        for (var i = 0; i < int.Parse(count, CultureInfo.InvariantCulture); i++)
        {
            var (value, _) = await Counter.IncrementAsync(store, "/counter");
            Console.Out.WriteLine(value.ToString(CultureInfo.InvariantCulture));
            Console.Out.Flush();
        }

        return 0;
    }

    /// <summary>The optional tail of <c>node-at</c>: at most one BIND address first, then <c>--transport SPEC</c> pairs.</summary>
    private static bool TrySplitNodeOptions(string[] rest, out string? bind, out List<string> transports)
    {
        bind = null;
        transports = [];
        int i = 0;
        if (rest.Length > 0 && !rest[0].StartsWith("--", StringComparison.Ordinal))
            bind = rest[i++];
        for (; i < rest.Length; i += 2)
        {
            if (rest[i] != "--transport" || i + 1 >= rest.Length)
                return false;
            transports.Add(rest[i + 1]);
        }
        return true;
    }
}
