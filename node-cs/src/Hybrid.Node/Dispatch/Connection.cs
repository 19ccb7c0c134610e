using System.Buffers;
using System.Net.Sockets;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// One accepted socket and its buffers. At any moment exactly one of these holds it: an outstanding socket operation,
/// a worker's ready queue, a worker running it (<see cref="Drive"/>), a worker's parked table (pending storage
/// reads) or a worker's durability wait list. So its state needs no lock.
/// </summary>
/// <remarks>
/// Lifecycle of a batch: the receive completes on a socket thread, which queues the connection on its owner worker
/// (<see cref="OnIoCompleted"/>); a worker (the owner or a thief) dequeues it and drives it: the front end consumes
/// every complete request in the input buffer and appends replies to <see cref="Output"/>; one send carries all the
/// replies (after the writes are durable in Sync mode); then the next receive is started. Only one socket operation
/// is outstanding at a time, so replies keep the order of requests.
/// </remarks>
internal sealed class Connection
{
    private const int InitialInput = 16 * 1024;
    private const int MaxRoundsPerDrive = 16;
    /// <summary>Input bytes kept free past the data: vector key hashing may read a few bytes beyond the last key.</summary>
    private const int Slack = 8;

    private readonly Socket _socket;
    private readonly SocketAsyncEventArgs _receive = new();
    private readonly SocketAsyncEventArgs _send = new();
    private readonly IConnectionHandler _handler;
    private readonly HybridNode _node;
    private readonly int _maxInput;
    private byte[] _input;
    private int _inStart;
    private int _inEnd;
    private IConnectionState? _state;
    private IoOp _completed;
    private bool _started;
    private bool _endOfInput;
    private bool _closeAfterSend;
    private bool _parked;
    private int _closed;

    internal Connection(HybridNode node, Socket socket, IConnectionHandler handler, Worker owner, ConnectionContext context, int maxInput)
    {
        _node = node;
        _socket = socket;
        _handler = handler;
        Owner = owner;
        Context = context;
        _maxInput = maxInput;
        _input = ArrayPool<byte>.Shared.Rent(InitialInput);
        _receive.Completed += OnIoCompleted;
        _send.Completed += OnIoCompleted;
    }

    private enum IoOp : byte
    {
        None,
        Receive,
        Send,
    }

    /// <summary>The worker whose queue receives this connection's socket completions.</summary>
    internal Worker Owner { get; }

    /// <summary>Node-side facts shared with the front end.</summary>
    internal ConnectionContext Context { get; }

    /// <summary>Replies not sent yet.</summary>
    internal FrameBuffer Output { get; } = new(InitialInput);

    /// <summary>Slot in the parked table of the worker that started this connection's pending operations (-1 = none).</summary>
    internal int ParkSlot { get; set; } = -1;

    /// <summary>The worker holding <see cref="ParkSlot"/>.</summary>
    internal Worker? ParkWorker { get; set; }

    /// <summary>The front end's state (null before the first drive).</summary>
    internal IConnectionState? State => _state;

    /// <summary>True once closed.</summary>
    internal bool IsClosed => Volatile.Read(ref _closed) != 0;

    private void OnIoCompleted(object? sender, SocketAsyncEventArgs e)
    {
        _completed = ReferenceEquals(e, _receive) ? IoOp.Receive : IoOp.Send;
        Owner.Enqueue(this);
    }

    /// <summary>Closes the socket from outside a worker (node stop); the worker holding the connection cleans up.</summary>
    internal void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Close();
    }

    /// <summary>Called by the worker after its pending operations finished (<see cref="IConnectionState.OnCompleted"/> returned true).</summary>
    internal void Resume(Worker worker)
    {
        _parked = false;
        Drive(worker);
    }

    /// <summary>Runs the connection on <paramref name="worker"/> until it waits for the socket, storage or durability.</summary>
    internal void Drive(Worker worker)
    {
        if (IsClosed)
            return;
        try
        {
            if (!_started)
            {
                _started = true;
                _state = _handler.Open(Context);
            }
            for (int round = 0; round < MaxRoundsPerDrive; round++)
            {
                if (!Step(worker))
                    return;
            }
            // Fairness: let other connections of this worker run, come back later.
            worker.Enqueue(this);
        }
        catch (Exception e)
        {
            // A socket failure, or a front-end bug: either way only this connection goes; the worker carries on.
            if (e is not (SocketException or ObjectDisposedException))
                worker.Metrics.HandlerErrors++;
            Close(worker);
        }
    }

    /// <summary>One round; false when the connection now waits for something else to hand it back to a worker.</summary>
    private bool Step(Worker worker)
    {
        var completed = _completed;
        _completed = IoOp.None;
        if (completed == IoOp.Receive)
        {
            if (_receive.SocketError != SocketError.Success || _receive.BytesTransferred == 0)
                _endOfInput = true;
            else
            {
                _inEnd += _receive.BytesTransferred;
                worker.Metrics.BytesIn += _receive.BytesTransferred;
            }
        }
        else if (completed == IoOp.Send)
        {
            if (_send.SocketError != SocketError.Success)
            {
                Close(worker);
                return false;
            }
            worker.Metrics.BytesOut += _send.BytesTransferred;
            Output.Consume(_send.BytesTransferred);
        }

        if (!_parked && !_closeAfterSend && _inEnd > _inStart && Output.Length == 0)
        {
            var outcome = _state!.Process(worker, Context, _input.AsSpan(_inStart, _inEnd - _inStart), Output, out int consumed);
            _inStart += consumed;
            if (outcome == ProcessOutcome.Parked)
            {
                _parked = true;
                return false;
            }
            worker.ReleaseParkSlot(this);
            if (outcome == ProcessOutcome.Close)
                _closeAfterSend = true;
        }
        if (_endOfInput && !_closeAfterSend)
        {
            _state!.OnEndOfInput(worker, Context, _input.AsSpan(_inStart, _inEnd - _inStart), Output);
            _closeAfterSend = true;
        }

        if (Output.Length > 0)
        {
            long required = Context.RequiredDurableSequence;
            if (required > 0 && !_node.Store.IsDurable(required))
            {
                worker.WaitDurable(this, required);
                return false;
            }
            Context.RequiredDurableSequence = 0;
            _send.SetBuffer(Output.Array, 0, Output.Length);
            if (_socket.SendAsync(_send))
                return false;
            _completed = IoOp.Send;
            return true;
        }
        if (_closeAfterSend)
        {
            Close(worker);
            return false;
        }

        PrepareInput();
        _receive.SetBuffer(_input, _inEnd, _input.Length - _inEnd - Slack);
        if (_socket.ReceiveAsync(_receive))
            return false;
        _completed = IoOp.Receive;
        return true;
    }

    /// <summary>Moves unconsumed input to the front and grows the buffer when a frame does not fit.</summary>
    private void PrepareInput()
    {
        if (_inStart == _inEnd)
        {
            _inStart = _inEnd = 0;
        }
        else if (_inStart > 0)
        {
            _input.AsSpan(_inStart, _inEnd - _inStart).CopyTo(_input);
            _inEnd -= _inStart;
            _inStart = 0;
        }
        if (_input.Length - _inEnd - Slack < 4096)
        {
            if (_input.Length >= _maxInput + Slack)
                throw new InvalidOperationException("input buffer limit reached without a complete request");
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_input.Length * 2, _maxInput + Slack + 4096));
            _input.AsSpan(0, _inEnd).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_input);
            _input = bigger;
        }
    }

    /// <summary>Closes the socket and returns the buffers; idempotent. Runs on the worker holding the connection.</summary>
    internal void Close(Worker worker)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
            return;
        worker.ReleaseParkSlot(this);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Close();
        _state?.Dispose();
        _receive.Dispose();
        _send.Dispose();
        Output.Dispose();
        var input = _input;
        _input = [];
        if (input.Length > 0)
            ArrayPool<byte>.Shared.Return(input);
        _node.OnConnectionClosed(this);
    }
}
