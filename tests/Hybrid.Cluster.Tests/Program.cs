using System.Globalization;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Entry point used only when a test starts this assembly as a child process (`dotnet exec
/// Hybrid.Cluster.Tests.dll counter DIR N`): the child increments a counter in a file store N times and
/// prints each value it committed, so the parent can check cross-process atomicity and crash safety.
/// `node-at file:DIR|etcd:URL DATA-DIR NAME TRACE-FILE [BIND]` runs one cluster node (sync durability) on that metadata
/// store until killed.
/// </summary>
public static class Program
{
    /// <summary>Runs a child role; returns a non-zero exit code on bad arguments.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args is ["node-at", var storeSpec, var nodeDataDir, var nodeName, var nodeTrace, .. var bind] && bind.Length <= 1)
            return await NodeProcess.RunNodeAsync(storeSpec, nodeDataDir, nodeName, nodeTrace, bind.FirstOrDefault());
        if (args is not ["counter", var directory, var count])
        {
            await Console.Error.WriteLineAsync("usage: counter DIR N | node-at file:DIR|etcd:URL DATA-DIR NAME TRACE-FILE [BIND]");
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
}
