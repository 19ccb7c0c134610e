using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Hybrid.Transport.Tcp;

/// <summary>
/// One TCP session. Receives read ahead into a 64 KiB buffer so a batch of small messages costs one system
/// call; small sends are coalesced with their length prefix into one buffer and one system call.
/// </summary>
internal sealed class TcpConnection : ITransportConnection
{
    private const int BufferBytes = 64 << 10;
    private readonly Socket _socket;
    private readonly int _maxMessageBytes;
    private byte[] _receiveBuffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
    private readonly byte[] _sendBuffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
    private int _start;
    private int _end;
    private int _disposed;

    public TcpConnection(Socket socket, int maxMessageBytes)
    {
        _socket = socket;
        _socket.NoDelay = true;
        _maxMessageBytes = maxMessageBytes;
        RemoteAddress = socket.RemoteEndPoint?.ToString() ?? "tcp";
    }

    public string RemoteAddress { get; }

    public async ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        if (message.Length > _maxMessageBytes)
            throw new TransportException(TransportError.MessageTooLarge, $"{message.Length} bytes > {_maxMessageBytes}");
        try
        {
            if (message.Length + 4 <= _sendBuffer.Length)
            {
                BinaryPrimitives.WriteInt32LittleEndian(_sendBuffer, message.Length);
                message.Span.CopyTo(_sendBuffer.AsSpan(4));
                await SendAllAsync(_sendBuffer.AsMemory(0, message.Length + 4), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                BinaryPrimitives.WriteInt32LittleEndian(_sendBuffer, message.Length);
                await SendAllAsync(_sendBuffer.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);
                await SendAllAsync(message, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Lost(e);
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            int sent = await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            bytes = bytes[sent..];
        }
    }

    public bool TryReceive(out TransportMessage message)
    {
        if (TryTake(out message))
            return true;
        try
        {
            if (_socket.Available == 0)
            {
                // Poll(0) tells a closed peer (readable with nothing to read) from an idle one.
                if (_socket.Poll(0, SelectMode.SelectRead) && _socket.Available == 0)
                    throw new TransportException(TransportError.Closed, "peer closed the connection");
                return false;
            }
            MakeRoom();
            Received(_socket.Receive(_receiveBuffer.AsSpan(_end), SocketFlags.None));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Lost(e);
        }
        return TryTake(out message);
    }

    // Pooled state machine: a receive that completes asynchronously allocates nothing in the steady state.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportMessage> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            while (true)
            {
                if (TryTake(out var message))
                    return message;
                MakeRoom();
                Received(await _socket.ReceiveAsync(_receiveBuffer.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false));
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Lost(e);
        }
    }

    private void Received(int count)
    {
        if (count == 0)
        {
            throw _end == _start
                ? new TransportException(TransportError.Closed, "peer closed the connection")
                : new TransportException(TransportError.ConnectionLost, "peer closed in the middle of a message");
        }
        _end += count;
    }

    /// <summary>Takes one whole message from the read-ahead buffer if it is all there.</summary>
    private bool TryTake(out TransportMessage message)
    {
        message = default;
        int available = _end - _start;
        if (available < 4)
            return false;
        int length = ReadLength();
        if (available - 4 < length)
            return false;
        var buffer = TransportMessage.Rent(length);
        _receiveBuffer.AsSpan(_start + 4, length).CopyTo(buffer);
        _start += 4 + length;
        if (_start == _end)
            _start = _end = 0;
        message = new TransportMessage(buffer, length);
        return true;
    }

    /// <summary>
    /// Makes room at the end of the read-ahead buffer for the rest of the message being received: moves unread
    /// bytes to the front, and grows the buffer for a message larger than it (rare: big batches).
    /// </summary>
    private void MakeRoom()
    {
        int available = _end - _start;
        int need = available >= 4 ? 4 + ReadLength() : 4;
        if (need > _receiveBuffer.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(need);
            _receiveBuffer.AsSpan(_start, available).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_receiveBuffer);
            _receiveBuffer = bigger;
            _start = 0;
            _end = available;
        }
        else if (_receiveBuffer.Length - _start < need || _end == _receiveBuffer.Length)
        {
            _receiveBuffer.AsSpan(_start, available).CopyTo(_receiveBuffer);
            _start = 0;
            _end = available;
        }
    }

    private int ReadLength()
    {
        int length = BinaryPrimitives.ReadInt32LittleEndian(_receiveBuffer.AsSpan(_start));
        if (length < 0 || length > _maxMessageBytes)
        {
            _socket.Dispose();
            throw new TransportException(TransportError.ProtocolViolation, $"message length {length} outside 0..{_maxMessageBytes}");
        }
        return length;
    }

    private TransportException Lost(Exception e) =>
        Volatile.Read(ref _disposed) != 0
            ? new TransportException(TransportError.Closed, "connection disposed", e)
            : new TransportException(TransportError.ConnectionLost, $"{RemoteAddress}: {e.Message}", e);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer: nothing left to say goodbye to.
        }
        // The read-ahead and send buffers are left to the GC: a receive may still be running on another thread.
        _socket.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
