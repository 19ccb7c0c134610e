using System.Globalization;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Entry point used only when a test starts this assembly as a child process (`dotnet exec
/// Hybrid.Cluster.Tests.dll counter DIR N`): the child increments a counter in a file store N times and
/// prints each value it committed, so the parent can check cross-process atomicity and crash safety.
/// `node METADATA-DIR DATA-DIR NAME TRACE-FILE` runs one cluster node (sync durability) until killed.
/// </summary>
public static class Program
{
    /// <summary>Runs a child role; returns a non-zero exit code on bad arguments.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args is ["node", var metadataDir, var dataDir, var name, var trace])
            return await ClusterFaultTests.RunNodeAsync(metadataDir, dataDir, name, trace);
        if (args is not ["counter", var directory, var count])
        {
            await Console.Error.WriteLineAsync("usage: counter DIR N | node METADATA-DIR DATA-DIR NAME TRACE-FILE");
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
