using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.ClientFaults;

/// <summary>One request of a batch a <see cref="FakeNode"/> received.</summary>
internal sealed record FakeRequest(OpCode Op, string Key, string Value, int Connection);

/// <summary>One request frame a <see cref="FakeNode"/> received on a connection after its Hello.</summary>
internal sealed record FakeBatch(FrameHeader Header, IReadOnlyList<FakeRequest> Requests);

/// <summary>
/// A scripted stand-in for a node on a loopback port: it answers Hello (no AUTH) with its <see cref="View"/>, then
/// hands each request frame to <see cref="OnBatch"/> (default: <see cref="Execute"/>), so a test decides exactly what
/// the client sees: replies, rejections, silence, a closed connection. A frame it cannot parse closes the connection,
/// as a node does.
/// </summary>
internal sealed class FakeNode : IAsyncDisposable
{
    private static readonly ProtocolLimits s_limits = new(256 << 20, 1 << 20, 256 << 20, 100_000);
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<FakeRequest> _executed = new();
    private readonly List<FakeConnection> _connections = [];
    private readonly Task _accepting;
    private long _view = 1;

    internal FakeNode()
    {
        _listener.Start();
        _accepting = AcceptAsync();
    }

    internal IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>The view Hello answers and rejections carry.</summary>
    internal ulong View
    {
        get => (ulong)Interlocked.Read(ref _view);
        set => Interlocked.Exchange(ref _view, (long)value);
    }

    /// <summary>What to do with each request frame (runs on the connection's loop: the next frame is read after it).</summary>
    internal Func<FakeConnection, FakeBatch, Task>? OnBatch { get; set; }

    /// <summary>Runs before a connection's Hello is answered (given the connection's index, from 0).</summary>
    internal Func<int, Task>? BeforeHello { get; set; }

    /// <summary>The requests executed (answered Ok by <see cref="Execute"/>), in execution order.</summary>
    internal IReadOnlyList<FakeRequest> Executed => [.. _executed];

    /// <summary>Connections accepted so far.</summary>
    internal IReadOnlyList<FakeConnection> Connections
    {
        get
        {
            lock (_connections)
                return [.. _connections];
        }
    }

    /// <summary>Logs the batch's requests as executed without answering (a reply lost with its connection).</summary>
    internal void Record(FakeBatch batch)
    {
        foreach (var request in batch.Requests)
            _executed.Enqueue(request);
    }

    /// <summary>Logs the batch's requests as executed and answers each Ok (version 1; a Get gets the value "v").</summary>
    internal async Task Execute(FakeConnection connection, FakeBatch batch)
    {
        using var frame = new FrameBuffer(256);
        int start = frame.BeginFrame();
        foreach (var request in batch.Requests)
        {
            _executed.Enqueue(request);
            frame.AppendResult(Status.Ok, 1, request.Op == OpCode.Get ? "v"u8 : default);
        }
        frame.EndFrame(start, FrameKind.Reply, (ushort)batch.Requests.Count, batch.Header.BatchSeq, batch.Header.SessionId, View);
        await connection.SendAsync(frame.WrittenMemory);
    }

    /// <summary>Rejects the whole batch with <paramref name="status"/> (the node ran none of it), carrying <see cref="View"/>.</summary>
    internal async Task Reject(FakeConnection connection, FakeBatch batch, Status status)
    {
        using var frame = new FrameBuffer(256);
        int start = frame.BeginFrame();
        frame.AppendResult(status, 0, default);
        frame.EndFrame(start, FrameKind.Rejected, 1, batch.Header.BatchSeq, batch.Header.SessionId, View);
        await connection.SendAsync(frame.WrittenMemory);
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                FakeConnection connection;
                lock (_connections)
                {
                    connection = new FakeConnection(socket, _connections.Count);
                    _connections.Add(connection);
                }
                connection.Loop = Task.Run(() => ServeAsync(connection));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync(FakeConnection connection)
    {
        try
        {
            var hello = await connection.ReceiveFrameAsync(_stop.Token);
            if (hello is null)
                return;
            if (BeforeHello is { } before)
                await before(connection.Index);
            using (var frame = new FrameBuffer(256))
            {
                int start = frame.BeginFrame();
                frame.AppendResult(Status.Ok, 0, default);
                frame.EndFrame(start, FrameKind.Reply, 1, hello.Value.Header.BatchSeq, (ulong)connection.Index + 1, View);
                await connection.SendAsync(frame.WrittenMemory);
            }
            while (await connection.ReceiveFrameAsync(_stop.Token) is { } received)
            {
                var requests = Parse(received.Header, received.Payload, connection.Index);
                if (requests is null)
                {
                    connection.Close(); // malformed: a node closes the connection
                    return;
                }
                await (OnBatch ?? Execute)(connection, new FakeBatch(received.Header, requests));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or IOException)
        {
        }
        finally
        {
            connection.ClientClosed.TrySetResult();
        }
    }

    private static List<FakeRequest>? Parse(FrameHeader header, byte[] payload, int connection)
    {
        var reader = new RequestReader(payload, header.Count, s_limits);
        var list = new List<FakeRequest>();
        for (int i = 0; i < header.Count; i++)
        {
            if (reader.TryRead(out var request) != Status.Ok)
                return null;
            list.Add(new FakeRequest(request.Op, Encoding.UTF8.GetString(request.Key), Encoding.UTF8.GetString(request.Value), connection));
        }
        return reader.AtEnd ? list : null;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _accepting;
        foreach (var connection in Connections)
            connection.Close();
        foreach (var connection in Connections)
        {
            if (connection.Loop is { } loop)
                await loop.WaitAsync(TimeSpan.FromSeconds(10));
        }
        _stop.Dispose();
    }
}

/// <summary>One connection a <see cref="FakeNode"/> accepted.</summary>
internal sealed class FakeConnection(Socket socket, int index)
{
    internal int Index { get; } = index;

    internal Task? Loop { get; set; }

    /// <summary>Completes when the client closed the connection (or it broke, or the fake closed it).</summary>
    internal TaskCompletionSource ClientClosed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
            bytes = bytes[await socket.SendAsync(bytes, SocketFlags.None)..];
    }

    /// <summary>Closes the connection (the client sees it end).</summary>
    internal void Close()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        socket.Dispose();
    }

    /// <summary>Reads one whole frame; null at the end of the stream.</summary>
    internal async Task<(FrameHeader Header, byte[] Payload)?> ReceiveFrameAsync(CancellationToken cancellationToken)
    {
        var head = new byte[FrameHeader.Size];
        if (!await ReadExactlyAsync(head, cancellationToken))
            return null;
        if (FrameHeader.TryRead(head, int.MaxValue, out var header) != Status.Ok)
            throw new IOException("unreadable frame header");
        var payload = new byte[header.Length - FrameHeader.Size];
        if (!await ReadExactlyAsync(payload, cancellationToken))
            return null;
        return (header, payload);
    }

    private async Task<bool> ReadExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (n == 0)
                return false;
            buffer = buffer[n..];
        }
        return true;
    }
}
