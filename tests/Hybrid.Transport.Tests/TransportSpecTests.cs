namespace Hybrid.Transport.Tests;

/// <summary>The CLI's transport specs map onto transport options and addresses (no transport is created here).</summary>
public class TransportSpecTests
{
    [Fact]
    public void Shm_PathIsTheAddress()
    {
        var spec = TransportSpec.Parse("shm:/tmp/hybrid-7100.sock", server: true);
        Assert.Equal(("shm", TransportKind.SharedMemory, "/tmp/hybrid-7100.sock"), (spec.Name, spec.Options.Kind, spec.Address));
    }

    [Fact]
    public void BareShmAndMemif_DefaultPaths()
    {
        Assert.Equal(TransportSpec.DefaultShmPath, TransportSpec.Parse("shm", server: false).Address);
        Assert.Equal($"net_memif0,role=client,socket={TransportSpec.DefaultMemifSocket}", TransportSpec.Parse("memif", server: false).Options.Dpdk.Vdev);
    }

    [Theory]
    [InlineData("memif:/tmp/m.sock", true, "net_memif0,role=server,socket=/tmp/m.sock", "7100")]
    [InlineData("memif:/tmp/m.sock@7200", false, "net_memif0,role=client,socket=/tmp/m.sock", "7200")]
    [InlineData("af_packet:veth0", true, "net_af_packet0,iface=veth0", "7100")]
    public void Dpdk_VdevRoleAndService(string text, bool server, string vdev, string service)
    {
        var spec = TransportSpec.Parse(text, server);
        Assert.Equal(TransportKind.Dpdk, spec.Options.Kind);
        Assert.Equal(vdev, spec.Options.Dpdk.Vdev);
        Assert.Equal(service, spec.Address);
        // Each process its own EAL file prefix, server and client distinct.
        int prefix = spec.Options.Dpdk.EalArgs.ToList().IndexOf("--file-prefix");
        Assert.Contains(server ? "node" : "client", spec.Options.Dpdk.EalArgs[prefix + 1]);
        spec.Options.Validate();
    }

    [Theory]
    [InlineData("af_packet")]
    [InlineData("shm:")]
    [InlineData("rdma:x")]
    [InlineData("memif:/tmp/m.sock@notaport")]
    [InlineData("af_packet:@7100")]
    public void Malformed_ArgumentException(string text) => Assert.Throws<ArgumentException>(() => TransportSpec.Parse(text, server: true));
}
