using Hybrid.Transport.Peer;

namespace Hybrid.Transport.Tests;

/// <summary>
/// <c>kill -9</c> of a peer process over TCP and shared memory: the survivor (this test host) gets a clear
/// error on that connection and keeps working. Shared memory tells a killed peer (<c>ConnectionLost</c>) from
/// a goodbye (<c>Closed</c>) through the end-of-file of its Unix socket; TCP cannot (the kernel sends FIN).
/// </summary>
public sealed class StreamPeerKillTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    private static string Address(string kind) => kind == "tcp"
        ? "127.0.0.1:0"
        : Path.Combine(Path.GetTempPath(), $"hyb-kill-{Environment.ProcessId}-{Guid.NewGuid():N}.sock");

    private static TransportOptions Options(string kind) => new() { Kind = TransportOptions.ParseKind(kind), MaxMessageBytes = 1 << 20 };

    [Theory]
    [InlineData("tcp", TransportError.Closed)]
    [InlineData("shm", TransportError.ConnectionLost)]
    public async Task ServerKilled9_ClientGetsClearErrorAndCanDialAnother(string kind, TransportError expected)
    {
        using var transport = TransportFactory.Create(Options(kind));
        using (var server = PeerProcess.Start("serve", kind, Address(kind)))
        {
            string address = server.WaitFor(s_wait, "ready").Split(' ')[1];
            await using var connection = await transport.ConnectAsync(address);
            await connection.SendAsync("W a b"u8.ToArray());
            using (var reply = await connection.ReceiveAsync())
                Assert.Equal("ok"u8.ToArray(), reply.Span.ToArray());
            server.Kill9();
            var e = await Assert.ThrowsAsync<TransportException>(async () => await connection.ReceiveAsync().AsTask().WaitAsync(s_wait));
            Assert.Equal(expected, e.Error);
        }
        using var next = PeerProcess.Start("serve", kind, Address(kind));
        await using var again = await transport.ConnectAsync(next.WaitFor(s_wait, "ready").Split(' ')[1]);
        await again.SendAsync("R a"u8.ToArray());
        using var empty = await again.ReceiveAsync();
        Assert.Equal(0, empty.Length);
    }

    [Theory]
    [InlineData("tcp", TransportError.Closed)]
    [InlineData("shm", TransportError.ConnectionLost)]
    public async Task ClientKilled9_ServerEndsThatSessionAndAcceptsTheNext(string kind, TransportError expected)
    {
        using var transport = TransportFactory.Create(Options(kind));
        await using var listener = transport.Listen(Address(kind));
        var service = new KvService();
        foreach (bool kill in new[] { true, false })
        {
            using var client = PeerProcess.Start("client", kind, listener.Address, "--scenario", kill ? "kill" : "kv", "--count", "5");
            await using var session = await listener.AcceptAsync().AsTask().WaitAsync(s_wait);
            var served = service.ServeAsync(session);
            if (kill)
            {
                Assert.Equal("ready", client.WaitFor(s_wait, "ready", "fail", "error"));
                client.Kill9();
                Assert.Equal(expected, await served.WaitAsync(s_wait));
            }
            else
            {
                Assert.Equal("ok", client.WaitFor(s_wait, "ok", "fail", "error"));
                Assert.Equal(TransportError.Closed, await served.WaitAsync(s_wait));
            }
        }
    }
}
