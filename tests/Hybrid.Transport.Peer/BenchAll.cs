using System.Globalization;
using Hybrid.Transport.Dpdk;

namespace Hybrid.Transport.Peer;

/// <summary>
/// <c>bench-all [count]</c>: round-trip latency and ping-pong throughput of a 32-byte message over TCP, shared
/// memory, DPDK memif and DPDK af_packet (veth), each between two child processes, in one run.
/// </summary>
internal static class BenchAll
{
    public static async Task<int> RunAsync(string[] args)
    {
        string count = args.Length > 0 ? args[0] : "50000";
        string id = (Environment.ProcessId % 10000).ToString(CultureInfo.InvariantCulture);
        var results = new List<(string Name, string Line)>();
        results.Add(("tcp", Run(["tcp", "127.0.0.1:0"], [], [], count)));
        results.Add(("shm", Run(["shm", $"/tmp/hyb-bench-{id}.sock"], [], [], count)));
        results.Add(("dpdk memif", Run(["dpdk", "7100"], DpdkSetup.Memif(id, server: true), DpdkSetup.Memif(id, server: false), count)));
        using (var veth = new VethPair("hyb" + id))
        {
            results.Add(("dpdk af_packet", Run(["dpdk", "7100"], DpdkSetup.AfPacket(id, veth.A, server: true),
                DpdkSetup.AfPacket(id, veth.B, server: false), count)));
        }
        Console.WriteLine();
        Console.WriteLine($"round trip of a 32-byte message, {count} ping-pongs, client and server in separate processes:");
        foreach (var (name, line) in results)
            Console.WriteLine($"  {name,-15} {line}");
        await Task.CompletedTask;
        return 0;
    }

    private static string Run(string[] target, string[] serverArgs, string[] clientArgs, string count)
    {
        using var server = PeerProcess.Start(["serve", .. target, .. serverArgs]);
        string ready = server.WaitFor(TimeSpan.FromSeconds(30), "ready", "error");
        if (ready.StartsWith("error", StringComparison.Ordinal))
            return ready;
        string address = ready.Split(' ')[1];
        using var client = PeerProcess.Start(["client", target[0], address, "--scenario", "bench", "--count", count, .. clientArgs]);
        string result = client.WaitFor(TimeSpan.FromMinutes(3), "bench", "error", "fail");
        client.WaitForExit(TimeSpan.FromSeconds(30));
        return result;
    }
}
