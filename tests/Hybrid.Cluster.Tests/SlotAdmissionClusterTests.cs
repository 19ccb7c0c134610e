using System.Net;
using System.Net.Sockets;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// Ownership is enforced by the nodes, not only by the client's routing: a batch for a slot a node does not own in the
/// view it executes in is refused (native NotOwner), and the RESP port answers <c>-MOVED</c> to the owner's RESP
/// endpoint, as the decisions in the metadata say, before and after a migration.
/// </summary>
public sealed class SlotAdmissionClusterTests
{
    /// <summary>Sends one RESP command and returns the first line of the reply.</summary>
    private static async Task<string> RespAsync(int port, params string[] args)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, port);
        var command = new StringBuilder($"*{args.Length}\r\n");
        foreach (string a in args)
            command.Append($"${Encoding.UTF8.GetByteCount(a)}\r\n{a}\r\n");
        await socket.SendAsync(Encoding.UTF8.GetBytes(command.ToString()));
        var reply = new byte[512];
        int length = 0;
        while (length == 0 || reply.AsSpan(0, length).IndexOf("\r\n"u8) < 0)
        {
            int n = await socket.ReceiveAsync(reply.AsMemory(length));
            Assert.True(n > 0, "the node closed the RESP connection");
            length += n;
        }
        return Encoding.UTF8.GetString(reply, 0, reply.AsSpan(0, length).IndexOf("\r\n"u8));
    }

    /// <summary>Polls until <paramref name="reply"/> matches (the RESP map follows the metadata within a few hundred ms).</summary>
    private static async Task<string> EventuallyAsync(Func<Task<string>> reply, Func<string, bool> expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string last;
        while (!expected(last = await reply()) && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        return last;
    }

    private static string KeyOfSlotIn(Node.Cluster.SlotRange range)
    {
        for (int i = 0; ; i++)
        {
            string key = "k" + i;
            if (range.ContainsKey(Encoding.UTF8.GetBytes(key)))
                return key;
        }
    }

    [Fact]
    public async Task Nodes_refuse_keys_they_do_not_own_natively_with_NotOwner_and_over_RESP_with_MOVED_to_the_owner()
    {
        await using InProcessCluster cluster = await InProcessCluster.CreateAsync(ranges: 2);
        ClusterNodeHost n1 = await cluster.StartNodeAsync("n1", resp: true);
        ClusterNodeHost n2 = await cluster.StartNodeAsync("n2", resp: true);
        var setup = cluster.Metadata;
        string key = KeyOfSlotIn(setup.Ranges["r1"]);
        int slot = Storage.Slot.Of(Encoding.UTF8.GetBytes(key));
        int resp1 = n1.Member.Node.PortOf("resp"), resp2 = n2.Member.Node.PortOf("resp");

        // n2 owns nothing: a plain session (no routing map) is refused; RESP redirects to n1, which serves the key.
        await using (HybridSession atN2 = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, n2.Member.Node.NativePort) }))
        {
            var refused = await Assert.ThrowsAsync<HybridProtocolException>(async () => await atN2.PutAsync(0, Encoding.UTF8.GetBytes(key), [1]));
            Assert.Equal(Status.NotOwner, refused.Status);
        }
        Assert.Equal($"-MOVED {slot} 127.0.0.1:{resp1}", await EventuallyAsync(() => RespAsync(resp2, "SET", key, "v1"), r => r.StartsWith("-MOVED", StringComparison.Ordinal)));
        Assert.Equal("+OK", await RespAsync(resp1, "SET", key, "v1"));

        // A session opened at n1 before the migration, following its views after it, is refused there too.
        await using HybridSession atN1 = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, n1.Member.Node.NativePort) });
        Assert.Equal(Status.Ok, (await atN1.PutAsync(0, Encoding.UTF8.GetBytes(key), [2])).Status);
        await n2.Member.MigrateHereAsync(["r1"]);
        Assert.Null(n2.Member.Status.Error);
        var moved = await Assert.ThrowsAsync<HybridProtocolException>(async () => await atN1.PutAsync(0, Encoding.UTF8.GetBytes(key), [3]));
        Assert.Equal(Status.NotOwner, moved.Status); // ViewChanged first (the session resends in n1's new view), then NotOwner
        Assert.Equal($"-MOVED {slot} 127.0.0.1:{resp2}", await EventuallyAsync(() => RespAsync(resp1, "GET", key), r => r.Contains(resp2.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)));

        // The RESP write before the migration moved with the range (the native write of [2] replaced it); n2 serves it.
        Assert.Equal("$1", await RespAsync(resp2, "GET", key));
        await using HybridSession atN2Now = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, n2.Member.Node.NativePort) });
        GetResult got = await atN2Now.GetAsync(0, Encoding.UTF8.GetBytes(key));
        Assert.Equal([2], got.Value);
        // Keys of the range n1 kept still run there.
        string kept = KeyOfSlotIn(setup.Ranges["r2"]);
        Assert.Equal(Status.Ok, (await atN1.PutAsync(0, Encoding.UTF8.GetBytes(kept), [4])).Status);
        Assert.Equal("+OK", await RespAsync(resp1, "SET", kept, "v"));
    }
}
