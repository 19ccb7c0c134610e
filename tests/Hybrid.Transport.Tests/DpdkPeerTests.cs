using System.Globalization;
using Hybrid.Transport.Dpdk;
using Hybrid.Transport.Peer;

namespace Hybrid.Transport.Tests;

/// <summary>
/// DPDK end to end: two child processes (EAL initialises once per process and pins a thread, so never inside
/// the test host) exchanging real requests over net_memif and over net_af_packet on a veth pair created here.
/// Without root, DPDK or the native library these tests FAIL with the peer's own error message.
/// </summary>
public sealed class DpdkPeerTests
{
    private static readonly TimeSpan s_start = TimeSpan.FromSeconds(60);
    private static int s_counter;

    private static string NewId() =>
        string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId % 1000}{Interlocked.Increment(ref s_counter)}");

    private static PeerProcess StartServer(string[] dpdkArgs, params string[] extra)
    {
        var server = PeerProcess.Start(["serve", "dpdk", "7100", .. dpdkArgs, .. extra]);
        string line = server.WaitFor(s_start, "ready", "error");
        Assert.True(line.StartsWith("ready", StringComparison.Ordinal), $"DPDK server did not start: {line}\n{server.Output}");
        return server;
    }

    /// <summary>Runs the kv scenario and checks: every write answered, reads correct, executions = distinct writes.</summary>
    private static long RunKvClient(string[] dpdkArgs, int count, int expectedExecuted, params string[] extra)
    {
        using var client = PeerProcess.Start(["client", "dpdk", "7100", "--scenario", "kv", "--count", count.ToString(CultureInfo.InvariantCulture), .. dpdkArgs, .. extra]);
        string executed = client.WaitFor(s_start, "executed", "fail", "error");
        Assert.Equal($"executed {expectedExecuted}", executed);
        string retransmissions = client.WaitFor(s_start, "retransmissions");
        Assert.Equal("ok", client.WaitFor(s_start, "ok", "fail", "error"));
        Assert.Equal(0, client.WaitForExit(s_start));
        return long.Parse(retransmissions.Split(' ')[1], CultureInfo.InvariantCulture);
    }

    [Fact]
    public void Memif_WritesBetweenTwoProcesses_EachExecutesOnce()
    {
        string id = NewId();
        using var server = StartServer(DpdkSetup.Memif(id, server: true));
        RunKvClient(DpdkSetup.Memif(id, server: false), 150, 150);
        RunKvClient(DpdkSetup.Memif(id, server: false), 50, 200, "--tag", "second");
    }

    [Fact]
    public void Memif_InjectedFrameLoss_RetransmitsAndNoWriteExecutesTwice()
    {
        string id = NewId();
        using var server = StartServer(DpdkSetup.Memif(id, server: true), "--drop", "0.05");
        long retransmissions = RunKvClient(DpdkSetup.Memif(id, server: false), 200, 200, "--drop", "0.05");
        Assert.True(retransmissions > 0, "5% loss on both sides must force retransmissions");
    }

    [Fact]
    public void AfPacket_InjectedFrameLoss_RetransmitsAndNoWriteExecutesTwice()
    {
        string id = NewId();
        using var veth = new VethPair("hyb" + id);
        using var server = StartServer(DpdkSetup.AfPacket(id, veth.A, server: true), "--drop", "0.05");
        long retransmissions = RunKvClient(DpdkSetup.AfPacket(id, veth.B, server: false), 200, 200, "--drop", "0.05");
        Assert.True(retransmissions > 0, "5% loss on both sides must force retransmissions");
    }

    [Fact]
    public void AfPacket_ServerKilled9_ClientReportsPeerTimeoutAndKeepsRunning()
    {
        string id = NewId();
        using var veth = new VethPair("hyb" + id);
        using var server = StartServer(DpdkSetup.AfPacket(id, veth.A, server: true));
        using var client = PeerProcess.Start(["client", "dpdk", "7100", "--scenario", "kill", "--peer-timeout-ms", "500", "--connect-timeout-ms", "1000",
            .. DpdkSetup.AfPacket(id, veth.B, server: false)]);
        Assert.Equal("ready", client.WaitFor(s_start, "ready", "fail", "error"));
        server.Kill9();
        client.Send("go");
        Assert.StartsWith("error PeerTimeout", client.WaitFor(s_start, "error", "fail"));
        Assert.Equal("reconnect ConnectFailed", client.WaitFor(s_start, "reconnect", "fail"));
        Assert.Equal("alive", client.WaitFor(s_start, "alive", "fail"));
        Assert.Equal(0, client.WaitForExit(s_start));
    }

    [Fact]
    public void AfPacket_ClientKilled9_ServerEndsThatSessionAndServesTheNext()
    {
        string id = NewId();
        using var veth = new VethPair("hyb" + id);
        using var server = StartServer(DpdkSetup.AfPacket(id, veth.A, server: true), "--peer-timeout-ms", "500");
        using (var doomed = PeerProcess.Start(["client", "dpdk", "7100", "--scenario", "kill", .. DpdkSetup.AfPacket(id, veth.B, server: false)]))
        {
            Assert.Equal("ready", doomed.WaitFor(s_start, "ready", "fail", "error"));
            doomed.Kill9();
        }
        Assert.StartsWith("session-end PeerTimeout", server.WaitFor(s_start, "session-end"));
        RunKvClient(DpdkSetup.AfPacket(id, veth.B, server: false), 20, 30, "--tag", "next");
    }

    /// <summary>
    /// DPDK names an af_packet fanout group (pid ^ ifindex) &amp; 0xffff and the kernel refuses one id on two interfaces,
    /// so concurrent af_packet processes on our pairs must not be able to collide: both ends' ifindexes share their low
    /// 16 bits (CI once failed a node start with "could not set PACKET_FANOUT ... Invalid argument").
    /// </summary>
    [Fact]
    public void VethPair_BothEndsHaveIfindexesWithTheSameLow16Bits_SoFanoutIdsDifferWheneverPidsDo()
    {
        string id = NewId();
        int a, b;
        using (var veth = new VethPair("hyb" + id))
        {
            a = int.Parse(File.ReadAllText($"/sys/class/net/{veth.A}/ifindex").Trim(), CultureInfo.InvariantCulture);
            b = int.Parse(File.ReadAllText($"/sys/class/net/{veth.B}/ifindex").Trim(), CultureInfo.InvariantCulture);
            Assert.Equal(VethPair.FanoutIndexBits, a & 0xffff);
            Assert.Equal(VethPair.FanoutIndexBits, b & 0xffff);
            Assert.NotEqual(a, b);
            foreach (string side in new[] { veth.A, veth.B })
                Assert.True((Convert.ToInt32(File.ReadAllText($"/sys/class/net/{side}/flags").Trim(), 16) & 1) == 1, side + " is not up"); // IFF_UP
        }
        Assert.False(Directory.Exists($"/sys/class/net/hyb{id}a"), "the pair outlived its dispose");
    }
}
