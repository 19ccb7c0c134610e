using System.Diagnostics;
using System.Runtime.CompilerServices;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// A connection on an <see cref="ITransportConnection"/> (shared memory, DPDK, length-prefixed TCP): one received
/// message is one request frame and gets exactly one reply message (the transports' request/reply contract, which
/// DPDK's datagram RPC depends on). It runs on the same workers and front end as a socket connection.
/// </summary>
/// <remarks>
/// Receiving never blocks a worker. After each reply the worker polls the session with
/// <see cref="ITransportConnection.TryReceive"/>; while nothing has arrived for less than the poll window the
/// connection re-queues itself on the worker's ready queue (so the worker keeps polling between other work, and a
/// ping-pong client gets sub-microsecond pickup). After the window the receive moves to a thread-pool
/// <see cref="ITransportConnection.ReceiveAsync"/>, whose completion queues the connection on its owner worker
/// exactly like a socket completion, and the worker may sleep.
/// A message that is not exactly one frame (its header's Length differs from the message length) gets a
/// Rejected/Malformed reply and the connection closes: a reply per request is kept even then.
/// </remarks>
internal sealed class TransportConnection : Connection
{
    /// <inheritdoc />
    protected override bool MayReorderReplies => false; // the transports' request/reply contract answers in order

    private const int PollsPerClockRead = 32;
    private static readonly Action<TransportConnection> s_receive = c => _ = c.ReceiveInBackgroundAsync();
    private static readonly Action<ITransportConnection> s_dispose = link => link.Dispose();

    private readonly ITransportConnection _link;
    private readonly long _pollTicks;
    private readonly CancellationToken _stopping;
    private readonly Action _onSendCompleted;
    private TransportMessage _message;
    private MessageState _messageState;
    private Exception? _receiveError;
    private ValueTask _send;
    private bool _sending;
    private long _idleSince;
    private int _idlePolls;
    private volatile bool _abort;

    internal TransportConnection(HybridNode node, ITransportConnection link, IConnectionHandler handler, Worker owner, ConnectionContext context,
        TimeSpan pollWindow, CancellationToken stopping)
        : base(node, handler, owner, context)
    {
        _link = link;
        _pollTicks = (long)(pollWindow.TotalSeconds * Stopwatch.Frequency);
        _stopping = stopping;
        _onSendCompleted = () => Owner.Enqueue(this);
    }

    private enum MessageState : byte
    {
        /// <summary>No message held.</summary>
        None,

        /// <summary>Received, not offered to the front end yet.</summary>
        Unprocessed,

        /// <summary>Offered; its batch parked on storage, which may still read its bytes: keep the buffer until it resumes.</summary>
        Held,
    }

    /// <inheritdoc />
    internal override void Abort()
    {
        // The worker holding the connection (a poll) or the background receive (cancelled by the node's stop token)
        // brings it back to a worker, which closes it.
        _abort = true;
    }

    /// <inheritdoc />
    protected override bool Step(Worker worker)
    {
        if (_abort)
        {
            Close(worker);
            return false;
        }
        if (_sending)
        {
            _sending = false;
            var send = _send;
            _send = default;
            send.GetAwaiter().GetResult(); // a failed send throws: Drive closes the connection
            Output.Clear();
        }
        if (_messageState == MessageState.Held && !Parked)
            ReleaseMessage();
        if (_receiveError is not null)
        {
            // The peer said goodbye or vanished: nobody to answer.
            Close(worker);
            return false;
        }

        if (_messageState == MessageState.Unprocessed && !Parked && !CloseAfterSend && Output.Length == 0)
        {
            var frame = _message.Span;
            worker.Metrics.BytesIn += frame.Length;
            if (frame.Length < FrameHeader.Size || FrameHeader.PeekLength(frame) != frame.Length)
            {
                EndOfInput(worker, frame); // not one whole frame: Rejected/Malformed, then close
            }
            else if (!RunFrontEnd(worker, frame, out int consumed))
            {
                _messageState = MessageState.Held;
                return false;
            }
            else if (consumed != frame.Length && !CloseAfterSend)
            {
                EndOfInput(worker, frame[consumed..]);
            }
            ReleaseMessage();
        }

        if (Output.Length > 0)
        {
            if (!RepliesMayGo(worker))
                return false;
            worker.Metrics.BytesOut += Output.Length;
            var send = _link.SendAsync(Output.WrittenMemory);
            if (!send.IsCompleted)
            {
                // A full ring: come back when the peer made room (the buffer stays untouched until then).
                _send = send;
                _sending = true;
                send.GetAwaiter().UnsafeOnCompleted(_onSendCompleted);
                return false;
            }
            send.GetAwaiter().GetResult();
            Output.Clear();
        }
        if (CloseAfterSend)
        {
            Close(worker);
            return false;
        }

        if (_link.TryReceive(out var message))
        {
            _message = message;
            _messageState = MessageState.Unprocessed;
            _idlePolls = 0;
            return true;
        }
        if (StillPolling())
        {
            worker.Enqueue(this); // keep polling between the worker's other work
            return false;
        }
        _idlePolls = 0;
        ThreadPool.UnsafeQueueUserWorkItem(s_receive, this, preferLocal: false);
        return false;
    }

    /// <summary>
    /// True while the poll window since the first empty poll lasts. The clock is read on the first empty poll and then
    /// only every <see cref="PollsPerClockRead"/> polls: a clock read (60–80 ns here) cost as much as the poll itself,
    /// and each poll's cost delays the pickup of the client's next request.
    /// </summary>
    private bool StillPolling()
    {
        if (_stopping.IsCancellationRequested)
            return false;
        if (_idlePolls++ == 0)
        {
            _idleSince = Stopwatch.GetTimestamp();
            return true;
        }
        return _idlePolls % PollsPerClockRead != 0 || Stopwatch.GetTimestamp() - _idleSince < _pollTicks;
    }

    // Pooled state machine: an idle connection's receive allocates nothing in the steady state.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveInBackgroundAsync()
    {
        try
        {
            _message = await _link.ReceiveAsync(_stopping).ConfigureAwait(false);
            _messageState = MessageState.Unprocessed;
        }
        catch (Exception e)
        {
            _receiveError = e;
        }
        Owner.Enqueue(this);
    }

    private void ReleaseMessage()
    {
        if (_messageState == MessageState.None)
            return;
        _messageState = MessageState.None;
        var message = _message;
        _message = default;
        message.Dispose();
    }

    /// <inheritdoc />
    protected override void CloseIo()
    {
        ReleaseMessage();
        // A DPDK session's goodbye waits for the peer's acknowledgement: never on a worker.
        ThreadPool.UnsafeQueueUserWorkItem(s_dispose, _link, preferLocal: false);
    }
}
