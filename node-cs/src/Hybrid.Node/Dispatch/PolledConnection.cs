using System.Net.Sockets;
using Hybrid.Node.Hosting;
using Hybrid.Transport.Polling;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// A connection on an accepted kernel socket watched by the node's own readiness loop (<see cref="FrontPollers"/>,
/// epoll through libhyb_transport): native TCP and RESP when the library is present. Frames are cut from the byte
/// stream by the front end; every complete request in the input buffer runs before one send.
/// </summary>
/// <remarks>
/// <para>Per request: one receive and one send, as in Redis. A receive that returns less than the room offered
/// drained the socket, so the next one waits for the poller's next event instead of asking the kernel again
/// (.NET's engine asks, and gets EAGAIN, before it arms the socket).</para>
/// <para>Who runs it: <c>_busy</c> is 1 while something holds the connection (the admit queue, a worker's queue, a
/// worker or a borrowing poller driving it, a parked table, a durability wait). An event sets <c>_ready</c> and, when
/// nobody holds the connection, takes it and offers it to the idle owner worker (run inline on the poller thread) or
/// queues it there. A driver that must wait for the socket releases it and looks at <c>_ready</c> once more, so an
/// event that raced with the release is never lost. <c>_ready</c> is cleared before each system call, so an event
/// for bytes that call already saw costs one spare look at most; an event consumed by a send marks the input as
/// possibly non-empty, since one flag stands for both directions.</para>
/// </remarks>
internal sealed class PolledConnection : Connection
{
    private readonly Socket _socket;
    private readonly int _descriptor;
    private readonly FrontPollers _pollers;
    private readonly StreamInput _input;
    private bool _endOfInput;
    private bool _drained;
    private bool _peerGone;
    private int _ready;
    private int _busy = 1; // the admit path holds it until the first drive

    internal PolledConnection(HybridNode node, Socket socket, FrontPollers pollers, IConnectionHandler handler, Worker owner, ConnectionContext context, int maxInput)
        : base(node, handler, owner, context)
    {
        _socket = socket;
        _descriptor = SocketPoller.Descriptor(socket);
        _pollers = pollers;
        _input = new StreamInput(InitialBuffer, maxInput);
    }

    /// <summary>The poller's token for this connection (slot and generation), set when it is watched.</summary>
    internal ulong Token { get; set; }

    /// <summary>The socket, for the poller's bookkeeping.</summary>
    internal Socket Socket => _socket;

    /// <summary>On the poller thread: the socket changed (input, room for output, hang-up).</summary>
    internal void OnEvent(PollEvents events)
    {
        if ((events & (PollEvents.HangUp | PollEvents.Error)) != 0)
            Volatile.Write(ref _peerGone, true); // sticky; published by the exchange below
        Interlocked.Exchange(ref _ready, 1);
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            // Whoever holds it looks at _ready before letting go; a worker's park table holding it while operations
            // are pending is asked to run it now (a driver that parks looks at _ready once more, in case this raced).
            if (WaitsForCompletions)
                ParkWorker?.Poke(this);
            return;
        }
        if (!Owner.TryRunInline(this))
            Owner.Enqueue(this);
    }

    /// <inheritdoc />
    protected override bool RunsBetweenCompletions => true;

    /// <summary>
    /// With operations pending and the socket drained: parks until a completion or new input (the poller pokes the
    /// worker once it sees the park). True when an event came in meanwhile (it may have missed the park): read on.
    /// </summary>
    private bool ParkForInput()
    {
        ParkUntilCompletion();
        if (Volatile.Read(ref _ready) == 0)
            return false;
        Unpark();
        return true;
    }

    /// <inheritdoc />
    internal override void Abort()
    {
        // Shutdown only: a worker may be inside a receive on this descriptor, and closing it could hand the number to
        // another socket. The shutdown raises an event; the worker sees the end of input and closes (CloseIo).
        ShutdownQuietly(_socket);
    }

    /// <summary>After the workers stopped (nothing can drive it any more): closes a socket that never finished closing.</summary>
    internal void CloseAfterStop() => _socket.Dispose();

    /// <inheritdoc />
    protected override bool Step(Worker worker)
    {
        if (Output.Length > 0)
        {
            if (!RepliesMayGo(worker))
                return false;
            Send(worker);
            if (Output.Length == 0)
                return true;
            // Would block, or the kernel took part: the poller reports the room when it frees up (with operations
            // pending, the connection stays parked: a later completion or new input runs it again).
            return HasPending ? ParkUntilCompletion() : WaitForSocket();
        }
        if (CloseAfterSend)
        {
            if (HasPending)
                return ParkUntilCompletion(); // the replies of the parked batches go first
            Close(worker);
            return false;
        }
        if (!Parked && _input.HasPending)
        {
            bool ran = RunFrontEnd(worker, _input.Pending, out int consumed);
            _input.Consume(consumed);
            if (!ran)
            {
                if (!Context.ResumesWhilePending)
                    return false;
                if (!_input.HasPending)
                {
                    // Every frame received ran and some batches wait: send the replies that are complete, then read on.
                    Unpark();
                    return true;
                }
                // A frame waits for the parked batches (their completion runs it); the complete replies go now.
                if (Output.Length > 0 && RepliesMayGoNow())
                    Send(worker);
                return false;
            }
            if (Output.Length > 0 || CloseAfterSend)
                return true;
        }
        if (_endOfInput)
        {
            if (HasPending)
                return ParkUntilCompletion(); // answer what is pending before the end of input closes it
            EndOfInput(worker, _input.Pending);
            return true;
        }
        // A short read drained the socket: new bytes raise an event. Not so for an end of stream or a reset that came
        // with the last bytes: the next receive reports it and nothing else will, so once the peer is gone, read on.
        if (_drained && Volatile.Read(ref _ready) == 0 && !Volatile.Read(ref _peerGone))
            return HasPending ? ParkForInput() : WaitForSocket();

        _input.Prepare();
        Interlocked.Exchange(ref _ready, 0);
        int room = _input.Room;
        int received = NonBlockingSocket.Receive(_descriptor, _input.Free);
        if (received < 0)
        {
            _drained = true;
            return HasPending ? ParkForInput() : WaitForSocket();
        }
        if (received == 0)
        {
            _endOfInput = true;
            return true;
        }
        _input.Received(received);
        worker.Metrics.BytesIn += received;
        _drained = received < room;
        return true;
    }

    private void Send(Worker worker)
    {
        // The event being consumed may have been for input: look at the socket again before waiting on it.
        if (Interlocked.Exchange(ref _ready, 0) != 0)
            _drained = false;
        int sent = NonBlockingSocket.Send(_descriptor, Output.Written);
        if (sent > 0)
        {
            worker.Metrics.BytesOut += sent;
            Output.Consume(sent);
        }
    }

    /// <summary>
    /// Lets go of the connection until the poller's next event; true when an event came in meanwhile and this driver
    /// took the connection back (go on), false when it is let go (or another thread took it).
    /// </summary>
    private bool WaitForSocket()
    {
        Interlocked.Exchange(ref _busy, 0);
        if (Volatile.Read(ref _ready) == 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            return false;
        _drained = false;
        return true;
    }

    /// <inheritdoc />
    protected override void CloseIo()
    {
        // Still held (_busy stays 1), so the poller never hands it out again; stale events find no token.
        _pollers.Remove(this);
        ShutdownQuietly(_socket);
        _socket.Dispose();
        _input.Release();
    }
}
