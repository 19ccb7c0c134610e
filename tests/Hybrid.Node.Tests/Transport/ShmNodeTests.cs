using System.Buffers.Binary;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Node.Tests.Transport;

/// <summary>The node's native protocol over the shared-memory transport: same workers, same front end, same store as TCP.</summary>
public class ShmNodeTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Shm_EveryOperation_AnsweredAndVisibleOverTcp()
    {
        await using var node = await ShmNode.StartAsync();
        await using var shm = await node.ConnectAsync();
        Assert.Equal(Status.Ok, (await shm.PutAsync(0, B("k1"), B("v1"))).Status);
        var get = await shm.GetAsync(0, B("k1"));
        Assert.Equal((Status.Ok, "v1"), (get.Status, Encoding.UTF8.GetString(get.Value!)));
        var cond = await shm.CondPutAsync(0, B("k1"), B("v2"), get.Version);
        Assert.Equal(Status.Ok, cond.Status);
        Assert.Equal(Status.VersionMismatch, (await shm.CondPutAsync(0, B("k1"), B("v3"), get.Version)).Status);
        var multi = await shm.MultiGetAsync(0, [B("k1"), B("absent")]);
        Assert.Equal([Status.Ok, Status.NotFound], multi.Select(r => r.Status));
        Assert.Equal(Status.Ok, (await shm.DeleteAsync(0, B("k1"))).Status);
        Assert.Equal(Status.NotFound, (await shm.GetAsync(0, B("k1"))).Status);
        await shm.NoopAsync();

        // Same store behind both front doors.
        await shm.PutAsync(0, B("shared"), B("from-shm"));
        await using var tcp = await node.ConnectTcpAsync();
        Assert.Equal("from-shm", Encoding.UTF8.GetString((await tcp.GetAsync(0, B("shared"))).Value!));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReusedBatchAndResults_ValuesCopiedPerBatch_OverShmAndTcp(bool shm)
    {
        await using var node = await ShmNode.StartAsync();
        await using var client = shm ? await node.ConnectAsync() : await node.ConnectTcpAsync();
        var batch = new HybridBatch();
        var results = new HybridBatchResults();
        for (int round = 0; round < 3; round++)
        {
            batch.Clear().Put(0, B("r"), B($"round-{round}")).Get(0, B("r")).Get(0, B("absent")).CondPut(0, B("r"), B("x"), 12345).Delete(0, B("none"));
            await client.ExecuteAsync(batch, results);
            Assert.Equal(5, results.Count);
            Assert.Equal([Status.Ok, Status.Ok, Status.NotFound, Status.VersionMismatch, Status.NotFound], Enumerable.Range(0, 5).Select(results.StatusAt));
            Assert.Equal($"round-{round}", Encoding.UTF8.GetString(results.ValueAt(1)));
            Assert.Equal(results.VersionAt(0), results.VersionAt(1));
            Assert.Equal(results.VersionAt(0), results.VersionAt(3)); // the current version after a mismatch
            Assert.True(results.ValueAt(2).IsEmpty);
        }
        // More requests than one frame holds (MaxBatchOps 256): the results still arrive whole and in order.
        batch.Clear();
        for (int i = 0; i < 600; i++)
            batch.Put(0, B($"big{i}"), B($"v{i}"));
        await client.ExecuteAsync(batch, results);
        batch.Clear();
        for (int i = 0; i < 600; i++)
            batch.Get(0, B($"big{i}"));
        await client.ExecuteAsync(batch, results);
        for (int i = 0; i < 600; i++)
            Assert.Equal($"v{i}", Encoding.UTF8.GetString(results.ValueAt(i)));
    }

    [Fact]
    public async Task Shm_ManyRequestsPipelined_AllAnsweredInOrder()
    {
        await using var node = await ShmNode.StartAsync();
        await using var client = await node.ConnectAsync(inFlight: 4);
        var puts = Enumerable.Range(0, 2000).Select(i => client.PutAsync(0, B($"p{i}"), B($"value-{i}")).AsTask()).ToArray();
        Assert.All(await Task.WhenAll(puts), r => Assert.Equal(Status.Ok, r.Status));
        var gets = Enumerable.Range(0, 2000).Select(i => client.GetAsync(0, B($"p{i}")).AsTask()).ToArray();
        var results = await Task.WhenAll(gets);
        for (int i = 0; i < results.Length; i++)
            Assert.Equal($"value-{i}", Encoding.UTF8.GetString(results[i].Value!));
    }

    [Fact]
    public async Task Shm_SmallRings_FullInBothDirections_EveryRequestAnswered()
    {
        // 64 KiB rings against ~1 MiB of requests and of replies in flight: the client's sends and the node's replies
        // both find the ring full and finish later (the client in the background, the node from a send completion).
        await using var node = await ShmNode.StartAsync(shmRingBytes: 64 << 10);
        await using var client = await HybridSession.ConnectAsync(new HybridClientOptions
        {
            Transport = node.ClientTransport,
            TransportAddress = node.Address,
            MaxInFlightBatches = 16,
            MaxBatchOps = 8,
            Timeout = TimeSpan.FromSeconds(30),
        });
        var value = new byte[8000];
        var puts = Enumerable.Range(0, 128).Select(i =>
        {
            value.AsSpan().Fill((byte)i);
            return client.PutAsync(0, B($"big{i}"), value).AsTask();
        }).ToArray();
        Assert.All(await Task.WhenAll(puts), r => Assert.Equal(Status.Ok, r.Status));
        var gets = await Task.WhenAll(Enumerable.Range(0, 128).Select(i => client.GetAsync(0, B($"big{i}")).AsTask()));
        for (int i = 0; i < gets.Length; i++)
        {
            Assert.Equal(8000, gets[i].Value!.Length);
            Assert.All(gets[i].Value!, b => Assert.Equal((byte)i, b));
        }
    }

    [Theory]
    [InlineData(TransportKind.SharedMemory)]
    [InlineData(TransportKind.Tcp)]
    public async Task Shm_Extensions_InstallInvokeYieldingAndHostile_WorkUnchanged(TransportKind kind)
    {
        await using var node = await ShmNode.StartAsync(kind: kind);
        await using var client = await node.ConnectAsync();
        Assert.True((await client.InstallExtensionAsync("getter", Hybrid.Extensions.ExtensionExamples.Source("get"))).Succeeded);
        Assert.True((await client.InstallExtensionAsync("spin", Extensions.ExtensionNodeTests.Spin)).Succeeded);
        Assert.Equal(Status.Ok, (await client.PutAsync(0, B("k"), B("over shm"))).Status);
        var hit = await client.InvokeAsync("getter", B("k"));
        Assert.Equal((Status.Ok, "over shm"), (hit.Status, Encoding.UTF8.GetString(hit.Value)));
        Assert.Equal(["getter", "spin"], (await client.ListExtensionsAsync()).Order(StringComparer.Ordinal));
        // A hostile extension is stopped with a clear status; the session keeps serving.
        var stopped = await client.InvokeAsync("spin", default);
        Assert.Equal(Status.ExtensionFailed, stopped.Status);
        Assert.Equal("over shm", Encoding.UTF8.GetString((await client.GetAsync(0, B("k"))).Value!));
    }

    [Fact]
    public async Task Shm_SyncDurability_RepliesAfterGroupCommit_WritesReadBack()
    {
        await using var node = await ShmNode.StartAsync(durability: Hybrid.Storage.DurabilityMode.Sync);
        await using var client = await node.ConnectAsync();
        var writes = Enumerable.Range(0, 50).Select(i => client.PutAsync(0, B($"d{i}"), B($"{i}")).AsTask()).ToArray();
        Assert.All(await Task.WhenAll(writes), w => Assert.Equal(Status.Ok, w.Status));
        Assert.Equal("49", Encoding.UTF8.GetString((await client.GetAsync(0, B("d49"))).Value!));
    }

    [Theory]
    [InlineData(TransportKind.SharedMemory)]
    [InlineData(TransportKind.Tcp)]
    public async Task Shm_ViewChanged_ClientResendsWithNewView(TransportKind kind)
    {
        await using var node = await ShmNode.StartAsync(kind: kind);
        await using var client = await node.ConnectAsync();
        await client.PutAsync(0, B("v"), B("before"));
        ulong before = client.View;
        node.Node.View.Advance(before + 3);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!node.Node.View.AllWorkersAtLeast(before + 3) && DateTime.UtcNow < deadline)
            await Task.Delay(1);
        var get = await client.GetAsync(0, B("v"));
        Assert.Equal(Status.Ok, get.Status);
        Assert.Equal(before + 3, client.View);
        Assert.Contains("status=\"viewchanged\"", node.Node.ScrapeMetrics());
    }

    [Theory]
    [InlineData(TransportKind.SharedMemory)]
    [InlineData(TransportKind.Tcp)]
    public async Task Shm_Tenants_AuthRequired_KeysIsolated(TransportKind kind)
    {
        await using var node = await ShmNode.StartAsync(kind: kind);
        var secret = B("secret-of-a");
        node.Node.Tenants.Create("a", secret);
        await using (var a = await node.ConnectAsync("a", secret))
            Assert.Equal(Status.Ok, (await a.PutAsync(0, B("mine"), B("a's"))).Status);
        var wrong = await Assert.ThrowsAsync<HybridProtocolException>(() => node.ConnectAsync("a", B("not-the-secret")));
        Assert.Equal(Status.Unauthorized, wrong.Status);
        await using var other = await node.ConnectAsync();
        Assert.Equal(Status.NotFound, (await other.GetAsync(0, B("mine"))).Status);
    }

    [Fact]
    public async Task Shm_MessageThatIsNotOneFrame_RejectedMalformedThenClosed_OthersServed()
    {
        await using var node = await ShmNode.StartAsync();
        await using var bystander = await node.ConnectAsync();
        await bystander.PutAsync(0, B("safe"), B("value"));

        using var raw = await node.ClientTransport.ConnectAsync(node.Address);
        using var frame = new FrameBuffer(256);
        int start = frame.BeginFrame();
        frame.AppendRequest(OpCode.Hello, 0, "default"u8, default);
        frame.EndFrame(start, FrameKind.Request, 1, 9, 0, 0);
        var bytes = frame.Written.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bytes, bytes.Length + 16); // the header claims more than the message holds
        await raw.SendAsync(bytes);
        using (var reply = await raw.ReceiveAsync())
        {
            Assert.Equal(Status.Ok, FrameHeader.TryRead(reply.Span, 1 << 20, out var header));
            Assert.Equal(FrameKind.Rejected, header.Kind);
            Assert.True(new ResultReader(reply.Span[FrameHeader.Size..]).TryRead(out var result));
            Assert.Equal(Status.Malformed, result.Status);
        }
        var end = await Assert.ThrowsAsync<TransportException>(async () => (await raw.ReceiveAsync()).Dispose());
        Assert.Equal(TransportError.Closed, end.Error);
        Assert.Equal("value", Encoding.UTF8.GetString((await bystander.GetAsync(0, B("safe"))).Value!));
    }

    [Fact]
    public async Task Shm_ClientProcessKilled9_NodeEndsItsSession_ServesNext()
    {
        await using var node = await ShmNode.StartAsync();
        using (var bench = HybridProcess.Start("bench", "--transport", "shm:" + node.Address, "--port", node.Node.NativePort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-w", "a", "--keys", "200", "--value-size", "16", "-s", "2", "-b", "4", "-p", "2", "--duration", "60", "--warmup", "0"))
        {
            bench.WaitForLine("A (zipf)", TimeSpan.FromSeconds(60)); // loaded over shm, now running reads and updates
            Assert.Equal(2, node.Node.ConnectionCount);
            bench.Kill9();
        }
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (node.Node.ConnectionCount > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        Assert.Equal(0, node.Node.ConnectionCount);
        await using var next = await node.ConnectAsync();
        var loaded = await next.GetAsync(0, B("user000000000007"));
        Assert.Equal(Status.Ok, loaded.Status);
    }
}
