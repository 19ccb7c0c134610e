using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

public class TenantTests
{
    private static readonly byte[] s_secretA = Encoding.UTF8.GetBytes("secret-of-a");
    private static readonly byte[] s_secretB = Encoding.UTF8.GetBytes("secret-of-b");

    [Fact]
    public async Task Auth_RightSecret_Opens_WrongSecretOrUnknownTenant_Refused()
    {
        await using var node = await TestNode.StartAsync();
        node.Node.Tenants.Create("a", s_secretA);

        await using (var ok = await node.ConnectAsync("a", s_secretA))
            Assert.Equal(Status.Ok, (await ok.PutAsync(0, "k"u8, "v"u8)).Status);

        var wrong = await Assert.ThrowsAsync<HybridProtocolException>(() => node.ConnectAsync("a", s_secretB));
        Assert.Equal(Status.Unauthorized, wrong.Status);
        var none = await Assert.ThrowsAsync<HybridProtocolException>(() => node.ConnectAsync("a", []));
        Assert.Equal(Status.Unauthorized, none.Status);
        var unknown = await Assert.ThrowsAsync<HybridProtocolException>(() => node.ConnectAsync("nobody"));
        Assert.Equal(Status.UnknownTenant, unknown.Status);
    }

    [Fact]
    public async Task Auth_WrongProof_OverRawSocket_UnauthorizedAndClosed()
    {
        await using var node = await TestNode.StartAsync();
        node.Node.Tenants.Create("a", s_secretA);
        using var raw = RawConnection.Open(node.EndPoint);
        raw.Send(RawConnection.Frame(1, 0, 0, b => b.AppendRequest(OpCode.Hello, 0, "a"u8, default)));
        var challenge = raw.Receive().Results[0];
        Assert.Equal((Status.Ok, AuthProof.Size), (challenge.Status, challenge.Value.Length));
        var proof = new byte[AuthProof.Size];
        AuthProof.Compute(s_secretB, challenge.Value, proof);
        raw.Send(RawConnection.Frame(1, 0, 0, b => b.AppendRequest(OpCode.Auth, 0, default, proof)));
        Assert.Equal(Status.Unauthorized, raw.Receive().Results[0].Status);
        Assert.True(raw.IsClosedByPeer());
    }

    [Fact]
    public async Task Sessions_ReachOnlyTheirOwnTenantsKeys()
    {
        await using var node = await TestNode.StartAsync();
        node.Node.Tenants.Create("a", s_secretA);
        node.Node.Tenants.Create("b", s_secretB);
        await using var a = await node.ConnectAsync("a", s_secretA);
        await using var b = await node.ConnectAsync("b", s_secretB);
        await using var d = await node.ConnectAsync();

        await a.PutAsync(0, "shared-name"u8, "a's"u8);
        Assert.Equal(Status.NotFound, (await b.GetAsync(0, "shared-name"u8)).Status);
        Assert.Equal(Status.NotFound, (await d.GetAsync(0, "shared-name"u8)).Status);
        Assert.Equal(Status.NotFound, (await b.DeleteAsync(0, "shared-name"u8)).Status);
        await b.PutAsync(0, "shared-name"u8, "b's"u8);
        Assert.Equal("a's", Encoding.UTF8.GetString((await a.GetAsync(0, "shared-name"u8)).Value!));
        Assert.Equal("b's", Encoding.UTF8.GetString((await b.GetAsync(0, "shared-name"u8)).Value!));
    }

    [Fact]
    public async Task OpsQuota_Exhausted_QuotaExceeded_OtherTenantsUnaffected()
    {
        await using var node = await TestNode.StartAsync(workers: 1);
        node.Node.Tenants.Create("slow", s_secretA, maxOpsPerSecond: 20);
        await using var slow = await node.ConnectAsync("slow", s_secretA);
        await using var other = await node.ConnectAsync();
        // 20 ops/s with a 2-op burst: the first batch of 40 is admitted (2 s into debt), the next ones are refused.
        var statuses = new List<Status>();
        for (int i = 0; i < 3; i++)
        {
            var batch = new HybridBatch();
            for (int j = 0; j < 40; j++)
                batch.Get(0, "k"u8.ToArray());
            statuses.AddRange((await slow.ExecuteAsync(batch)).Select(r => r.Status));
        }
        Assert.All(statuses.Take(40), s => Assert.Equal(Status.NotFound, s));
        Assert.All(statuses.Skip(40), s => Assert.Equal(Status.QuotaExceeded, s));
        for (int i = 0; i < 40; i++)
            Assert.Equal(Status.NotFound, (await other.GetAsync(0, "k"u8)).Status);
        Assert.Contains("hybrid_quota_rejections_total{tenant=\"slow\"}", node.Node.ScrapeMetrics());
    }

    [Fact]
    public async Task OpsQuota_charges_a_multi_get_one_op_per_key()
    {
        // A native MultiGet was charged as one operation, so 8,000 keys per batch went through a 1,000 ops/s quota
        // (found by review); RESP's MGET was already charged per key.
        await using var node = await TestNode.StartAsync(workers: 1);
        node.Node.Tenants.Create("slow", s_secretA, maxOpsPerSecond: 20);
        await using var slow = await node.ConnectAsync("slow", s_secretA);
        var keys = Enumerable.Range(0, 40).Select(i => Encoding.ASCII.GetBytes($"k{i}")).ToList();
        var outcomes = new List<Status>();
        for (int i = 0; i < 4; i++)
        {
            try
            {
                var results = await slow.MultiGetAsync(0, keys);
                Assert.All(results, r => Assert.Equal(Status.NotFound, r.Status));
                outcomes.Add(Status.Ok);
            }
            catch (HybridProtocolException e)
            {
                outcomes.Add(e.Status);
            }
        }
        // 20 ops/s with a 2-op burst: the first 40 keys are admitted (2 s into debt), the next multi-gets are refused.
        Assert.Equal([Status.Ok, Status.QuotaExceeded, Status.QuotaExceeded, Status.QuotaExceeded], outcomes);
    }

    [Fact]
    public async Task A_quota_set_or_lifted_while_a_session_is_open_applies_to_that_session()
    {
        // Workers decided on the TenantInfo the connection authenticated with (found by review): an open session never
        // got a quota set later, and kept being refused after a quota was lifted.
        await using var node = await TestNode.StartAsync(workers: 1);
        node.Node.Tenants.Create("a", s_secretA);
        await using var session = await node.ConnectAsync("a", s_secretA);
        Assert.Equal(Status.NotFound, (await session.GetAsync(0, "k"u8)).Status);

        node.Node.Tenants.SetQuotas("a", 0, 20, null);
        await Task.Delay(200); // the worker refreshes its view of the tenants
        var statuses = new List<Status>();
        for (int i = 0; i < 3; i++)
        {
            var batch = new HybridBatch();
            for (int j = 0; j < 40; j++)
                batch.Get(0, "k"u8.ToArray());
            statuses.AddRange((await session.ExecuteAsync(batch)).Select(r => r.Status));
        }
        Assert.Contains(Status.QuotaExceeded, statuses);

        node.Node.Tenants.SetQuotas("a", 0, 0, null);
        await Task.Delay(200);
        for (int i = 0; i < 20; i++)
            Assert.Equal(Status.NotFound, (await session.GetAsync(0, "k"u8)).Status);
    }

    [Fact]
    public async Task MemoryQuota_Exhausted_WritesRefused_ReadsServed()
    {
        await using var node = await TestNode.StartAsync();
        node.Node.Tenants.Create("small", s_secretA, maxBytes: 4000);
        await using var client = await node.ConnectAsync("small", s_secretA);
        var value = new byte[200];
        var statuses = new List<Status>();
        for (int i = 0; i < 40; i++)
            statuses.Add((await client.PutAsync(0, Encoding.ASCII.GetBytes($"k{i}"), value)).Status);
        int accepted = statuses.TakeWhile(s => s == Status.Ok).Count();
        Assert.InRange(accepted, 5, 20); // 4000 bytes / (200 + key + overhead) per record
        Assert.Equal(Status.QuotaExceeded, statuses[^1]);
        Assert.Equal(Status.Ok, (await client.GetAsync(0, "k0"u8)).Status);
    }

    [Fact]
    public async Task Registry_PersistsTenantsAcrossRestart()
    {
        string directory = TestNode.NewDirectory();
        try
        {
            await using (var first = await TestNode.StartAsync(directory: directory))
                first.Node.Tenants.Create("kept", s_secretA, maxBytes: 123, maxOpsPerSecond: 45);
            await using var second = await TestNode.StartAsync(directory: directory);
            Assert.True(second.Node.Tenants.TryGet("kept", out var kept));
            Assert.Equal((123L, 45L, "secret-of-a"), (kept.MaxBytes, kept.MaxOpsPerSecond, Encoding.UTF8.GetString(kept.Secret)));
            await using var client = await second.ConnectAsync("kept", s_secretA);
            await client.NoopAsync();
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    /// <summary>
    /// Off loopback (the bind address, or a transport listener on a network link: docs/protocol.md) a secretless tenant
    /// stops the node from starting; the error names what is exposed, not the host-local listeners.
    /// </summary>
    [Theory]
    [InlineData("0.0.0.0", "memif:/tmp/hyb-exposed-refused.sock", "listening on 0.0.0.0 requires AUTH")]
    [InlineData("127.0.0.1", "tcp:0.0.0.0:0", "listening on tcp:0.0.0.0:0 requires AUTH")]
    [InlineData("127.0.0.1", "af_packet:veth-x", "listening on af_packet (net_af_packet0,iface=veth-x) requires AUTH")]
    [InlineData("0.0.0.0", "tcp:10.1.2.3:0", "listening on 0.0.0.0, tcp:10.1.2.3:0 requires AUTH")]
    public async Task ExposedNode_TenantWithoutSecret_RefusesToStart_NamingWhatIsExposed(string bind, string transport, string message)
    {
        string directory = TestNode.NewDirectory();
        try
        {
            TenantRegistry.Open(directory).Create(TenantInfo.DefaultName, []);
            var node = new HybridNode(new HybridNodeOptions
            {
                DataDirectory = directory,
                BindAddress = IPAddress.Parse(bind),
                NativePort = 0,
                RespPort = -1,
                MetricsPort = -1,
                Workers = 1,
                Transports = [TransportListenerOptions.FromSpec("shm:/tmp/hyb-local-refused.sock"), TransportListenerOptions.FromSpec(transport)],
            });
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => node.StartAsync());
            Assert.Contains(message, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("shm", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("memif", error.Message, StringComparison.Ordinal);
            await node.DisposeAsync();
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    [Fact]
    public async Task ASecondNodeOnTheSameDataDirectory_IsRefused_UntilTheFirstStops()
    {
        // A second node started on a running node's directory served beside it, and its acknowledged writes were gone
        // after the first one's next restart (found by an exploratory run).
        string directory = TestNode.NewDirectory();
        HybridNode Node() => new(new HybridNodeOptions { DataDirectory = directory, NativePort = 0, RespPort = -1, MetricsPort = -1, Workers = 1 });
        try
        {
            var first = Node();
            await first.StartAsync();
            var second = Node();
            var refused = await Assert.ThrowsAsync<IOException>(() => second.StartAsync());
            Assert.Equal($"data directory {directory} is in use by another node or tool (process {Environment.ProcessId}): stop it first, or use another directory", refused.Message);
            await second.DisposeAsync();
            Assert.Throws<IOException>(() => DataDirectoryLock.Acquire(directory).Dispose()); // a tool, too
            await first.DisposeAsync();
            var third = Node();
            await third.StartAsync(); // released at stop
            await third.DisposeAsync();
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }
}
