using System.Net;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tests.Node;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Transport;

/// <summary>
/// The default tenant skips AUTH only when nothing the node listens on is reachable from another host: a
/// message-transport listener on a network link (af_packet, a non-loopback <c>tcp:</c>) makes every tenant
/// authenticate, on every listener, as a non-loopback bind address does.
/// </summary>
public sealed class ListenerExposureTests
{
    [Theory]
    [InlineData("shm:/tmp/hyb-exposure.sock", true)]
    [InlineData("memif:/tmp/hyb-exposure-memif.sock", true)]
    [InlineData("tcp:127.0.0.1:9000", true)]
    [InlineData("tcp:localhost:9000", true)]
    [InlineData("af_packet:veth-x", false)]
    [InlineData("tcp:0.0.0.0:9000", false)]
    [InlineData("tcp:10.1.2.3:9000", false)]
    public void A_listener_is_host_local_only_when_no_other_host_can_reach_it(string spec, bool local)
    {
        Assert.Equal(local, TransportListenerOptions.FromSpec(spec).IsHostLocal);
        var options = new HybridNodeOptions { DataDirectory = "unused", Transports = [TransportListenerOptions.FromSpec(spec)] };
        Assert.True(IPAddress.IsLoopback(options.BindAddress));
        Assert.Equal(local, options.IsLoopbackOnly);
    }

    [Theory]
    [InlineData("tcp:0.0.0.0:0", false)]
    [InlineData("tcp:127.0.0.1:0", true)]
    public async Task With_a_listener_on_a_network_link_the_default_tenant_must_authenticate_even_over_loopback(string spec, bool defaultMayConnect)
    {
        string directory = TestNode.NewDirectory();
        try
        {
            // Stopped (end of this block) before its directory is deleted: the store's commit loop writes there.
            await using var node = new HybridNode(new HybridNodeOptions
            {
                DataDirectory = directory,
                NativePort = 0,
                RespPort = -1,
                MetricsPort = -1,
                Transports = [TransportListenerOptions.FromSpec(spec)],
                MemoryBudgetBytes = 1 << 20,
                Limits = TestNode.Limits,
                ConfigureStore = s => s with { PageSizeBytes = 16 * 1024, MemoryBudgetBytes = 1 << 20, IndexBuckets = 1 << 12 },
            });
            await node.StartAsync();
            var client = new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, node.NativePort), Timeout = TimeSpan.FromSeconds(20) };
            if (defaultMayConnect)
            {
                await using HybridSession session = await HybridSession.ConnectAsync(client);
                Assert.Equal(Status.Ok, (await session.PutAsync(0, "k"u8, "v"u8)).Status);
            }
            else
            {
                // An exposed node has no secretless default tenant at all (HybridNode.EnsureTenantsMayConnect).
                var refused = await Assert.ThrowsAsync<HybridProtocolException>(() => HybridSession.ConnectAsync(client));
                Assert.Equal(Status.UnknownTenant, refused.Status);
            }
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }

    [Fact]
    public async Task A_loopback_node_over_a_directory_that_served_exposed_gives_default_the_id_a_cluster_reserves_for_it()
    {
        // An exposed cluster node adopted the cluster's tenants (ids from 2) and created no default.
        string directory = TestNode.NewDirectory();
        Directory.CreateDirectory(directory);
        var registry = Hybrid.Node.Tenants.TenantRegistry.Open(directory);
        registry.ApplyAll([new(2, "alice", "a"u8.ToArray(), 0, 0), new(3, "bob", "b"u8.ToArray(), 0, 0)]);

        try
        {
            await using var node = await TestNode.StartAsync(directory: directory);
            Assert.True(node.Node.Tenants.TryGet("default", out var tenant));
            Assert.Equal(1u, tenant.Id);
            await using var session = await node.ConnectAsync();
            Assert.Equal(Status.Ok, (await session.PutAsync(0, "k"u8, "v"u8)).Status);
        }
        finally
        {
            TestNode.DeleteDirectory(directory);
        }
    }
}
