using System.Globalization;
using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Tenants;
using Hybrid.Node.Tests.Node;
using Hybrid.Protocol;
using Hybrid.Transport.Dpdk;

namespace Hybrid.Node.Tests.Transport;

/// <summary>
/// The node over DPDK memif and af_packet (a veth pair the test creates and removes; root). Both DPDK peers are child processes (<c>hybrid server --transport memif:...</c> and
/// <c>hybrid bench --transport memif:...</c>): EAL never starts inside the test host. Without the native library or
/// DPDK the children fail with the reason, and so does the test.
/// </summary>
public class DpdkNodeTests
{
    private const string Tenant = "bench";
    private const string Secret = "secret-of-bench";

    private static string Id() => Guid.NewGuid().ToString("N")[..8];

    private static string[] BenchArgs(string socket, int port, string csv, string duration, string keys) => BenchArgsFor("memif:" + socket, port, csv, duration, keys);

    private static string[] BenchArgsFor(string spec, int port, string csv, string duration, string keys) =>
        ["bench", "--transport", spec, "--port", port.ToString(CultureInfo.InvariantCulture), "-w", "a", "--keys", keys, "--value-size", "32",
         "-s", "1", "-b", "8", "-p", "2", "--duration", duration, "--warmup", "0", "--csv", csv];

    /// <summary>Errors and operations of the last CSV line (columns of BenchResult.CsvHeader: ops 8, errors 9).</summary>
    private static (long Ops, long Errors) ReadCsv(string csv)
    {
        var fields = File.ReadAllLines(csv).Last().Split(',');
        return (long.Parse(fields[8], CultureInfo.InvariantCulture), long.Parse(fields[9], CultureInfo.InvariantCulture));
    }

    [Fact]
    public Task Memif_BenchClientProcess_PutsAndGetsThroughNode_VisibleOverTcp()
    {
        string socket = $"/tmp/hyb-nt-memif-{Id()}.sock";
        return BenchThroughNodeAsync("memif:" + socket, "memif:" + socket, authenticate: false);
    }

    [Fact]
    public async Task AfPacket_BenchClientProcess_PutsAndGetsThroughNode_VisibleOverTcp()
    {
        using var veth = new VethPair("hybn" + Id()[..6]);
        await BenchThroughNodeAsync("af_packet:" + veth.A, "af_packet:" + veth.B, authenticate: true);
    }

    /// <summary>
    /// An af_packet interface the node cannot open stops the node with a message naming it and the one cause a correct
    /// command line still meets (a fanout group id collision with another af_packet process), not a bare HYB_ENODEV.
    /// </summary>
    [Fact]
    public void AfPacket_OnAMissingInterface_TheNodeExitsNamingTheInterfaceAndTheFanoutCollision()
    {
        string directory = TestNode.NewDirectory();
        try
        {
            string missing = "hybnx" + Id()[..6];
            var failure = Assert.Throws<InvalidOperationException>(() => HybridProcess.StartServer(directory, "--transport", "af_packet:" + missing).Server.Dispose());
            Assert.Contains($"hyb_port_open(net_af_packet0,iface={missing}) failed with HYB_ENODEV: af_packet could not open the interface", failure.Message);
            Assert.Contains("(pid ^ ifindex) & 0xffff", failure.Message);
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    /// <summary>
    /// A node child process on <paramref name="serverSpec"/>; a bench child process loads and runs reads/updates over
    /// <paramref name="clientSpec"/>. With <paramref name="authenticate"/> (a listener on a network link: the node lets
    /// no tenant in without AUTH) both the bench and the TCP check are tenant <see cref="Tenant"/>, created with its
    /// secret before the node starts; otherwise the default tenant.
    /// </summary>
    private static async Task BenchThroughNodeAsync(string serverSpec, string clientSpec, bool authenticate)
    {
        string directory = TestNode.NewDirectory(), csv = Path.Combine(Path.GetTempPath(), $"hyb-nt-{Id()}.csv");
        try
        {
            if (authenticate)
                TenantRegistry.Open(directory).Create(Tenant, Encoding.UTF8.GetBytes(Secret));
            string[] auth = authenticate ? ["--tenant", Tenant, "--secret", Secret] : [];
            var (server, port) = HybridProcess.StartServer(directory, "--transport", serverSpec);
            using (server)
            {
                using (var bench = HybridProcess.Start([.. BenchArgsFor(clientSpec, port, csv, "1", "300"), .. auth]))
                    Assert.True(bench.WaitForExit(TimeSpan.FromSeconds(120)) == 0, bench.Output);
                var (ops, errors) = ReadCsv(csv);
                Assert.True(ops > 0, "no operations measured");
                Assert.Equal(0, errors);
                // The 300 records the bench loaded over the transport are in the node's store: read them over TCP.
                var options = new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, port) };
                if (authenticate)
                    options = options with { Tenant = Tenant, Secret = Encoding.UTF8.GetBytes(Secret) };
                await using var tcp = await HybridSession.ConnectAsync(options);
                foreach (int i in new[] { 0, 150, 299 })
                {
                    var get = await tcp.GetAsync(0, Encoding.ASCII.GetBytes($"user{i:D12}"));
                    Assert.Equal(Status.Ok, get.Status);
                    Assert.Equal(32, get.Value!.Length);
                }
                Assert.False(server.HasExited, server.Output);
            }
        }
        finally
        {
            File.Delete(csv);
            TestNode.DeleteDirectory(directory);
        }
    }

    [Fact]
    public void Memif_ClientProcessKilled9_NodeKeepsServing_NextClientWorks()
    {
        string id = Id(), directory = TestNode.NewDirectory(), socket = $"/tmp/hyb-nt-memif-{id}.sock", csv = Path.Combine(Path.GetTempPath(), $"hyb-nt-{id}.csv");
        try
        {
            var (server, port) = HybridProcess.StartServer(directory, "--transport", "memif:" + socket);
            using (server)
            {
                using (var victim = HybridProcess.Start(BenchArgs(socket, port, csv + ".victim", "60", "100")))
                {
                    victim.WaitForLine("A (zipf)", TimeSpan.FromSeconds(120)); // loaded, now running reads and updates
                    victim.Kill9();
                }
                Assert.False(server.HasExited, "the node died with its client:\n" + server.Output);
                using (var next = HybridProcess.Start(BenchArgs(socket, port, csv, "1", "100")))
                    Assert.True(next.WaitForExit(TimeSpan.FromSeconds(120)) == 0, next.Output);
                var (ops, errors) = ReadCsv(csv);
                Assert.True(ops > 0, "no operations measured");
                Assert.Equal(0, errors);
                Assert.False(server.HasExited, server.Output);
            }
        }
        finally
        {
            File.Delete(csv);
            File.Delete(csv + ".victim");
            TestNode.DeleteDirectory(directory);
        }
    }
}
