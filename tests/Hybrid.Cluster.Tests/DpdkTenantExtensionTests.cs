using System.Diagnostics;
using System.Text;
using Hybrid.Node.Tenants;
using Hybrid.Node.Tests.Extensions;
using Hybrid.Transport.Dpdk;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Tenants and extensions over DPDK (memif, and af_packet on a veth pair the test creates and removes; root): a real
/// <c>hybrid server --transport SPEC</c> child process (tenant code compiled by its <c>hybrid ext compiler</c> child)
/// and one scripted client process (<c>client-over SPEC</c>, <see cref="ScriptClient"/>) holding several sessions over
/// its one DPDK port: tenant a, tenant b and the default tenant (a memif socket serves one client process at a time, so
/// the tenants are sessions of that process, as the sessions of <c>hybrid bench</c> are). The default tenant gets in
/// without a secret over memif and is refused over af_packet (a network link). EAL never starts in the test host.
/// </summary>
public sealed class DpdkTenantExtensionTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>An install compiles in the node's compiler child process: seconds on a loaded machine.</summary>
    private static readonly TimeSpan s_install = TimeSpan.FromSeconds(90);

    private readonly TempDirectory _dir = new();

    [Theory]
    [InlineData("memif")]
    [InlineData("af_packet")]
    public async Task Tenants_authenticate_stay_isolated_and_run_extensions_over_DPDK(string kind)
    {
        var clock = Stopwatch.StartNew();
        using VethPair? veth = kind == "af_packet" ? new VethPair("hybn" + Guid.NewGuid().ToString("N")[..6]) : null;
        string socket = Path.Combine(_dir.Path, "node.memif.sock");
        (string serverSpec, string clientSpec) = veth is null ? ("memif:" + socket, "memif:" + socket) : ("af_packet:" + veth.A, "af_packet:" + veth.B);

        // Two tenants with secrets, in the node's tenant log before it starts.
        string data = Path.Combine(_dir.Path, "node");
        TenantRegistry tenants = TenantRegistry.Open(data);
        tenants.Create("a", Encoding.UTF8.GetBytes("secret-of-a"));
        tenants.Create("b", Encoding.UTF8.GetBytes("secret-of-b"));
        string getOne = Path.Combine(_dir.Path, "get1.cs"), spin = Path.Combine(_dir.Path, "spin.cs");
        await File.WriteAllTextAsync(getOne, Hybrid.Extensions.ExtensionExamples.Source("get")); // table 0 under the key in args
        await File.WriteAllTextAsync(spin, HostileSources.Spin);

        await using NodeProcess node = await NodeProcess.StartCliAsync(["server", "--data-dir", data, "--port", "0", "--resp-port", "-1", "--metrics-port", "-1",
            "--workers", "2", "--durability", "memory", "--memory-budget", (16 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--transport", serverSpec], "hybrid: listening");
        // The client's first session (main) is tenant a's: it authenticates (HMAC challenge) over the DPDK port.
        await using NodeProcess client = await StartClientAsync(node, clientSpec, "a", "secret-of-a");
        try
        {
            // Tenant b authenticates too; a and b each see only their own keys.
            await ExpectAsync(client, "open b b secret-of-b", "Ok");
            await ExpectAsync(client, "put table=0 k=from-a only-a=1", "Ok", "Ok");
            await ExpectAsync(client, "@b get table=0 k only-a", "NotFound", "NotFound");
            await ExpectAsync(client, "@b put table=0 k=from-b", "Ok");
            await ExpectAsync(client, "get table=0 k only-a", "Ok:from-a", "Ok:1");
            await ExpectAsync(client, "@b get table=0 k", "Ok:from-b");
            if (kind == "memif")
            {
                // On a node that only this host reaches (loopback bind, memif) the default tenant needs no secret; it sees
                // neither tenant's keys.
                await ExpectAsync(client, "open anon default -", "Ok");
                await ExpectAsync(client, "@anon get table=0 k only-a", "NotFound", "NotFound");
            }
            else
            {
                // af_packet reaches a network link: although the node binds its sockets to loopback, it lets no tenant in
                // without AUTH and has no secretless default tenant at all (docs/protocol.md, docs/transport.md §7).
                await ExpectAsync(client, "open anon default -", "UnknownTenant");
            }

            // A wrong secret and an unknown tenant are refused; the node goes on serving the authenticated sessions.
            await ExpectAsync(client, "open intruder a secret-of-b", "Unauthorized");
            await ExpectAsync(client, "open stranger nobody x", "UnknownTenant");
            await ExpectAsync(client, "get table=0 k", "Ok:from-a");
            await ExpectAsync(client, "@b get table=0 k", "Ok:from-b");
            output.WriteLine($"{kind}: tenants checked at {clock.Elapsed.TotalSeconds:F1} s");

            // Extensions are the tenant's: a's run on a's data; b sees none of a's until it installs its own (the same
            // source, shared by the node), which then reads b's data.
            await ExpectAsync(client, "install get1 " + getOne, s_install, "Ok:get1");
            await ExpectAsync(client, "install spin " + spin, s_install, "Ok:spin");
            output.WriteLine($"{kind}: installed at {clock.Elapsed.TotalSeconds:F1} s");
            await ExpectAsync(client, "invoke get1:k get1:only-a get1:absent", "Ok:from-a", "Ok:1", "Ok:");
            await ExpectAsync(client, "list", "get1", "spin");
            await ExpectAsync(client, "@b list");
            await ExpectAsync(client, "@b invoke get1:k", "NotFound/0");
            await ExpectAsync(client, "@b install get1 " + getOne, s_install, "Ok:get1");
            await ExpectAsync(client, "@b invoke get1:k", "Ok:from-b");

            // a's infinite loop runs again and again in the background while b's session keeps being served; every run is
            // stopped with ExtensionFailed: CPU budget exceeded (3), or quarantined (7) once the watchdog saw a worker stuck
            // in it (a preempted spin on a loaded machine).
            string[] started = await AskAsync(client, "repeat invoke spin");
            for (int i = 0; i < 20; i++)
            {
                await ExpectAsync(client, "@b get table=0 k", "Ok:from-b");
                await ExpectAsync(client, "@b invoke get1:k", "Ok:from-b");
            }
            string[] hostile = await AskAsync(client, "stop " + started[0]);
            output.WriteLine($"{kind}: hostile runs while b made 40 requests: {string.Join(' ', hostile)}");
            Assert.NotEmpty(hostile);
            Assert.All(hostile, h => Assert.Matches(@"^ExtensionFailed/[37]=\d+$", h));
            await ExpectAsync(client, "invoke get1:k", "Ok:from-a");

            // List and uninstall over DPDK.
            await ExpectAsync(client, "uninstall spin", "True");
            await ExpectAsync(client, "uninstall spin", "False");
            await ExpectAsync(client, "list", "get1");
            await ExpectAsync(client, "invoke spin", "NotFound/0");
            await ExpectAsync(client, "@b list", "get1");

            // Every session says goodbye (b by itself, the others when the client's input ends), then the client exits; the
            // node is still serving and stops cleanly.
            await ExpectAsync(client, "close b", "Ok");
            Assert.True(await client.CloseInputAndWaitAsync(TimeSpan.FromSeconds(60)) == 0, client.Log);
            Assert.Contains("bye", client.Log, StringComparison.Ordinal);
            // The exit code says how (a signal shows as 128 + its number: a crash in the DPDK driver has no .NET output).
            Assert.True(node.IsRunning, $"the node died (exit code {(node.IsRunning ? 0 : node.ExitCode)}):\n" + node.Log);
            Assert.True(await node.TerminateAsync(TimeSpan.FromSeconds(60)) == 0, node.Log);
            foreach (string log in new[] { node.Log, client.Log })
                output.WriteLine(string.Join(" | ", log.Split('\n').Where(l => l.Length > 0 && !l.StartsWith(NodeProcess.ReplyPrefix, StringComparison.Ordinal)).Take(12)));
        }
        catch (Exception)
        {
            // Both sides' output, for a failure that happened in the node (the client's is in most assertion messages).
            output.WriteLine($"{kind} failed at {clock.Elapsed.TotalSeconds:F1} s\nnode:\n{node.Log}\nclient:\n{client.Log}");
            throw;
        }
        output.WriteLine($"{kind}: done in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>A <c>client-over</c> process whose first session is <paramref name="tenant"/>'s; a failed start says what the node printed too.</summary>
    private static async Task<NodeProcess> StartClientAsync(NodeProcess node, string spec, string tenant, string secret)
    {
        try
        {
            return await NodeProcess.StartAsync(["client-over", spec, tenant, secret]);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"{e.Message}\nnode:\n{node.Log}", e);
        }
    }

    /// <summary>Sends <paramref name="command"/> to the script client and returns its results (after the view).</summary>
    private static async Task<string[]> AskAsync(NodeProcess client, string command, TimeSpan? timeout = null)
    {
        string[] words = (await client.RequestAsync(command, timeout)).Split(' ');
        Assert.StartsWith("view=", words[0], StringComparison.Ordinal);
        return words[1..];
    }

    private static Task ExpectAsync(NodeProcess client, string command, params string[] expected) => ExpectAsync(client, command, null, expected);

    private static async Task ExpectAsync(NodeProcess client, string command, TimeSpan? timeout, params string[] expected)
    {
        string[] results = await AskAsync(client, command, timeout);
        Assert.True(results.SequenceEqual(expected), $"'{command}': expected [{string.Join(' ', expected)}], got [{string.Join(' ', results)}]\n{client.Log}");
    }

    /// <inheritdoc/>
    public void Dispose() => _dir.Dispose();
}
