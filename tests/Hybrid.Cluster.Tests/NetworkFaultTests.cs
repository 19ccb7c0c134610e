using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Hybrid.Client;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A migration over an impaired network between the nodes. The test creates a network namespace (root) in which both
/// node processes run, bound to the namespace's end of a veth pair; clients reach them from the test's namespace over
/// the veth. Node-to-node traffic (pulls, view changes, drops) goes over the namespace's loopback, where the test drops
/// packets at random (nftables <c>meta random</c>) and caps the bandwidth (tc <c>tbf</c>, which queues, so it also
/// delays). This kernel has no <c>sch_netem</c> (and cannot load modules), so a fixed added delay is not possible
/// here. Afterwards every acknowledged write is readable with its latest value, ownership is single, and the target's
/// trace conforms.
/// </summary>
public sealed class NetworkFaultTests(ITestOutputHelper output) : ClusterProcessTests
{
    private static readonly byte[] s_secret = "network-fault-secret"u8.ToArray();
    private readonly string _ns = "hybnf" + Guid.NewGuid().ToString("N")[..8];
    private readonly int _subnet = Random.Shared.Next(1, 250);
    private bool _created;

    private string NodeAddress => $"10.231.{_subnet}.2";

    protected override string StoreSpec => "file:" + Path.Combine(Dir.Path, "metadata");

    protected override string? NetworkNamespace => _ns;

    protected override IEnumerable<string> ExtraNodeArgs => [NodeAddress];

    /// <summary>Off loopback every tenant must authenticate: the cluster's tenant, the same id on both nodes.</summary>
    protected override IEnumerable<(string Name, byte[] Secret)> Tenants => [("app", s_secret)];

    /// <summary>Runs a command as root; fails the test with its output when it fails.</summary>
    private static string Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args)
            info.ArgumentList.Add(a);
        using Process p = Process.Start(info) ?? throw new InvalidOperationException("cannot start " + file);
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}{stdout} (this test needs root, iproute2 and nftables)");
        return stdout;
    }

    private string InNamespace(params string[] args) => Run("ip", ["netns", "exec", _ns, .. args]);

    protected override Task PrepareAsync()
    {
        string host = "vh" + _ns[5..], guest = "vg" + _ns[5..];
        Run("ip", "netns", "add", _ns);
        _created = true;
        Run("ip", "link", "add", host, "type", "veth", "peer", "name", guest);
        Run("ip", "link", "set", guest, "netns", _ns);
        Run("ip", "addr", "add", $"10.231.{_subnet}.1/24", "dev", host);
        Run("ip", "link", "set", host, "up");
        InNamespace("ip", "addr", "add", NodeAddress + "/24", "dev", guest);
        InNamespace("ip", "link", "set", guest, "up");
        InNamespace("ip", "link", "set", "lo", "up");
        // An Ethernet MTU on the nodes' link, not loopback's 64 KiB: a streamed pull is then ~100 packets, not a handful,
        // so the random drops below really hit it (and the traffic looks like a real network's).
        InNamespace("ip", "link", "set", "lo", "mtu", "1500");
        // And no segmentation offload: otherwise TCP hands loopback up to 64 KiB per packet even at that MTU, so the
        // firewall's random drops see a few dozen packets per migration, and once in a while none was dropped.
        InNamespace("ip", "link", "set", "lo", "gso_max_size", "1500");
        return Task.CompletedTask;
    }

    protected override Task CleanUpAsync()
    {
        if (_created)
            Run("ip", "netns", "del", _ns); // the veth pair and the rules go with it
        return Task.CompletedTask;
    }

    /// <summary>Drops <paramref name="lossPercent"/>% of the packets between the nodes and caps their bandwidth.</summary>
    private void Impair(double lossPercent, string rate)
    {
        string threshold = ((long)(lossPercent / 100 * 4294967296.0)).ToString(CultureInfo.InvariantCulture);
        InNamespace("nft", "add", "table", "inet", "hybfault");
        InNamespace("nft", "add", "chain", "inet", "hybfault", "between", "{ type filter hook input priority 0; }");
        InNamespace("nft", "add", "rule", "inet", "hybfault", "between", "ip", "saddr", NodeAddress, "ip", "daddr", NodeAddress,
            "meta", "random", "<", threshold, "counter", "drop");
        InNamespace("tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "64kb", "latency", "100ms");
    }

    [Fact]
    public async Task A_migration_over_a_lossy_capped_link_between_the_nodes_loses_no_acknowledged_write()
    {
        var template = new HybridClientOptions { Tenant = "app", Secret = s_secret };
        await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(Metadata.Typed), template);
        var load = new AckedWrites(client, 3000);
        await load.LoadAsync();
        Impair(lossPercent: 3, rate: "8mbit");
        load.Start(lanes: 4);

        await StartMigrationAsync(maxBytesPerSecond: 0);
        await WaitAsync(async () => (await ControlAsync("n2", "{\"op\":\"status\"}")).GetProperty("finished").ValueKind != JsonValueKind.Null,
            "the migration to finish", TimeSpan.FromSeconds(180));
        await load.StopAsync();
        JsonElement status = await ControlAsync("n2", "{\"op\":\"status\"}");
        string rules = InNamespace("nft", "list", "table", "inet", "hybfault");
        output.WriteLine($"{load.Writes} acknowledged writes, {load.Failed} failed, {load.Refused} refused, {client.Resends} resends; target: {status}");
        output.WriteLine(rules);
        Assert.Equal(JsonValueKind.Null, status.GetProperty("error").ValueKind);
        // The impairment really hit the nodes' traffic: some packets were dropped.
        Assert.Matches(@"counter packets [1-9]\d* bytes", rules);

        AssertMigrated();
        await AssertNoLostWritesAsync(load, template);
        AssertTraceConforms("n2");
    }
}
