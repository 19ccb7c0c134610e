namespace Hybrid.Transport.Tests;

/// <summary>
/// The message contract over the in-process transports (TCP and shared memory): whole messages, in order,
/// request/reply, clear errors on goodbye, oversize and unreachable peers.
/// </summary>
public sealed class StreamTransportTests
{
    private static TransportOptions Options(string kind) => new()
    {
        Kind = TransportOptions.ParseKind(kind),
        MaxMessageBytes = 1 << 20,
        ShmRingBytes = 64 << 10,
        ConnectTimeout = TimeSpan.FromSeconds(2),
    };

    private static string Address(string kind) => kind == "tcp"
        ? "127.0.0.1:0"
        : Path.Combine(Path.GetTempPath(), $"hyb-test-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");

    /// <summary>A server that answers each request with its bytes reversed, until the client says goodbye.</summary>
    private static async Task<TransportError> ReverseServerAsync(ITransportListener listener)
    {
        await using var connection = await listener.AcceptAsync();
        while (true)
        {
            TransportMessage request;
            try
            {
                request = await connection.ReceiveAsync();
            }
            catch (TransportException e)
            {
                return e.Error;
            }
            using (request)
            {
                var reply = request.Span.ToArray();
                Array.Reverse(reply);
                await connection.SendAsync(reply);
            }
        }
    }

    /// <summary>A transport, a listener with <see cref="ReverseServerAsync"/> behind it, and one dialled client.</summary>
    private sealed class ReversePair : IAsyncDisposable
    {
        private readonly ITransport _transport;
        private readonly ITransportListener _listener;

        private ReversePair(ITransport transport, ITransportListener listener, ITransportConnection client)
        {
            _transport = transport;
            _listener = listener;
            Client = client;
        }

        public ITransportConnection Client { get; }

        public static async Task<ReversePair> StartAsync(string kind)
        {
            var transport = TransportFactory.Create(Options(kind));
            var listener = transport.Listen(Address(kind));
            _ = ReverseServerAsync(listener);
            return new ReversePair(transport, listener, await transport.ConnectAsync(listener.Address));
        }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await _listener.DisposeAsync();
            _transport.Dispose();
        }
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task Exchange_MessagesOfManySizes_RepliesMatchInOrder(string kind)
    {
        using var transport = TransportFactory.Create(Options(kind));
        await using var listener = transport.Listen(Address(kind));
        var server = ReverseServerAsync(listener);
        await using (var client = await transport.ConnectAsync(listener.Address))
        {
            int[] sizes = [0, 1, 100, 4096, 70_000, 300_000, 1 << 20];
            foreach (int size in sizes)
            {
                var request = Pattern(size, size);
                await client.SendAsync(request);
                using var reply = await client.ReceiveAsync();
                Array.Reverse(request);
                Assert.Equal(request, reply.Span.ToArray());
            }
        }
        Assert.Equal(TransportError.Closed, await server.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task Pipeline_ThousandRequestsBeforeReading_RepliesArriveInOrder(string kind)
    {
        await using var pair = await ReversePair.StartAsync(kind);
        var client = pair.Client;
        var reader = Task.Run(async () =>
        {
            for (int i = 0; i < 1000; i++)
            {
                using var reply = await client.ReceiveAsync();
                Assert.Equal(BitConverter.GetBytes(i).Reverse().ToArray(), reply.Span.ToArray());
            }
        });
        for (int i = 0; i < 1000; i++)
            await client.SendAsync(BitConverter.GetBytes(i));
        await reader.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task TryReceive_PolledUntilReplyArrives_ReturnsTheReply(string kind)
    {
        await using var pair = await ReversePair.StartAsync(kind);
        var client = pair.Client;
        Assert.False(client.TryReceive(out _));
        await client.SendAsync(new byte[] { 1, 2, 3 });
        var deadline = DateTime.UtcNow.AddSeconds(10);
        TransportMessage reply;
        while (!client.TryReceive(out reply))
        {
            Assert.True(DateTime.UtcNow < deadline, "no reply within 10 s");
            Thread.Yield();
        }
        using (reply)
            Assert.Equal(new byte[] { 3, 2, 1 }, reply.Span.ToArray());
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task Send_MessageAboveLimit_ThrowsMessageTooLarge(string kind)
    {
        await using var pair = await ReversePair.StartAsync(kind);
        var client = pair.Client;
        var e = await Assert.ThrowsAsync<TransportException>(async () => await client.SendAsync(new byte[(1 << 20) + 1]));
        Assert.Equal(TransportError.MessageTooLarge, e.Error);
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task Connect_NobodyListening_ThrowsConnectFailed(string kind)
    {
        using var transport = TransportFactory.Create(Options(kind));
        string address = kind == "tcp" ? "127.0.0.1:1" : Address(kind);
        var e = await Assert.ThrowsAsync<TransportException>(async () => await transport.ConnectAsync(address));
        Assert.Equal(TransportError.ConnectFailed, e.Error);
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("shm")]
    public async Task Receive_ServerSaysGoodbye_ClientGetsClosed(string kind)
    {
        using var transport = TransportFactory.Create(Options(kind));
        await using var listener = transport.Listen(Address(kind));
        var accepted = listener.AcceptAsync().AsTask();
        await using var client = await transport.ConnectAsync(listener.Address);
        var server = await accepted;
        await server.SendAsync(new byte[] { 9 });
        server.Dispose();
        using (var last = await client.ReceiveAsync())
            Assert.Equal(new byte[] { 9 }, last.Span.ToArray());
        var e = await Assert.ThrowsAsync<TransportException>(async () => await client.ReceiveAsync());
        Assert.Equal(TransportError.Closed, e.Error);
    }
}
