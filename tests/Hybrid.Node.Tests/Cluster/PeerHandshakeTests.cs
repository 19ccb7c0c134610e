using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Node.Cluster;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>
/// The peer port's handshake (<see cref="PeerHandshake"/>) over real sockets: a node answers nothing on its peer port
/// (no pull, no drop, no control) to a connection that does not prove the cluster's peer key in a protocol version it
/// speaks, says why, and keeps serving its own cluster; and a migration target does not trust a "source" that cannot
/// prove the key either.
/// </summary>
public sealed class PeerHandshakeTests : IDisposable
{
    private const int Records = 500;
    private readonly PeerPortFixture _port = new(s =>
    {
        for (int i = 0; i < Records; i++)
            s.Put(TwoNodes.Key(i), TwoNodes.Value(i));
    });

    public void Dispose() => _port.Dispose();

    [Fact]
    public async Task A_peer_with_another_key_is_refused_by_name_and_the_port_serves_its_own_cluster_on()
    {
        using (var stranger = new NetworkPeer(_port.Server.EndPoint, RandomNumberGenerator.GetBytes(PeerHandshake.KeyBytes)))
        {
            var refused = await Assert.ThrowsAsync<PeerException>(() => stranger.VersionFloorAsync().AsTask());
            Assert.Equal("peer authentication failed: wrong cluster peer key", refused.Message);
        }
        Assert.Equal(1, _port.Server.Refused);
        Assert.Contains("wrong cluster peer key", _port.Server.LastRefusal);

        using var member = new NetworkPeer(_port.Server.EndPoint, TestPeerKey.Value);
        Assert.Equal(_port.Source.VersionFloor, await member.VersionFloorAsync());
        Assert.Equal(1, _port.Server.Refused);
    }

    [Fact]
    public void A_drop_sent_without_the_handshake_is_refused_unread_and_removes_nothing()
    {
        using (var raw = Connect(out byte[] hello))
        {
            Assert.Equal(PeerFrame.Hello, hello[0]);
            Assert.Equal(PeerHandshake.Version, BinaryPrimitives.ReadUInt16LittleEndian(hello.AsSpan(1)));
            // Drop of every slot: [length 9][op 0x33][i32 lo][i32 hi]
            var drop = new byte[4 + 9];
            BinaryPrimitives.WriteUInt32LittleEndian(drop, 9);
            drop[4] = (byte)PeerOp.Drop;
            BinaryPrimitives.WriteInt32LittleEndian(drop.AsSpan(5), 0);
            BinaryPrimitives.WriteInt32LittleEndian(drop.AsSpan(9), Slot.Count - 1);
            raw.Send(drop);
            (byte status, string message) = ReadFrame(raw);
            Assert.Equal(PeerFrame.Failed, status);
            Assert.Equal("peer authentication failed: the first frame was op 0x33, not Authenticate", message);
            Assert.Equal(0, raw.Receive(new byte[16])); // and the server closed the connection
        }
        Assert.Equal(1, _port.Server.Refused);
        Assert.Equal(Records, Count());
    }

    [Fact]
    public void A_client_of_another_protocol_version_is_told_both_versions()
    {
        using var raw = Connect(out _);
        var frame = new byte[4 + 1 + 2 + 64];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)(frame.Length - 4));
        frame[4] = (byte)PeerOp.Authenticate;
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(5), PeerHandshake.Version + 1);
        raw.Send(frame);
        (byte status, string message) = ReadFrame(raw);
        Assert.Equal(PeerFrame.Failed, status);
        Assert.Equal($"peer protocol version {PeerHandshake.Version + 1} is not this node's ({PeerHandshake.Version}): run the same HybridKV build on every node", message);
    }

    [Fact]
    public void An_oversized_first_frame_closes_the_connection_without_reading_it()
    {
        using var raw = Connect(out _);
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32LittleEndian(header, PeerFrame.MaxPayloadBytes); // 64 MiB announced
        header[4] = (byte)PeerOp.Authenticate;
        raw.Send(header);
        Assert.Equal(0, raw.Receive(new byte[16]));
        Assert.Equal(1, _port.Server.Refused);
        Assert.Contains("peer frame of", _port.Server.LastRefusal);
    }

    [Fact]
    public async Task A_target_does_not_trust_a_source_that_cannot_prove_the_key()
    {
        // A squatter on a node's port: greets like a node, then "accepts" with a made-up proof.
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        Task serve = Task.Run(async () =>
        {
            using Socket s = await squatter.AcceptSocketAsync();
            var frame = new PeerMessage();
            frame.Begin(PeerFrame.Hello).U16(PeerHandshake.Version).Bytes(new byte[32]).Send(s);
            frame.Receive(s);
            frame.Begin(PeerFrame.Ok).Bytes(new byte[32]).Send(s);
            await Task.Delay(1000);
        });
        using var peer = new NetworkPeer((IPEndPoint)squatter.LocalEndpoint, TestPeerKey.Value);
        var e = await Assert.ThrowsAsync<PeerException>(() => peer.VersionFloorAsync().AsTask());
        Assert.Contains("does not hold the cluster's peer key", e.Message);
        await serve;
    }

    [Fact]
    public async Task A_port_that_never_greets_is_an_unreachable_peer_within_the_connect_timeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start(); // the kernel accepts; nobody speaks
        using var peer = new NetworkPeer((IPEndPoint)silent.LocalEndpoint, TestPeerKey.Value) { ConnectTimeout = TimeSpan.FromMilliseconds(300) };
        var e = await Assert.ThrowsAsync<IOException>(() => peer.VersionFloorAsync().AsTask());
        Assert.Contains("did not connect and authenticate", e.Message);
    }

    [Fact]
    public void A_key_of_the_wrong_length_is_refused_at_construction()
    {
        var e = Assert.Throws<ArgumentException>(() => new NetworkPeer(_port.Server.EndPoint, new byte[16]));
        Assert.StartsWith("a peer key is 32 bytes, not 16", e.Message);
    }

    private Socket Connect(out byte[] hello)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 10_000 };
        socket.Connect(_port.Server.EndPoint);
        (byte status, _) = ReadFrame(socket, out hello);
        Assert.Equal(PeerFrame.Hello, status);
        return socket;
    }

    private static (byte Status, string Message) ReadFrame(Socket socket) => ReadFrame(socket, out _);

    /// <summary>One frame: its status byte and payload (as text, and raw in <paramref name="whole"/> from the status byte on).</summary>
    private static (byte Status, string Message) ReadFrame(Socket socket, out byte[] whole)
    {
        byte[] header = ReadExactly(socket, 4);
        whole = ReadExactly(socket, (int)BinaryPrimitives.ReadUInt32LittleEndian(header));
        return (whole[0], Encoding.UTF8.GetString(whole, 1, whole.Length - 1));
    }

    private static byte[] ReadExactly(Socket socket, int n)
    {
        var bytes = new byte[n];
        for (int read = 0; read < n;)
        {
            int got = socket.Receive(bytes, read, n - read, SocketFlags.None);
            Assert.True(got > 0, "the server closed the connection early");
            read += got;
        }
        return bytes;
    }

    private int Count()
    {
        int n = 0;
        using var s = new SyncSession(_port.Store.Store.NewSession());
        for (int i = 0; i < Records; i++)
        {
            if (s.Get(TwoNodes.Key(i)) is not null)
                n++;
        }
        return n;
    }
}
