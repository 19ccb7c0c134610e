using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Hybrid.Transport.SharedMemory;

/// <summary>
/// One shared-memory session: a mapped file holding two <see cref="ShmRing"/>s (client→server at
/// <see cref="DataOffset"/>, server→client after it) and a Unix socket beside it. The socket carries nothing
/// but doorbell bytes (to wake a consumer that stopped spinning) and its end-of-file tells that the peer process
/// is gone, even after <c>kill -9</c>.
/// </summary>
internal sealed class ShmConnection : ITransportConnection
{
    /// <summary>Magic number at offset 0 of the mapped file ("HYBSHM01").</summary>
    public const ulong Magic = 0x3130_4D48_5342_5948;

    /// <summary>Where the first ring's data starts; headers live below.</summary>
    public const int DataOffset = 4096;

    private const int RingHeader0 = 128;
    private const int RingHeader1 = 512;
    private const int LivenessCheckEvery = 4096;
    private static readonly long s_endOfFileConfirmTicks = Stopwatch.Frequency / 1000;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Socket _doorbell;
    private readonly ShmRing _tx;
    private readonly ShmRing _rx;
    private readonly int _maxMessageBytes;
    private readonly byte[] _bell = new byte[64];
    private byte[]? _partial;
    private int _partialHave;
    private int _emptyPolls;
    private int _endOfFileReadings;
    private long _endOfFileSince;
    private int _disposed;

    /// <summary>Bytes of the mapped file for rings of <paramref name="ringBytes"/>.</summary>
    public static long FileBytes(int ringBytes) => DataOffset + 2L * ringBytes;

    public unsafe ShmConnection(MemoryMappedFile file, Socket doorbell, int ringBytes, bool isClient, int maxMessageBytes, string remote)
    {
        _file = file;
        _doorbell = doorbell;
        _maxMessageBytes = maxMessageBytes;
        RemoteAddress = remote;
        _view = file.CreateViewAccessor(0, FileBytes(ringBytes));
        byte* basePtr = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
        basePtr += _view.PointerOffset;
        var toServer = new ShmRing(basePtr + RingHeader0, basePtr + DataOffset, ringBytes, isProducer: isClient);
        var toClient = new ShmRing(basePtr + RingHeader1, basePtr + DataOffset + ringBytes, ringBytes, isProducer: !isClient);
        _tx = isClient ? toServer : toClient;
        _rx = isClient ? toClient : toServer;
    }

    public string RemoteAddress { get; }

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        if (message.Length > _maxMessageBytes)
            throw new TransportException(TransportError.MessageTooLarge, $"{message.Length} bytes > {_maxMessageBytes}");
        Enter();
        try
        {
            var span = message.Span;
            int offset = 0;
            do
            {
                int chunk = Math.Min(span.Length - offset, _tx.MaxChunk);
                if (!_tx.TryWrite(span.Slice(offset, chunk), span.Length))
                    return SendSlowAsync(message, offset, cancellationToken);
                Ring();
                offset += chunk;
            }
            while (offset < span.Length);
            return ValueTask.CompletedTask;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>The ring is full: wait for the consumer (spin, yield, then 1 ms naps), watching that it still lives.</summary>
    private async ValueTask SendSlowAsync(ReadOnlyMemory<byte> message, int offset, CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        while (offset < message.Length)
        {
            int chunk = Math.Min(message.Length - offset, _tx.MaxChunk);
            bool written;
            Enter();
            try
            {
                written = _tx.TryWrite(message.Span.Slice(offset, chunk), message.Length);
                if (written)
                    Ring();
                else if (!backoff.Spinning)
                    CheckPeerAlive();
            }
            finally
            {
                Exit();
            }
            if (written)
            {
                offset += chunk;
                backoff.Reset();
            }
            else if (!backoff.Wait())
            {
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Wakes the consumer if it announced that it is going to block.</summary>
    private void Ring()
    {
        // Full fence between publishing the tail (in TryWrite) and reading the flag: pairs with the consumer's
        // fence between setting the flag and re-checking the ring, so one of the two always sees the other.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _tx.ConsumerSleeping) != 0 && Interlocked.Exchange(ref _tx.ConsumerSleeping, 0) != 0)
        {
            try
            {
                _doorbell.Send(_bell.AsSpan(0, 1));
            }
            catch (SocketException e)
            {
                throw new TransportException(TransportError.ConnectionLost, $"{RemoteAddress}: peer gone ({e.SocketErrorCode})", e);
            }
        }
    }

    public bool TryReceive(out TransportMessage message)
    {
        Enter();
        try
        {
            if (TryAssemble(out message))
                return true;
            if (++_emptyPolls >= LivenessCheckEvery)
            {
                _emptyPolls = 0;
                CheckPeerAlive();
            }
            return false;
        }
        finally
        {
            Exit();
        }
    }

    // Pooled state machine: a receive that completes asynchronously allocates nothing in the steady state.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportMessage> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var backoff = new Backoff();
        while (true)
        {
            if (TryReceiveQuiet(out var message))
                return message;
            if (backoff.Wait())
                continue;
            Volatile.Write(ref _rx.ConsumerSleeping, 1);
            Interlocked.MemoryBarrier();
            if (TryReceiveQuiet(out message))
            {
                Volatile.Write(ref _rx.ConsumerSleeping, 0);
                return message;
            }
            int n;
            try
            {
                n = await _doorbell.ReceiveAsync(_bell, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw Gone(e);
            }
            if (n == 0)
            {
                if (TryReceiveQuiet(out message))
                    return message;
                throw Gone(null);
            }
            backoff.Reset();
        }
    }

    private bool TryReceiveQuiet(out TransportMessage message)
    {
        Enter();
        try
        {
            return TryAssemble(out message);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Copies chunks out of the ring until one message is whole.</summary>
    private bool TryAssemble(out TransportMessage message)
    {
        while (_rx.TryPeek(out var chunk, out int total))
        {
            if (_partial is null)
            {
                if (total > _maxMessageBytes)
                    throw new TransportException(TransportError.ProtocolViolation, $"peer sent {total} bytes > {_maxMessageBytes}");
                _partial = TransportMessage.Rent(total);
                _partialHave = 0;
            }
            if (chunk.Length > total - _partialHave)
                throw new TransportException(TransportError.ProtocolViolation, "chunk overruns its message");
            chunk.CopyTo(_partial.AsSpan(_partialHave));
            _partialHave += chunk.Length;
            _rx.Advance(chunk.Length);
            if (_partialHave == total)
            {
                message = new TransportMessage(_partial, total);
                _partial = null;
                _emptyPolls = 0;
                return true;
            }
        }
        message = default;
        if (_rx.IsEmpty && _partial is null && Volatile.Read(ref _rx.WriterClosed) != 0)
            throw new TransportException(TransportError.Closed, $"{RemoteAddress} said goodbye");
        return false;
    }

    /// <summary>
    /// A readable socket with nothing to read is at end-of-file: the peer process is gone. One such reading is not
    /// proof: a doorbell byte makes the socket readable and a receive blocked on the doorbell on another thread (this
    /// side's consumer) may take it between the two calls. End-of-file lasts, a doorbell byte does not, so the peer
    /// counts as gone only when every reading for <see cref="s_endOfFileConfirmTicks"/> (and at least three) looked
    /// like it. The sender and a polling receiver may check at once: the counters are racy on purpose, a lost update
    /// only delays the verdict.
    /// </summary>
    private void CheckPeerAlive()
    {
        bool endOfFile;
        try
        {
            endOfFile = _doorbell.Poll(0, SelectMode.SelectRead) && _doorbell.Available == 0;
        }
        catch (SocketException e)
        {
            throw Gone(e);
        }
        if (!endOfFile)
        {
            _endOfFileReadings = 0;
            return;
        }
        long now = Stopwatch.GetTimestamp();
        if (_endOfFileReadings++ == 0)
            _endOfFileSince = now;
        else if (_endOfFileReadings >= 3 && now - _endOfFileSince >= s_endOfFileConfirmTicks)
            throw Gone(null);
    }

    private TransportException Gone(Exception? inner)
    {
        if (Volatile.Read(ref _disposed) != 0)
            return new TransportException(TransportError.Closed, "connection disposed", inner);
        if (Volatile.Read(ref _rx.WriterClosed) != 0)
            return new TransportException(TransportError.Closed, $"{RemoteAddress} said goodbye", inner);
        return new TransportException(TransportError.ConnectionLost, $"{RemoteAddress}: peer process gone without goodbye", inner);
    }

    /// <summary>Keeps the mapping alive for the duration of one call, so Dispose on another thread cannot unmap it underneath.</summary>
    private void Enter()
    {
        bool added = false;
        try
        {
            _view.SafeMemoryMappedViewHandle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException e)
        {
            throw new TransportException(TransportError.Closed, "connection disposed", e);
        }
    }

    private void Exit() => _view.SafeMemoryMappedViewHandle.DangerousRelease();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Volatile.Write(ref _tx.WriterClosed, 1);
        try
        {
            Ring();
            _doorbell.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or TransportException)
        {
            // The peer is already gone: nobody to say goodbye to.
        }
        _doorbell.Dispose();
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
