using System.Net.Sockets;
using Hybrid.Node.Hosting;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// A connection on an accepted kernel socket (native TCP, RESP): the fast path redis-benchmark uses. Frames are cut
/// from the byte stream by the front end; every complete request in the input buffer runs before one send.
/// </summary>
/// <remarks>
/// Lifecycle of a batch: the receive completes on a socket thread, which queues the connection on its owner worker
/// (<see cref="OnIoCompleted"/>); a worker (the owner or a thief) dequeues it and drives it: the front end consumes
/// every complete request in the input buffer and appends replies to <see cref="Connection.Output"/>; one send
/// carries all the replies; then the next receive is started.
/// </remarks>
internal sealed class SocketConnection : Connection
{
    private readonly Socket _socket;
    private readonly SocketAsyncEventArgs _receive = new();
    private readonly SocketAsyncEventArgs _send = new();
    private readonly StreamInput _input;
    private IoOp _completed;
    private bool _endOfInput;

    internal SocketConnection(HybridNode node, Socket socket, IConnectionHandler handler, Worker owner, ConnectionContext context, int maxInput)
        : base(node, handler, owner, context)
    {
        _socket = socket;
        _input = new StreamInput(InitialBuffer, maxInput);
        _receive.Completed += OnIoCompleted;
        _send.Completed += OnIoCompleted;
    }


    private enum IoOp : byte
    {
        None,
        Receive,
        Send,
    }

    private void OnIoCompleted(object? sender, SocketAsyncEventArgs e)
    {
        _completed = ReferenceEquals(e, _receive) ? IoOp.Receive : IoOp.Send;
        // A small receive is latency-bound (one request at a time): the completing thread runs it on the idle owner
        // worker at once. A large one (a batch, a pipeline) is throughput-bound: on a larger machine it goes to the
        // worker's queue so that all workers' cores share the load instead of the one socket thread; on a small one
        // it runs inline too (HybridNodeOptions.InlineReceiveBytes).
        if (_completed == IoOp.Receive && e.BytesTransferred <= Node.Options.InlineReceiveBytes && Owner.TryRunInline(this))
            return;
        Owner.Enqueue(this);
    }

    /// <inheritdoc />
    internal override void Abort()
    {
        ShutdownQuietly(_socket);
        _socket.Close();
    }

    /// <inheritdoc />
    protected override bool Step(Worker worker)
    {
        var completed = _completed;
        _completed = IoOp.None;
        if (completed == IoOp.Receive)
        {
            if (_receive.SocketError != SocketError.Success || _receive.BytesTransferred == 0)
                _endOfInput = true;
            else
            {
                _input.Received(_receive.BytesTransferred);
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

        if (!Parked && !CloseAfterSend && _input.HasPending && Output.Length == 0)
        {
            bool ran = RunFrontEnd(worker, _input.Pending, out int consumed);
            _input.Consume(consumed);
            if (!ran)
                return false;
        }
        if (_endOfInput && !CloseAfterSend)
            EndOfInput(worker, _input.Pending);

        if (Output.Length > 0)
        {
            if (!RepliesMayGo(worker))
                return false;
            _send.SetBuffer(Output.Array, 0, Output.Length);
            if (_socket.SendAsync(_send))
                return false;
            _completed = IoOp.Send;
            return true;
        }
        if (CloseAfterSend)
        {
            Close(worker);
            return false;
        }

        _input.Prepare();
        _receive.SetBuffer(_input.Array, _input.End, _input.Room);
        if (_socket.ReceiveAsync(_receive))
            return false;
        _completed = IoOp.Receive;
        return true;
    }

    /// <inheritdoc />
    protected override void CloseIo()
    {
        Abort();
        _receive.Dispose();
        _send.Dispose();
        _input.Release();
    }
}
