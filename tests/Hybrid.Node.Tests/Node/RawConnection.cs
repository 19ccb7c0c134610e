using System.Net;
using System.Net.Sockets;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

/// <summary>A bare socket speaking (or deliberately breaking) the wire format byte by byte.</summary>
internal sealed class RawConnection : IDisposable
{
    private readonly Socket _socket = new(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = 10_000 };

    private RawConnection()
    {
    }

    internal ulong SessionId { get; private set; }

    internal ulong View { get; private set; }

    internal static RawConnection Open(IPEndPoint endpoint)
    {
        var raw = new RawConnection();
        raw._socket.Connect(endpoint);
        return raw;
    }

    /// <summary>Opens a session of the default tenant (no AUTH on a loopback node), with Hello <paramref name="options"/> if given.</summary>
    internal static RawConnection OpenDefault(IPEndPoint endpoint, byte? options = null)
    {
        var raw = Open(endpoint);
        byte[] value = options is { } o ? [o] : [];
        raw.Send(Frame(1, 0, 0, b => b.AppendRequest(OpCode.Hello, 0, "default"u8, value)));
        var (header, results) = raw.Receive();
        Assert.Equal(FrameKind.Reply, header.Kind);
        Assert.Equal(Status.Ok, results[0].Status);
        raw.SessionId = header.SessionId;
        raw.View = header.View;
        return raw;
    }

    /// <summary>Builds one request frame with a correct CRC.</summary>
    internal static byte[] Frame(ushort count, ulong session, ulong view, Action<FrameBuffer> requests, uint seq = 7)
    {
        using var buffer = new FrameBuffer(256);
        int start = buffer.BeginFrame();
        requests(buffer);
        buffer.EndFrame(start, FrameKind.Request, count, seq, session, view);
        return buffer.Written.ToArray();
    }

    internal void Send(ReadOnlySpan<byte> bytes) => _socket.Send(bytes);

    internal void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    /// <summary>Reads one whole frame and its results.</summary>
    internal (FrameHeader Header, List<(Status Status, ulong Version, byte[] Value)> Results) Receive()
    {
        var head = new byte[FrameHeader.Size];
        ReadExactly(head);
        Assert.Equal(Status.Ok, FrameHeader.TryRead(head, int.MaxValue, out var header));
        var frame = new byte[header.Length];
        head.CopyTo(frame, 0);
        ReadExactly(frame.AsSpan(FrameHeader.Size));
        Assert.True(header.CheckCrc(frame));
        var results = new List<(Status, ulong, byte[])>();
        var reader = new ResultReader(frame.AsSpan(FrameHeader.Size));
        while (reader.TryRead(out var r))
            results.Add((r.Status, r.Version, r.Value.ToArray()));
        Assert.Equal(header.Count, results.Count);
        return (header, results);
    }

    /// <summary>True when the node closed the connection (end of stream) within the receive timeout.</summary>
    internal bool IsClosedByPeer()
    {
        var one = new byte[1];
        try
        {
            return _socket.Receive(one) == 0;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return true;
        }
    }

    private void ReadExactly(Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int n = _socket.Receive(buffer);
            if (n == 0)
                throw new IOException("connection closed before a whole frame");
            buffer = buffer[n..];
        }
    }

    public void Dispose() => _socket.Dispose();
}
