using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Hybrid.Client;
using Hybrid.Transport.Dpdk;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Views and migration with clients over DPDK (<see cref="MemifClusterTests"/>, <see cref="AfPacketClusterTests"/>). EAL
/// never starts inside the test host and a process's one DPDK port reaches one peer, so everything is a child process: two
/// cluster nodes (<c>node-at ... --transport SPEC</c>, each listening on its own memif socket or veth end besides TCP, on
/// one file metadata store, n1 owning every range) and one scripted client process per node (<c>client-over SPEC</c>,
/// <see cref="ScriptClient"/>) holding one <see cref="HybridSession"/> from before the migration to the end. Clients
/// always close orderly (a memif peer that vanishes while the other polls can crash the survivor; the datagram goodbye
/// prevents it).
/// </summary>
public abstract class DpdkClusterTests(ITestOutputHelper output) : ClusterProcessTests
{
    private const int Keys = 1200;
    private const int PerCommand = 200;

    protected override string StoreSpec => "file:" + Path.Combine(Dir.Path, "metadata");

    protected override IEnumerable<string> ExtraNodeArgsFor(string node) => ["--transport", NodeSpec(node)];

    /// <summary>The transport spec node <paramref name="node"/> listens on.</summary>
    protected abstract string NodeSpec(string node);

    /// <summary>The transport spec node <paramref name="node"/>'s client dials.</summary>
    protected abstract string ClientSpec(string node);

    /// <summary>
    /// The tenant and secret the clients' sessions open as (<c>client-over</c> arguments); none: the default tenant,
    /// which needs no secret on a node only this host reaches.
    /// </summary>
    protected virtual string[] ClientTenant => [];

    private static string Key(int i) => "key:" + i;

    private static string Value(string round, int i) => $"{round}-{i}-{new string('x', 100)}";

    [Fact]
    public async Task Client_processes_over_DPDK_see_ViewChanged_at_the_source_and_every_moved_record_at_the_target()
    {
        var clock = Stopwatch.StartNew();
        int[] all = [.. Enumerable.Range(0, Keys)];
        int[] moved = [.. all.Where(i => RangeOf(i) is "r1" or "r2")];
        int[] kept = [.. all.Except(moved)];

        // One DPDK client process per node; both sessions are opened (and learn their node's view) before the migration.
        await using NodeProcess toN1 = await NodeProcess.StartAsync(["client-over", ClientSpec("n1"), .. ClientTenant]);
        await using NodeProcess toN2 = await NodeProcess.StartAsync(["client-over", ClientSpec("n2"), .. ClientTenant]);
        ulong n1ViewBefore = await ViewAsync(toN1), n2ViewBefore = await ViewAsync(toN2);
        Assert.Equal((ulong)Initial.View("n1"), n1ViewBefore);

        // Two rounds of writes to n1, which owns every range: "b" is every key's latest value. n2 owns nothing yet.
        await ExpectAsync(toN1, "put", all, i => Key(i) + "=" + Value("a", i), _ => "Ok");
        await ExpectAsync(toN1, "put", all, i => Key(i) + "=" + Value("b", i), _ => "Ok");
        await ExpectAsync(toN2, "get", moved.Take(10), Key, _ => "NotOwner");
        output.WriteLine($"{Keys} keys ({moved.Length} in r1/r2) written twice over DPDK to n1 at {clock.Elapsed.TotalSeconds:F1} s");

        // Move r1 and r2 to n2 with throttled background pulls; read the moved records at n2 as soon as it serves them
        // (those not pulled yet come by priority pulls). n2's session still stamps n2's old view: ViewChanged, then adopted.
        await StartMigrationAsync(maxBytesPerSecond: 5000);
        await WaitAsync(async () => (await ControlAsync("n2", "{\"op\":\"status\"}")).GetProperty("firstServed").ValueKind != JsonValueKind.Null,
            "n2 to serve the moved ranges", TimeSpan.FromSeconds(90));
        string during = $"phase r1 '{Metadata.Current.Phase("r1")}', target {await ControlAsync("n2", "{\"op\":\"status\"}")}";
        ulong n2View = await ExpectAsync(toN2, "get", moved, Key, i => "Ok:" + Value("b", i));
        output.WriteLine($"moved records read at n2 from {during}; then target {await ControlAsync("n2", "{\"op\":\"status\"}")} at {clock.Elapsed.TotalSeconds:F1} s");
        Assert.True(n2View > n2ViewBefore, $"n2's session did not adopt a new view ({n2ViewBefore} -> {n2View})");

        await WaitAsync(() => Task.FromResult(Metadata.Current.Phase("r1") == "" && Metadata.Current.Phase("r2") == ""),
            "the migration to finish", TimeSpan.FromSeconds(120));
        JsonElement status = await ControlAsync("n2", "{\"op\":\"status\"}");
        output.WriteLine($"migration done at {clock.Elapsed.TotalSeconds:F1} s: {status}");
        Assert.Equal(JsonValueKind.Null, status.GetProperty("error").ValueKind);
        AssertMigrated();

        // n2 serves the moved ranges: their latest values, and new writes; not the ranges that stayed.
        await ExpectAsync(toN2, "get", moved, Key, i => "Ok:" + Value("b", i));
        await ExpectAsync(toN2, "put", moved, i => Key(i) + "=" + Value("c", i), _ => "Ok");
        await ExpectAsync(toN2, "get", moved, Key, i => "Ok:" + Value("c", i));
        await ExpectAsync(toN2, "get", kept.Take(10), Key, _ => "NotOwner");

        // The session to n1 opened before the migration still stamps n1's old view: n1 answers ViewChanged, the
        // session adopts n1's new view and resends, and n1 refuses the moved keys with NotOwner.
        Assert.Equal(n1ViewBefore, await ViewAsync(toN1));
        ulong n1View = await ExpectAsync(toN1, "get", moved, Key, _ => "NotOwner");
        Assert.True(n1View > n1ViewBefore, $"n1's session did not adopt a new view ({n1ViewBefore} -> {n1View})");
        Assert.Equal((ulong)Metadata.Current.View("n1"), n1View);
        // The ranges that stayed are still n1's, over DPDK: latest values, new writes.
        await ExpectAsync(toN1, "get", kept, Key, i => "Ok:" + Value("b", i));
        await ExpectAsync(toN1, "put", kept, i => Key(i) + "=" + Value("c", i), _ => "Ok");
        await ExpectAsync(toN1, "get", kept, Key, i => "Ok:" + Value("c", i));

        // Both clients say goodbye and exit cleanly; both nodes outlive their memif peer's departure.
        foreach (NodeProcess client in new[] { toN1, toN2 })
        {
            Assert.True(await client.CloseInputAndWaitAsync(TimeSpan.FromSeconds(60)) == 0, client.Log);
            Assert.Contains("bye", client.Log, StringComparison.Ordinal);
        }
        foreach (string node in new[] { "n1", "n2" })
        {
            await ControlAsync(node, "{\"op\":\"status\"}");
            Assert.True(NodeOf(node).IsRunning, $"{node} died:\n{NodeOf(node).Log}");
        }
        AssertTraceConforms("n2");
        foreach (string log in new[] { NodeOf("n1").Log, NodeOf("n2").Log, toN1.Log, toN2.Log })
            output.WriteLine(string.Join(" | ", log.Split('\n').Where(l => !l.StartsWith(NodeProcess.ReplyPrefix, StringComparison.Ordinal)).Take(6)));
        output.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s");
    }

    private string RangeOf(int i)
    {
        int slot = ClusterSlot.Of(Encoding.UTF8.GetBytes(Key(i)));
        return Metadata.Log.Ranges.First(r => r.Value.Contains(slot)).Key;
    }

    /// <summary>The view <paramref name="client"/>'s session stamps now.</summary>
    private static async Task<ulong> ViewAsync(NodeProcess client) => Parse(await client.RequestAsync("view")).View;

    /// <summary>
    /// Sends <c>VERB</c> with <paramref name="item"/> of each of <paramref name="keys"/> to <paramref name="client"/>
    /// (<see cref="PerCommand"/> per command), asserts each result is <paramref name="expected"/> of its key, and returns
    /// the session's view after the last command.
    /// </summary>
    private static async Task<ulong> ExpectAsync(NodeProcess client, string verb, IEnumerable<int> keys, Func<int, string> item, Func<int, string> expected)
    {
        ulong view = 0;
        foreach (int[] chunk in keys.Chunk(PerCommand))
        {
            string command = verb + " " + string.Join(' ', chunk.Select(item));
            (view, string[] results) = Parse(await client.RequestAsync(command));
            Assert.True(results.Length == chunk.Length, $"{verb}: {results.Length} results for {chunk.Length} keys");
            int[] wrong = [.. Enumerable.Range(0, chunk.Length).Where(j => results[j] != expected(chunk[j]))];
            if (wrong.Length > 0)
            {
                int j = wrong[0];
                Assert.Fail($"{verb}: {wrong.Length} of {chunk.Length} results wrong; {Key(chunk[j])}: expected '{expected(chunk[j])}', got '{results[j]}'\n{client.Log}");
            }
        }
        return view;
    }

    private static (ulong View, string[] Results) Parse(string reply)
    {
        string[] words = reply.Split(' ');
        Assert.StartsWith("view=", words[0], StringComparison.Ordinal);
        return (ulong.Parse(words[0]["view=".Length..], CultureInfo.InvariantCulture), words[1..]);
    }
}

/// <summary>Views and migration over DPDK memif: each node is the memif server of its own socket.</summary>
public sealed class MemifClusterTests(ITestOutputHelper output) : DpdkClusterTests(output)
{
    protected override string NodeSpec(string node) => "memif:" + Path.Combine(Dir.Path, node + ".memif.sock");

    protected override string ClientSpec(string node) => NodeSpec(node);
}

/// <summary>
/// Views and migration over DPDK af_packet: a veth pair per node (root), created before the nodes start and removed
/// after; the node listens on one end, its client dials on the other. af_packet is a network link, so the nodes let no
/// tenant in without AUTH: the clients are tenant <c>app</c>, created with its secret on both nodes (same id) before
/// they start.
/// </summary>
public sealed class AfPacketClusterTests(ITestOutputHelper output) : DpdkClusterTests(output)
{
    private const string Tenant = "app";
    private const string Secret = "af-packet-cluster-secret";

    private readonly Dictionary<string, VethPair> _veths = [];

    protected override string NodeSpec(string node) => "af_packet:" + _veths[node].A;

    protected override string ClientSpec(string node) => "af_packet:" + _veths[node].B;

    protected override string[] ClientTenant => [Tenant, Secret];

    /// <summary>Off loopback every tenant must authenticate: the cluster's tenant, the same id on both nodes.</summary>
    protected override IEnumerable<(string Name, byte[] Secret)> Tenants => [(Tenant, Encoding.UTF8.GetBytes(Secret))];

    protected override Task PrepareAsync()
    {
        foreach (string node in new[] { "n1", "n2" })
        {
            _veths[node] = new VethPair("hybn" + Guid.NewGuid().ToString("N")[..6]);
        }
        return Task.CompletedTask;
    }

    protected override Task CleanUpAsync()
    {
        foreach (VethPair veth in _veths.Values)
            veth.Dispose();
        return Task.CompletedTask;
    }
}
