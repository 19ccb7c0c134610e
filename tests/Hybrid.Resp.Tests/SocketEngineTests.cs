using System.Net;
using System.Net.Sockets;
using System.Text;
using Hybrid.Node.Hosting;

namespace Hybrid.Resp.Tests;

/// <summary>
/// The node's own readiness loop (<see cref="SocketEngine.Polled"/>: epoll through libhyb_transport, edge-triggered,
/// non-blocking receive and send) against the traffic shapes that break such loops: a client that writes a flood
/// while it reads, replies larger than the socket buffers to a slow reader, requests cut into single bytes, peers that
/// reset, a stop with idle connections. Each runs on .NET's engine too, as the reference.
/// </summary>
public sealed class SocketEngineTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task DefaultEngine_IsThePolledLoop_WhenTheNativeLibraryIsBuilt()
    {
        // The test command builds transport-native first, so Auto must find it; a fallback here is a packaging bug.
        await using var node = await RespTestNode.StartAsync();
        Assert.True(node.Node.SocketEngine == SocketEngine.Polled, $"fell back to .NET's engine: {node.Node.SocketEngineFallback}");
        Assert.Equal("PONG", RedisTools.Cli(node.Port, "PING"));
        Assert.True(node.Node.PollerEvents > 0);
    }

    [Theory]
    [InlineData(SocketEngine.Polled, 20)]
    [InlineData(SocketEngine.Polled, 0)] // the poller sleeps in the kernel after every batch
    [InlineData(SocketEngine.DotNet, 0)]
    public async Task FloodWhileReading_EveryReplyArrives(SocketEngine sockets, int spinMicroseconds)
    {
        // redis-cli --pipe: the client keeps writing while replies flow back, so both directions fill up and the
        // loop must notice input that arrived while it was sending (an event lost there stalls the connection).
        await using var node = await RespTestNode.StartAsync(sockets: sockets, pollerSpin: TimeSpan.FromMicroseconds(spinMicroseconds));
        const int commands = 200_000;
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, node.Port);
        var stream = client.GetStream();
        using var timeout = new CancellationTokenSource(Patience);
        var writer = Task.Run(async () =>
        {
            var chunk = new StringBuilder();
            for (int i = 0; i < commands; i++)
            {
                string key = "flood:" + i;
                chunk.Append("*3\r\n$3\r\nSET\r\n$").Append(key.Length).Append("\r\n").Append(key).Append("\r\n$5\r\nvalue\r\n");
                if (chunk.Length > 60_000 || i == commands - 1)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes(chunk.ToString()), timeout.Token);
                    chunk.Clear();
                }
            }
        });
        var buffer = new byte[64 * 1024];
        long expected = commands * 5L; // "+OK\r\n" each
        long received = 0;
        while (received < expected)
        {
            int n = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(n > 0, $"connection closed after {received} of {expected} reply bytes");
            for (int i = 0; i < n; i++)
                Assert.Equal((byte)"+OK\r\n"[(int)((received + i) % 5)], buffer[i]);
            received += n;
        }
        await writer;
        Assert.Equal("value", RedisTools.Cli(node.Port, "GET", "flood:" + (commands - 1)));
    }

    [Theory]
    [InlineData(SocketEngine.Polled)]
    [InlineData(SocketEngine.DotNet)]
    public async Task LargeReply_ToASlowReader_ArrivesWhole(SocketEngine sockets)
    {
        await using var node = await RespTestNode.StartAsync(sockets: sockets);
        var value = new byte[512 * 1024];
        for (int i = 0; i < value.Length; i++)
            value[i] = (byte)('a' + (i % 26));
        using var client = new TcpClient { NoDelay = true, ReceiveBufferSize = 4096 };
        await client.ConnectAsync(IPAddress.Loopback, node.Port);
        var stream = client.GetStream();
        using var timeout = new CancellationTokenSource(Patience);
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${value.Length}\r\n"), timeout.Token);
        await stream.WriteAsync(value, timeout.Token);
        await stream.WriteAsync("\r\n"u8.ToArray(), timeout.Token);
        Assert.Equal("+OK\r\n", Encoding.ASCII.GetString(await ReadExactlyAsync(stream, 5, timeout.Token)));

        // 8 copies in one reply (4 MiB, far beyond the socket buffers), read slowly: the node's sends would block
        // many times and must resume when room frees up.
        await stream.WriteAsync("*9\r\n$4\r\nMGET\r\n"u8.ToArray(), timeout.Token);
        for (int i = 0; i < 8; i++)
            await stream.WriteAsync("$3\r\nbig\r\n"u8.ToArray(), timeout.Token);
        string header = $"${value.Length}\r\n";
        int total = 4 + 8 * (header.Length + value.Length + 2);
        var reply = new byte[total];
        int read = 0;
        while (read < total)
        {
            int n = await stream.ReadAsync(reply.AsMemory(read, Math.Min(16 * 1024, total - read)), timeout.Token);
            Assert.True(n > 0, $"connection closed after {read} of {total} bytes");
            read += n;
            if (read < total / 4)
                await Task.Delay(1, timeout.Token); // slow at first, so the node's sends hit a full buffer
        }
        Assert.Equal("*8\r\n", Encoding.ASCII.GetString(reply, 0, 4));
        int at = 4;
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(header, Encoding.ASCII.GetString(reply, at, header.Length));
            at += header.Length;
            Assert.True(value.AsSpan().SequenceEqual(reply.AsSpan(at, value.Length)), $"copy {i} differs");
            at += value.Length + 2;
        }
    }

    [Theory]
    [InlineData(SocketEngine.Polled)]
    [InlineData(SocketEngine.DotNet)]
    public async Task RequestsCutIntoSingleBytes_AreAnsweredInOrder(SocketEngine sockets)
    {
        await using var node = await RespTestNode.StartAsync(sockets: sockets);
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, node.Port);
        var stream = client.GetStream();
        using var timeout = new CancellationTokenSource(Patience);
        var pipeline = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"u8.ToArray();
        foreach (byte b in pipeline)
        {
            await stream.WriteAsync(new[] { b }, timeout.Token);
            await Task.Yield();
        }
        const string expected = "+OK\r\n$3\r\nabc\r\n+PONG\r\n";
        Assert.Equal(expected, Encoding.ASCII.GetString(await ReadExactlyAsync(stream, expected.Length, timeout.Token)));
    }

    [Theory]
    [InlineData(SocketEngine.Polled)]
    [InlineData(SocketEngine.DotNet)]
    public async Task PeersThatReset_AreClosed_OthersKeepBeingServed(SocketEngine sockets)
    {
        await using var node = await RespTestNode.StartAsync(sockets: sockets);
        for (int i = 0; i < 50; i++)
        {
            var doomed = new Socket(SocketType.Stream, ProtocolType.Tcp) { LingerState = new LingerOption(true, 0) };
            await doomed.ConnectAsync(IPAddress.Loopback, node.Port);
            await doomed.SendAsync("*2\r\n$3\r\nGET\r\n$5\r\nhal"u8.ToArray()); // half a command
            doomed.Close(); // linger 0: RST
        }
        Assert.Equal("PONG", RedisTools.Cli(node.Port, "PING"));
        var deadline = DateTime.UtcNow + Patience;
        while (node.Node.ConnectionCount > 0 && DateTime.UtcNow < deadline)
            await Task.Delay(20);
        Assert.Equal(0, node.Node.ConnectionCount);
    }

    [Theory]
    [InlineData(SocketEngine.Polled)]
    [InlineData(SocketEngine.DotNet)]
    public async Task Stop_WithIdleConnections_ClosesThem(SocketEngine sockets)
    {
        var node = await RespTestNode.StartAsync(sockets: sockets);
        var clients = new List<TcpClient>();
        try
        {
            for (int i = 0; i < 10; i++)
            {
                var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, node.Port);
                await client.GetStream().WriteAsync("*1\r\n$4\r\nPING\r\n"u8.ToArray());
                Assert.Equal("+PONG\r\n", Encoding.ASCII.GetString(await ReadExactlyAsync(client.GetStream(), 7, CancellationToken.None)));
                clients.Add(client);
            }
            var stopping = node.DisposeAsync().AsTask();
            Assert.True(await Task.WhenAny(stopping, Task.Delay(Patience)) == stopping, "the node did not stop");
            await stopping;
            foreach (var client in clients)
            {
                using var timeout = new CancellationTokenSource(Patience);
                int n = await client.GetStream().ReadAsync(new byte[16], timeout.Token);
                Assert.Equal(0, n); // end of stream: the node closed it
            }
        }
        finally
        {
            foreach (var client in clients)
                client.Dispose();
        }
    }

    private static async Task<byte[]> ReadExactlyAsync(NetworkStream stream, int length, CancellationToken cancellation)
    {
        var buffer = new byte[length];
        await stream.ReadExactlyAsync(buffer, cancellation);
        return buffer;
    }
}
