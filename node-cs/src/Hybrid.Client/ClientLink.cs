using System.Net.Sockets;
using System.Runtime.InteropServices;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Client;

/// <summary>
/// What carries a <see cref="HybridSession"/>'s frames: the node's native TCP socket (<see cref="SocketLink"/>, frames
/// back to back in a byte stream) or an <see cref="ITransportConnection"/> (<see cref="TransportLink"/>: shared
/// memory, DPDK, one message = one frame). The session calls <see cref="Send"/> under its lock, so the wire order is
/// the in-flight order; <see cref="Send"/> never waits for the peer (frames it cannot hand over at once are sent in the
/// background, in order), so the lock is never held while the node drains its input. One receive loop hands every reply
/// frame to the session in arrival order.
/// </summary>
internal abstract class ClientLink : IDisposable
{
    /// <summary>Called with each whole reply frame (CRC checked); the bytes are valid until the returned task completes.</summary>
    internal delegate ValueTask ReplyHandler(FrameHeader header, ReadOnlyMemory<byte> payload);

    /// <summary>
    /// Opens the link the options name: a transport session when <see cref="HybridClientOptions.Transport"/> is set (at the
    /// endpoint's own address when it is a <see cref="TransportEndPoint"/>, else at
    /// <see cref="HybridClientOptions.TransportAddress"/>), else a TCP socket.
    /// </summary>
    internal static async Task<ClientLink> ConnectAsync(HybridClientOptions options, CancellationToken cancellationToken)
    {
        var perNode = options.EndPoint as TransportEndPoint;
        if (options.Transport is { } transport)
        {
            string address = perNode?.Address ?? options.TransportAddress
                ?? throw new ArgumentException("HybridClientOptions.TransportAddress (or a TransportEndPoint) is required with a Transport");
            try
            {
                var connection = await transport.ConnectAsync(address, cancellationToken).ConfigureAwait(false);
                return new TransportLink(connection);
            }
            catch (TransportException e)
            {
                // The same failure as a refused socket connect: the caller may retry (nothing was sent).
                throw new HybridConnectionException("connect failed: " + e.Message, e);
            }
        }
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(perNode?.Native ?? options.EndPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new SocketLink(socket);
    }

    /// <summary>Sends one frame (the bytes may be reused once this returns). Throws <see cref="HybridConnectionException"/> when the link is broken.</summary>
    internal abstract void Send(ReadOnlyMemory<byte> frame);

    /// <summary>Receives one whole frame (handshake only, before the receive loop runs); returns a copy.</summary>
    internal abstract ValueTask<byte[]> ReceiveFrameAsync(CancellationToken cancellationToken);

    /// <summary>Receives reply frames until the link breaks (then throws), handing each to <paramref name="onReply"/> in order.</summary>
    internal abstract Task ReceiveLoopAsync(ReplyHandler onReply);

    /// <inheritdoc />
    public abstract void Dispose();

    /// <summary>Reads and checks the header and CRC of a whole frame.</summary>
    protected static FrameHeader CheckFrame(ReadOnlySpan<byte> frame)
    {
        if (FrameHeader.TryRead(frame, int.MaxValue, out var header) != Status.Ok || header.Length != frame.Length)
            throw new HybridProtocolException(Status.Malformed, "unreadable reply header");
        if (!header.CheckCrc(frame))
            throw new HybridProtocolException(Status.Malformed, "reply CRC mismatch");
        return header;
    }
}

/// <summary>The native protocol over the node's TCP port: frames back to back, cut by their Length field.</summary>
internal sealed class SocketLink : ClientLink
{
    private readonly Socket _socket;

    /// <summary>Frames waiting behind the send in progress, in order; also the lock of the send state.</summary>
    private readonly Queue<ReadOnlyMemory<byte>> _queue = new();

    /// <summary>The one send in progress (reused: a send that cannot complete at once allocates nothing).</summary>
    private readonly SocketAsyncEventArgs _send = new();
    private bool _sending;
    private bool _disposed;
    private Exception? _failed;

    internal SocketLink(Socket socket)
    {
        _socket = socket;
        _send.Completed += (_, _) => OnSent();
    }

    /// <remarks>
    /// Never blocks: the frame goes to the kernel at once when nothing is queued and the socket's buffer has room (one
    /// non-blocking send, as before); otherwise it queues behind the send in progress, which completes in the background.
    /// A blocking send here would hold the session lock while the node, which stops reading a connection whose replies
    /// it cannot send, waits for this session's receive loop, which needs that lock: a deadlock that no timeout breaks.
    /// The frame's buffer belongs to a batch in flight, not reused before its reply (or before the link is broken),
    /// so it stays valid until the send completes. A failed send closes the socket, so the receive loop ends and the
    /// session breaks the link.
    /// </remarks>
    internal override void Send(ReadOnlyMemory<byte> frame)
    {
        lock (_queue)
        {
            if (_failed is { } failed)
                throw new HybridConnectionException("send failed: " + failed.Message, failed);
            if (_sending)
            {
                _queue.Enqueue(frame);
                return;
            }
            _sending = true;
        }
        SendFrom(frame);
    }

    /// <summary>Sends <paramref name="bytes"/> and then the queued frames, until a send must wait (its completion goes on).</summary>
    private void SendFrom(ReadOnlyMemory<byte> bytes)
    {
        while (true)
        {
            _send.SetBuffer(MemoryMarshal.AsMemory(bytes));
            try
            {
                if (_socket.SendAsync(_send))
                    return; // OnSent goes on
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Fail(e);
                return;
            }
            if (!Next(out bytes))
                return;
        }
    }

    private void OnSent()
    {
        if (Next(out var bytes))
            SendFrom(bytes);
    }

    /// <summary>After a send completed: the rest of its frame, else the next queued frame; false when there is none (or it failed).</summary>
    private bool Next(out ReadOnlyMemory<byte> bytes)
    {
        if (_send.SocketError != SocketError.Success || _send.BytesTransferred <= 0)
        {
            Fail(_send.SocketError != SocketError.Success ? new SocketException((int)_send.SocketError) : new SocketException((int)SocketError.ConnectionReset));
            bytes = default;
            return false;
        }
        var rest = _send.MemoryBuffer[_send.BytesTransferred..];
        if (!rest.IsEmpty)
        {
            bytes = rest;
            return true;
        }
        lock (_queue)
        {
            if (_queue.TryDequeue(out bytes))
                return true;
            _sending = false;
            if (_disposed)
                _send.Dispose();
            return false;
        }
    }

    private void Fail(Exception e)
    {
        lock (_queue)
        {
            _failed = e;
            _queue.Clear();
            _sending = false;
            if (_disposed)
                _send.Dispose();
        }
        _socket.Dispose();
    }

    internal override async ValueTask<byte[]> ReceiveFrameAsync(CancellationToken cancellationToken)
    {
        var head = new byte[FrameHeader.Size];
        await ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        if (FrameHeader.TryRead(head, 1 << 20, out var header) != Status.Ok)
            throw new HybridProtocolException(Status.Malformed, "unreadable handshake reply");
        var frame = new byte[header.Length];
        head.CopyTo(frame, 0);
        await ReadExactlyAsync(frame.AsMemory(FrameHeader.Size), cancellationToken).ConfigureAwait(false);
        CheckFrame(frame);
        return frame;
    }

    private async Task ReadExactlyAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new HybridConnectionException("the node closed the connection during the handshake");
            buffer = buffer[n..];
        }
    }

    internal override async Task ReceiveLoopAsync(ReplyHandler onReply)
    {
        var buffer = new byte[64 * 1024];
        int start = 0, end = 0;
        while (true)
        {
            if (end == buffer.Length)
            {
                if (start > 0)
                {
                    buffer.AsSpan(start, end - start).CopyTo(buffer);
                    end -= start;
                    start = 0;
                }
                else
                    Array.Resize(ref buffer, buffer.Length * 2);
            }
            int n = await _socket.ReceiveAsync(buffer.AsMemory(end), SocketFlags.None).ConfigureAwait(false);
            if (n == 0)
                throw new HybridConnectionException("the node closed the connection");
            end += n;
            while (end - start >= FrameHeader.Size)
            {
                if (FrameHeader.TryRead(buffer.AsSpan(start, end - start), int.MaxValue, out var header) != Status.Ok)
                    throw new HybridProtocolException(Status.Malformed, "unreadable reply header");
                if (end - start < header.Length)
                    break;
                var frame = buffer.AsMemory(start, header.Length);
                start += header.Length;
                if (!header.CheckCrc(frame.Span))
                    throw new HybridProtocolException(Status.Malformed, "reply CRC mismatch");
                await onReply(header, frame[FrameHeader.Size..]).ConfigureAwait(false);
            }
            if (start == end)
                start = end = 0;
        }
    }

    public override void Dispose()
    {
        _socket.Dispose();
        lock (_queue)
        {
            // A send still in progress completes with an error on the closed socket and disposes it then (Fail).
            _disposed = true;
            if (!_sending)
                _send.Dispose();
        }
    }
}

/// <summary>
/// The native protocol over a message transport: each frame is one message, each reply one message. Pipelined sends
/// are fine on every transport (DPDK sessions queue them and send one at a time, as its request/reply contract says).
/// </summary>
internal sealed class TransportLink(ITransportConnection connection) : ClientLink
{
    /// <summary>Sends still running (a full shm ring), in order; null when none. Touched only under the session lock.</summary>
    private Task? _sending;

    /// <remarks>
    /// Never waits: a send the transport cannot finish at once (the ring is full) completes in the background and later
    /// frames queue behind it, so the session lock is never held while the node drains the ring (the node may itself
    /// be waiting for this session's receive loop, which needs that lock). The frame's buffer belongs to a batch in
    /// flight, which is not reused before its reply, so it stays valid until the send completes.
    /// </remarks>
    internal override void Send(ReadOnlyMemory<byte> frame)
    {
        if (_sending is { IsCompleted: true } done)
        {
            _sending = null;
            if (!done.IsCompletedSuccessfully)
                throw new HybridConnectionException("send failed: " + done.Exception?.GetBaseException().Message, done.Exception?.GetBaseException());
        }
        if (_sending is { } earlier)
        {
            _sending = SendAfterAsync(earlier, frame);
            return;
        }
        try
        {
            var send = connection.SendAsync(frame);
            if (!send.IsCompletedSuccessfully)
                _sending = send.AsTask();
        }
        catch (TransportException e)
        {
            throw new HybridConnectionException("send failed: " + e.Message, e);
        }
    }

    private async Task SendAfterAsync(Task earlier, ReadOnlyMemory<byte> frame)
    {
        await earlier.ConfigureAwait(false);
        await connection.SendAsync(frame).ConfigureAwait(false);
    }

    internal override async ValueTask<byte[]> ReceiveFrameAsync(CancellationToken cancellationToken)
    {
        using var message = await ReceiveAsync(cancellationToken).ConfigureAwait(false);
        CheckFrame(message.Span);
        return message.Span.ToArray();
    }

    internal override async Task ReceiveLoopAsync(ReplyHandler onReply)
    {
        while (true)
        {
            var pending = ReceiveAsync(CancellationToken.None);
            TransportMessage message;
            if (pending.IsCompleted)
            {
                message = await pending.ConfigureAwait(false); // found while spinning: stay on this thread
            }
            else
            {
                // It blocked (shm doorbell, DPDK nap): the wake-up may come on the socket engine's own thread (hybrid
                // enables inline socket completions), which must not go on to spin for the next reply: hop off it.
                message = await pending.ConfigureAwait(false);
                await Task.Yield();
            }
            try
            {
                var header = CheckFrame(message.Span);
                await onReply(header, message.Memory[FrameHeader.Size..]).ConfigureAwait(false);
            }
            finally
            {
                message.Dispose();
            }
        }
    }

    private async ValueTask<TransportMessage> ReceiveAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await connection.ReceiveAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (TransportException e)
        {
            throw new HybridConnectionException("the node's session ended: " + e.Message, e);
        }
    }

    /// <summary>Says goodbye off the caller's thread: a DPDK session waits for the node's acknowledgement, and the session calls this under its lock.</summary>
    public override void Dispose() => ThreadPool.UnsafeQueueUserWorkItem(static c => c.Dispose(), connection, preferLocal: false);
}
