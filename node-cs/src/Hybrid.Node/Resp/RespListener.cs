using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// Lends storage sessions to RESP connections for the duration of one <see cref="RespSession.Process"/> call.
/// The node lends the worker's own session; <see cref="KvSessionPool"/> is the standalone form.
/// </summary>
public interface IKvSessionSource
{
    /// <summary>A session no other thread uses until <see cref="Return"/>.</summary>
    IKvSession Rent();

    /// <summary>Gives back a session from <see cref="Rent"/>.</summary>
    void Return(IKvSession session);
}

/// <summary>
/// A lock-free pool of <see cref="IKvSession"/>s: as many sessions as calls in flight at once (about the number of
/// threads running connections), each used by one thread at a time.
/// </summary>
public sealed class KvSessionPool : IKvSessionSource, IDisposable
{
    private readonly IKvStore _store;
    private readonly ConcurrentStack<IKvSession> _free = new();
    private readonly ConcurrentBag<IKvSession> _all = [];

    /// <summary>Creates an empty pool over <paramref name="store"/>; sessions are opened on demand.</summary>
    public KvSessionPool(IKvStore store) => _store = store;

    /// <inheritdoc />
    public IKvSession Rent()
    {
        if (_free.TryPop(out var session))
        {
            return session;
        }
        session = _store.NewSession();
        _all.Add(session);
        return session;
    }

    /// <inheritdoc />
    public void Return(IKvSession session) => _free.Push(session);

    /// <summary>Disposes every session the pool opened (call after all connections stopped).</summary>
    public void Dispose()
    {
        foreach (var session in _all)
        {
            session.Dispose();
        }
    }
}

/// <summary>
/// A RESP TCP listener: accepts connections and serves each with a <see cref="RespSession"/>: receive into the
/// connection's buffer, process every complete command, one send for all the replies. A protocol violation or a
/// failure closes only that connection.
/// </summary>
/// <remarks>
/// Socket completions run this loop; set <c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c> in the node's
/// environment to run it on the socket engine's threads (no thread-pool hop per receive).
/// </remarks>
public sealed class RespListener : IAsyncDisposable
{
    private const int InitialReceiveBuffer = 16 * 1024;

    private readonly RespServerContext _context;
    private readonly IKvSessionSource _sessions;
    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<long, Socket> _connections = new();
    private Task _acceptLoop = Task.CompletedTask;

    /// <summary>Binds to <paramref name="endpoint"/> (port 0 picks a free port; see <see cref="LocalEndPoint"/>).</summary>
    public RespListener(RespServerContext context, IKvSessionSource sessions, IPEndPoint endpoint)
    {
        _context = context;
        _sessions = sessions;
        _socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _socket.Bind(endpoint);
        LocalEndPoint = (IPEndPoint)_socket.LocalEndPoint!;
    }

    /// <summary>The bound endpoint.</summary>
    public IPEndPoint LocalEndPoint { get; }

    /// <summary>Optional log of connection failures (one line each); null = silent.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Starts listening and accepting.</summary>
    public void Start()
    {
        _socket.Listen(512);
        _acceptLoop = AcceptLoopAsync();
    }

    /// <summary>Stops accepting, closes every connection and waits for their loops to end.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket.Dispose();
        foreach (var connection in _connections.Values)
        {
            connection.Dispose();
        }
        try
        {
            await _acceptLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            client.NoDelay = true;
            _ = ServeAsync(client);
        }
    }

    /// <summary>Serves one connection until it closes; never throws.</summary>
    private async Task ServeAsync(Socket socket)
    {
        var session = new RespSession(_context);
        _connections[session.ClientId] = socket;
        var buffer = ArrayPool<byte>.Shared.Rent(InitialReceiveBuffer);
        using var output = new FrameBuffer();
        var filled = 0;
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    buffer = GrowReceiveBuffer(buffer, filled);
                }
                var received = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (received == 0)
                {
                    return;
                }
                filled += received;
                var (consumed, close, writeSequence) = ProcessAll(session, buffer.AsSpan(0, filled), output);
                if (session.TakeWroteFlag() && _context.Store is { } store && store.Options.Durability == DurabilityMode.Sync)
                {
                    await store.WaitDurableAsync(writeSequence, _stop.Token).ConfigureAwait(false);
                }
                if (output.Length > 0)
                {
                    await SendAllAsync(socket, output.WrittenMemory).ConfigureAwait(false);
                    output.Clear();
                }
                if (close)
                {
                    return;
                }
                // Keep the partial command at the start of the buffer.
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer went away or the listener stopped.
        }
        catch (Exception e)
        {
            Log?.Invoke($"resp: connection {session.ClientId} closed after an unexpected error: {e}");
        }
        finally
        {
            _connections.TryRemove(session.ClientId, out _);
            ArrayPool<byte>.Shared.Return(buffer);
            session.Dispose();
            socket.Dispose();
        }
    }

    /// <summary>Runs every complete command of <paramref name="input"/> with a rented storage session.</summary>
    private (int Consumed, bool Close, long WriteSequence) ProcessAll(RespSession session, ReadOnlySpan<byte> input, FrameBuffer output)
    {
        var kv = _sessions.Rent();
        try
        {
            var outcome = session.ProcessWaiting(input, kv, output, out var consumed);
            return (consumed, outcome == ProcessOutcome.Close, kv.LastWriteSequence);
        }
        finally
        {
            _sessions.Return(kv);
        }
    }

    private static async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    private byte[] GrowReceiveBuffer(byte[] buffer, int filled)
    {
        var limit = (long)_context.Limits.MaxBulkLength + (64 * 1024);
        if (buffer.Length >= limit)
        {
            throw new InvalidOperationException("request larger than the RESP limits allow");
        }
        var next = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit, buffer.Length * 2L));
        buffer.AsSpan(0, filled).CopyTo(next);
        ArrayPool<byte>.Shared.Return(buffer);
        return next;
    }
}
