using System.Net.Sockets;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// One client connection as the workers see it, whatever carries its bytes: a kernel socket
/// (<see cref="SocketConnection"/>: native TCP and RESP, frames cut from a byte stream) or a transport session
/// (<see cref="TransportConnection"/>: shared memory, DPDK, one message = one frame). At any moment exactly one of
/// these holds it: an outstanding I/O operation, a worker's ready queue, a worker running it (<see cref="Drive"/>), a
/// worker's parked table (pending storage reads) or a worker's durability wait list. So its state needs no lock.
/// </summary>
/// <remarks>
/// The front end (<see cref="IConnectionState"/>) consumes requests and appends replies to <see cref="Output"/>; one
/// send carries them (after the writes are durable in Sync mode); then the next receive starts. Only one I/O
/// operation is outstanding at a time, so replies keep the order of requests.
/// </remarks>
internal abstract class Connection
{
    /// <summary>Initial size of the reply buffer (and of a socket's input buffer).</summary>
    protected const int InitialBuffer = 16 * 1024;
    private const int MaxRoundsPerDrive = 16;

    private readonly IConnectionHandler _handler;
    private IConnectionState? _state;
    private bool _started;
    private int _closed;
    private bool _released;
    private volatile bool _waitsForCompletions;

    protected Connection(HybridNode node, IConnectionHandler handler, Worker owner, ConnectionContext context)
    {
        Node = node;
        _handler = handler;
        Owner = owner;
        Context = context;
    }

    /// <summary>The node (store durability, connection registry).</summary>
    protected HybridNode Node { get; }

    /// <summary>The worker whose queue receives this connection's I/O completions.</summary>
    internal Worker Owner { get; }

    /// <summary>Node-side facts shared with the front end.</summary>
    internal ConnectionContext Context { get; }

    /// <summary>Replies not sent yet.</summary>
    internal FrameBuffer Output { get; } = new(InitialBuffer);

    /// <summary>Slot in the parked table of the worker that started this connection's pending operations (-1 = none).</summary>
    internal int ParkSlot { get; set; } = -1;

    /// <summary>The worker holding <see cref="ParkSlot"/>.</summary>
    internal Worker? ParkWorker { get; set; }

    /// <summary>The front end's state (null before the first drive).</summary>
    internal IConnectionState? State => _state;

    /// <summary>True once closed.</summary>
    internal bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>True while the front end waits for pending storage operations (no input is offered, nothing is sent).</summary>
    protected bool Parked { get; private set; }

    /// <summary>True while operations the front end started are pending (it stays with their worker, and stays open).</summary>
    protected bool HasPending => _state?.HasPendingOperations == true;

    /// <summary>
    /// Parked in its worker's table while operations are pending, on a connection that may run between their
    /// completions (<see cref="ConnectionContext.ResumesWhilePending"/>): new input may resume it (<see cref="Worker.Poke"/>).
    /// Read from the poller thread.
    /// </summary>
    internal bool WaitsForCompletions => _waitsForCompletions;

    /// <summary>True once the front end asked to close: the replies go out, then the connection closes.</summary>
    protected bool CloseAfterSend { get; private set; }

    /// <summary>Ends the connection from outside a worker (node stop); the worker holding it cleans up.</summary>
    internal abstract void Abort();

    /// <summary>Called by the worker after its pending operations finished (<see cref="IConnectionState.OnCompleted"/> returned true).</summary>
    internal void Resume(Worker worker)
    {
        Parked = false;
        _waitsForCompletions = false;
        if (IsClosed)
        {
            if (!HasPending)
                Release(worker); // it closed while operations were pending: the last one just finished
            return;
        }
        Drive(worker);
    }

    /// <summary>
    /// Goes back to the park table of the worker holding its pending operations (a later completion, or new input,
    /// runs it again); false, for Step to return.
    /// </summary>
    protected bool ParkUntilCompletion()
    {
        Parked = true;
        _waitsForCompletions = Context.ResumesWhilePending && !IsClosed;
        return false;
    }

    /// <summary>Takes back a park that raced with new input (the driver never let go of the connection).</summary>
    protected void Unpark()
    {
        Parked = false;
        _waitsForCompletions = false;
    }

    /// <summary>Runs the connection on <paramref name="worker"/> until it waits for I/O, storage or durability.</summary>
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
                Context.ResumesWhilePending = RunsBetweenCompletions && _state.RunsBetweenCompletions;
                Context.MayReorderReplies = MayReorderReplies;
            }
            for (int round = 0; round < MaxRoundsPerDrive; round++)
            {
                if (!Step(worker))
                    return;
            }
            // Fairness: let other connections of this worker run, come back later. With operations pending it stays in
            // this worker's park table and comes back through its poke queue: a queued connection may be stolen by
            // another worker, and its completions come here.
            if (HasPending)
            {
                ParkUntilCompletion();
                worker.Poke(this);
            }
            else
            {
                worker.Enqueue(this);
            }
        }
        catch (Exception e)
        {
            // An I/O failure, or a front-end bug: either way only this connection goes; the worker carries on.
            if (e is not (SocketException or ObjectDisposedException or TransportException or OperationCanceledException))
                worker.Metrics.HandlerErrors++;
            Close(worker);
        }
    }

    /// <summary>
    /// True when this kind of connection can run between the completions of its pending operations: its I/O is
    /// synchronous (a send or receive never leaves an operation outstanding), so the worker holding them can drive it.
    /// </summary>
    protected virtual bool RunsBetweenCompletions => false;

    /// <summary>True when replies may leave in completion order (a byte stream); message transports answer in order.</summary>
    protected virtual bool MayReorderReplies => true;

    /// <summary>One round; false when the connection now waits for something else to hand it back to a worker.</summary>
    protected abstract bool Step(Worker worker);

    /// <summary>
    /// Offers <paramref name="input"/> to the front end. False when the batch parked on pending storage operations
    /// (the worker resumes the connection when they finish); true otherwise (replies in <see cref="Output"/>).
    /// </summary>
    protected bool RunFrontEnd(Worker worker, ReadOnlySpan<byte> input, out int consumed)
    {
        var outcome = _state!.Process(worker, Context, input, Output, out consumed);
        if (outcome == ProcessOutcome.Parked)
        {
            ParkUntilCompletion();
            return false;
        }
        worker.ReleaseParkSlot(this);
        if (outcome == ProcessOutcome.Close)
            CloseAfterSend = true;
        return true;
    }

    /// <summary>The input ended (or cannot be a frame): the front end may append a last error reply; then the connection closes.</summary>
    protected void EndOfInput(Worker worker, ReadOnlySpan<byte> unconsumed)
    {
        _state!.OnEndOfInput(worker, Context, unconsumed, Output);
        CloseAfterSend = true;
    }

    /// <summary>True when the replies in <see cref="Output"/> may be sent now; false when they wait for durability (the worker drives the connection again then).</summary>
    protected bool RepliesMayGo(Worker worker)
    {
        if (RepliesMayGoNow())
            return true;
        // With operations pending it stays parked (one holder at a time): the replies go at a later completion.
        if (HasPending)
            return ParkUntilCompletion();
        worker.WaitDurable(this, Context.RequiredDurableSequence);
        return false;
    }

    /// <summary>True when the replies in <see cref="Output"/> may be sent now; never waits (registers nothing).</summary>
    protected bool RepliesMayGoNow()
    {
        long required = Context.RequiredDurableSequence;
        if (required > 0 && !Node.Store.IsDurable(required))
            return false;
        Context.RequiredDurableSequence = 0;
        return true;
    }

    /// <summary>Closes the I/O and returns the buffers; idempotent. Runs on the worker holding the connection.</summary>
    internal void Close(Worker worker)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
            return;
        CloseIo();
        Node.OnConnectionClosed(this);
        // Operations still pending (the peer broke while replies waited): their completions still come to its park
        // slot, so the slot, the front end and the buffers go when the last one finished (Resume).
        if (HasPending)
        {
            ParkUntilCompletion();
            return;
        }
        Release(worker);
    }

    private void Release(Worker worker)
    {
        if (_released)
            return;
        _released = true;
        worker.ReleaseParkSlot(this);
        _state?.Dispose();
        Output.Dispose();
    }

    /// <summary>Shuts a socket down both ways, ignoring a socket that is already reset or closed.</summary>
    protected static void ShutdownQuietly(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Closes the socket or session and frees the I/O buffers (called once, by <see cref="Close"/>).</summary>
    protected abstract void CloseIo();
}
