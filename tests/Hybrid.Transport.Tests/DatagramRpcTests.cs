using System.Buffers.Binary;
using Hybrid.Transport.Datagram;
using Hybrid.Transport.Peer;

namespace Hybrid.Transport.Tests;

/// <summary>
/// The datagram RPC (the protocol DPDK carries) over an in-memory lossy link: fragmentation, retransmission,
/// at-most-once execution, goodbye and peer loss, without DPDK.
/// </summary>
public sealed class DatagramRpcTests
{
    private static TransportOptions Options(TimeSpan peerTimeout) => new()
    {
        Kind = TransportKind.Dpdk,
        MaxMessageBytes = 1 << 20,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        Dpdk = new DpdkOptions { Vdev = "loopback", RetransmitTimeout = TimeSpan.FromMilliseconds(2), PeerTimeout = peerTimeout },
    };

    private sealed class Pair : IDisposable
    {
        public Pair(double dropRate, TimeSpan peerTimeout, int frameBytes = 1514)
        {
            (ServerLink, ClientLink) = LoopbackFrameLink.CreatePair(frameBytes, dropRate, seed: 42);
            Server = new DatagramTransport(ServerLink, Options(peerTimeout), "test");
            Client = new DatagramTransport(ClientLink, Options(peerTimeout), "test");
        }

        public LoopbackFrameLink ServerLink { get; }

        public LoopbackFrameLink ClientLink { get; }

        public DatagramTransport Server { get; }

        public DatagramTransport Client { get; }

        public void Dispose()
        {
            Client.Dispose();
            Server.Dispose();
        }
    }

    private static async Task<TransportError> KvServerAsync(ITransportListener listener, KvService service)
    {
        await using var connection = await listener.AcceptAsync();
        return await service.ServeAsync(connection);
    }

    private static async Task<string> CallAsync(ITransportConnection connection, string request)
    {
        await connection.SendAsync(System.Text.Encoding.UTF8.GetBytes(request));
        using var reply = await connection.ReceiveAsync();
        return System.Text.Encoding.UTF8.GetString(reply.Span);
    }

    [Fact]
    public async Task Writes_OverLossyLink_EachExecutesOnceAndReadsSeeThem()
    {
        using var pair = new Pair(dropRate: 0.2, TimeSpan.FromSeconds(5));
        await using var listener = pair.Server.Listen("7100");
        var service = new KvService();
        var server = Task.Run(() => KvServerAsync(listener, service));
        var session = (DatagramSession)await pair.Client.ConnectAsync("7100");
        for (int i = 0; i < 100; i++)
            Assert.Equal("ok", await CallAsync(session, $"W k{i} v{i}"));
        for (int i = 0; i < 100; i += 7)
            Assert.Equal($"v{i}", await CallAsync(session, $"R k{i}"));
        await session.SendAsync("C"u8.ToArray());
        using (var count = await session.ReceiveAsync())
            Assert.Equal(100, BinaryPrimitives.ReadInt32LittleEndian(count.Span));
        Assert.True(session.Retransmissions > 0, "a 20% loss rate must have forced retransmissions");
        Assert.True(pair.ClientLink.Dropped > 0 && pair.ServerLink.Dropped > 0);
        session.Dispose();
        Assert.Equal(TransportError.Closed, await server.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(100, service.Executed);
    }

    [Fact]
    public async Task LargeMessages_SplitToFramesWithLoss_ReassembleExactly()
    {
        using var pair = new Pair(dropRate: 0.05, TimeSpan.FromSeconds(5), frameBytes: 1024);
        await using var listener = pair.Server.Listen("1");
        var server = Task.Run(async () =>
        {
            await using var connection = await listener.AcceptAsync();
            for (int i = 0; i < 3; i++)
            {
                using var request = await connection.ReceiveAsync();
                var reply = request.Span.ToArray();
                Array.Reverse(reply);
                await connection.SendAsync(reply);
            }
        });
        var client = await pair.Client.ConnectAsync("1");
        foreach (int size in new[] { 0, 986, 200_000 })
        {
            var message = new byte[size];
            new Random(size).NextBytes(message);
            await client.SendAsync(message);
            using var reply = await client.ReceiveAsync();
            Array.Reverse(message);
            Assert.Equal(message, reply.Span.ToArray());
        }
        client.Dispose();
        await server.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Pipelined_RequestsQueuedBeforeReplies_AnsweredInOrder()
    {
        using var pair = new Pair(dropRate: 0.1, TimeSpan.FromSeconds(5));
        await using var listener = pair.Server.Listen("2");
        var server = Task.Run(() => KvServerAsync(listener, new KvService()));
        await using var client = await pair.Client.ConnectAsync("2");
        for (int i = 0; i < 20; i++)
            await client.SendAsync(System.Text.Encoding.UTF8.GetBytes($"W k{i} v{i}"));
        for (int i = 0; i < 20; i++)
        {
            using var reply = await client.ReceiveAsync();
            Assert.Equal("ok", System.Text.Encoding.UTF8.GetString(reply.Span));
        }
        Assert.Equal("v19", await CallAsync(client, "R k19"));
    }

    [Fact]
    public async Task ServerVanishes_ClientRequestFailsWithPeerTimeout()
    {
        using var pair = new Pair(dropRate: 0, TimeSpan.FromMilliseconds(300));
        await using var listener = pair.Server.Listen("3");
        var accepted = Task.Run(async () => await listener.AcceptAsync());
        await using var client = await pair.Client.ConnectAsync("3");
        await accepted;
        // The server process "dies": nobody polls its engine again, so nothing answers.
        await client.SendAsync("R x"u8.ToArray());
        var e = await Assert.ThrowsAsync<TransportException>(async () => await client.ReceiveAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(TransportError.PeerTimeout, e.Error);
    }

    [Fact]
    public async Task ClientVanishes_ServerReceiveFailsWithPeerTimeout()
    {
        // 1 s, not less: the first call must finish inside the peer timeout even on a loaded CI machine.
        using var pair = new Pair(dropRate: 0, TimeSpan.FromSeconds(1));
        await using var listener = pair.Server.Listen("4");
        var server = Task.Run(() => KvServerAsync(listener, new KvService()));
        var client = await pair.Client.ConnectAsync("4");
        Assert.Equal("ok", await CallAsync(client, "W a b"));
        // The client "dies": it stops polling, so no keepalive reaches the server.
        Assert.Equal(TransportError.PeerTimeout, await server.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Connect_NoListenerForService_FailsFast()
    {
        using var pair = new Pair(dropRate: 0, TimeSpan.FromSeconds(1));
        await using var listener = pair.Server.Listen("5");
        var polling = Task.Run(async () =>
        {
            try
            {
                await listener.AcceptAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
            }
            catch (OperationCanceledException)
            {
            }
        });
        var e = await Assert.ThrowsAsync<TransportException>(async () => await pair.Client.ConnectAsync("6"));
        Assert.Equal(TransportError.ConnectFailed, e.Error);
    }

    [Fact]
    public async Task ServerSend_WithoutPendingRequest_IsRefused()
    {
        // Nobody polls the client's engine while the server disposes: a short peer timeout ends the goodbye wait.
        using var pair = new Pair(dropRate: 0, TimeSpan.FromMilliseconds(300));
        await using var listener = pair.Server.Listen("8");
        var accepted = Task.Run(async () => await listener.AcceptAsync());
        await using var client = await pair.Client.ConnectAsync("8");
        await using var server = await accepted;
        var e = await Assert.ThrowsAsync<TransportException>(async () => await server.SendAsync(new byte[1]));
        Assert.Equal(TransportError.InvalidOperation, e.Error);
    }
}
