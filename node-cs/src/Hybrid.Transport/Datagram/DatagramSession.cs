using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Hybrid.Transport.Datagram;

/// <summary>
/// One session of the datagram RPC, on either side. The client sends one request at a time (seq 1, 2, …) and
/// retransmits it until the whole reply is in; later requests wait in order in <see cref="_outbound"/>. The
/// server delivers a request to the application only when its seq is the next one, and keeps its last reply:
/// a retransmitted request is answered from that cache and never executes twice.
/// </summary>
/// <remarks>All fields are guarded by the engine's <see cref="DatagramEngine.Gate"/>.</remarks>
internal sealed class DatagramSession : ITransportConnection
{
    private enum State
    {
        Connecting,
        Open,
        Closing,
        Ended,
    }

    private readonly DatagramEngine _engine;
    private readonly byte[] _peerMac = new byte[6];
    private readonly Reassembly _incoming;
    private readonly Queue<TransportMessage> _inbound = new();
    private readonly Queue<(byte[] Buffer, int Length)> _outbound = new();
    private State _state;
    private TransportException? _end;
    private long _created;
    private long _lastHeard;
    private long _lastSent;
    private long _closing;

    // Client: the request in flight.
    private byte[]? _request;
    private int _requestLength;
    private uint _nextSeq;

    // Server: the last executed request and its cached reply.
    private uint _lastSeq;
    private bool _awaitingReply;
    private byte[]? _reply;
    private int _replyLength;

    public DatagramSession(DatagramEngine engine, ulong id, ushort service, bool isClient, ReadOnlySpan<byte> peerMac, long now)
    {
        _engine = engine;
        Id = id;
        Service = service;
        IsClient = isClient;
        peerMac.CopyTo(_peerMac);
        _incoming = new Reassembly(engine.MaxMessageBytes, engine.FragmentPayload);
        _state = isClient ? State.Connecting : State.Open;
        _created = _lastHeard = _lastSent = now;
        RemoteAddress = $"dpdk:{(isClient ? "server" : "client")}/{service}/{id:x16}";
    }

    public ulong Id { get; }

    public ushort Service { get; }

    public bool IsClient { get; }

    public string RemoteAddress { get; }

    /// <summary>True once the handshake completed.</summary>
    public bool IsOpen => _state == State.Open;

    /// <summary>Why the session ended, if it has.</summary>
    public TransportException? EndReason => _end;

    /// <summary>Requests this client sent again after a timeout.</summary>
    public long Retransmissions { get; private set; }

    // ---- driven by the engine (lock held) ----

    /// <summary>Client: sends the Hello that opens the session.</summary>
    public void SendHello(long now)
    {
        _lastSent = now;
        _engine.EmitControl(DatagramEngine.AnyPeer, FrameKind.Hello, Service, Id);
    }

    public void OnFrame(in DatagramFrame frame, long now)
    {
        _lastHeard = now;
        switch (frame.Kind)
        {
            case FrameKind.HelloAck when IsClient && _state == State.Connecting:
                frame.SourceMac.CopyTo(_peerMac);
                _state = State.Open;
                StartNextRequest(now);
                break;
            case FrameKind.Request when !IsClient:
                OnRequest(frame, now);
                break;
            case FrameKind.Reply when IsClient && _request is not null && frame.Seq == _nextSeq:
                if (_incoming.Add(frame.Seq, frame, out var reply))
                {
                    _inbound.Enqueue(reply);
                    ReturnRequest();
                    StartNextRequest(now);
                }
                break;
            case FrameKind.KeepAlive when !IsClient:
                _lastSent = now;
                _engine.EmitControl(_peerMac, FrameKind.KeepAlive, Service, Id);
                break;
            case FrameKind.Goodbye:
                OnGoodbye(frame);
                break;
            case FrameKind.GoodbyeAck when _state == State.Closing:
                End(new TransportException(TransportError.Closed, "connection disposed"));
                break;
            case FrameKind.Reset:
                End(new TransportException(_state == State.Connecting ? TransportError.ConnectFailed : TransportError.ConnectionLost,
                    $"{RemoteAddress}: the peer does not know this session (no listener, or it restarted)"));
                break;
        }
    }

    private void OnRequest(in DatagramFrame frame, long now)
    {
        uint seq = frame.Seq;
        if (seq == _lastSeq)
        {
            // A retransmission of the request already executed: answer from the cache (or, while the application
            // is still working on it, with a keepalive), at most once per retransmission period.
            if (now - _lastSent < _engine.RetransmitTicks / 2)
                return;
            _lastSent = now;
            if (_reply is not null)
                _engine.EmitMessage(_peerMac, FrameKind.Reply, Service, Id, seq, _reply.AsSpan(0, _replyLength));
            else
                _engine.EmitControl(_peerMac, FrameKind.KeepAlive, Service, Id);
            return;
        }
        if (seq != _lastSeq + 1 || _awaitingReply || _state != State.Open)
            return;
        if (_incoming.Add(seq, frame, out var request))
        {
            _lastSeq = seq;
            _awaitingReply = true;
            ReturnReply();
            _inbound.Enqueue(request);
        }
    }

    /// <summary>
    /// The peer says goodbye. A server's goodbye carries the last seq it executed: if that is the request this
    /// client still awaits, the client holds back its acknowledgement and keeps retransmitting until the cached
    /// reply is whole, so a reply sent just before the goodbye is not lost. Anything later was not executed.
    /// </summary>
    private void OnGoodbye(in DatagramFrame frame)
    {
        if (IsClient && _request is not null && frame.Seq == _nextSeq)
            return;
        _engine.EmitControl(_peerMac, FrameKind.GoodbyeAck, Service, Id);
        End(new TransportException(TransportError.Closed, $"{RemoteAddress} said goodbye"));
    }

    public void OnTimer(long now)
    {
        switch (_state)
        {
            case State.Connecting when now - _created > _engine.ConnectTimeoutTicks:
                End(new TransportException(TransportError.ConnectFailed, $"no answer from service {Service} within the connect timeout"));
                break;
            case State.Connecting when now - _lastSent > _engine.RetransmitTicks:
                SendHello(now);
                break;
            case State.Open when now - _lastHeard > _engine.PeerTimeoutTicks:
                End(new TransportException(TransportError.PeerTimeout,
                    $"{RemoteAddress}: nothing heard for {(now - _lastHeard) * 1000 / Stopwatch.Frequency} ms; the peer is gone"));
                break;
            case State.Open when IsClient && _request is not null && now - _lastSent > _engine.RetransmitTicks:
                Retransmissions++;
                TransmitRequest(now);
                break;
            case State.Open when IsClient && _request is null && now - _lastSent > _engine.PeerTimeoutTicks / 4:
                _lastSent = now;
                _engine.EmitControl(_peerMac, FrameKind.KeepAlive, Service, Id);
                break;
            case State.Closing when now - _closing > _engine.PeerTimeoutTicks:
                End(new TransportException(TransportError.Closed, "connection disposed"));
                break;
            case State.Closing when now - _lastSent > _engine.RetransmitTicks:
                SendGoodbye(now);
                break;
        }
    }

    /// <summary>The engine is shutting down: a single goodbye, then the session is over.</summary>
    public void Abandon()
    {
        if (_state is State.Open or State.Closing)
            SendGoodbye(_lastSent);
        End(new TransportException(TransportError.Closed, "transport disposed"));
    }

    private void SendGoodbye(long now)
    {
        _lastSent = now;
        _engine.EmitControl(_peerMac, FrameKind.Goodbye, Service, Id, IsClient ? 0 : _lastSeq);
    }

    private void StartNextRequest(long now)
    {
        if (_state != State.Open || _request is not null || !_outbound.TryDequeue(out var next))
            return;
        _request = next.Buffer;
        _requestLength = next.Length;
        _nextSeq++;
        TransmitRequest(now);
    }

    private void TransmitRequest(long now)
    {
        _lastSent = now;
        _engine.EmitMessage(_peerMac, FrameKind.Request, Service, Id, _nextSeq, _request.AsSpan(0, _requestLength));
    }

    private void End(TransportException reason)
    {
        if (_state == State.Ended)
            return;
        _state = State.Ended;
        _end = reason;
        _engine.Remove(this);
        _incoming.Reset();
        ReturnRequest();
        ReturnReply();
        while (_outbound.TryDequeue(out var pending))
            ArrayPool<byte>.Shared.Return(pending.Buffer);
    }

    private void ReturnRequest()
    {
        if (_request is not null)
            ArrayPool<byte>.Shared.Return(_request);
        _request = null;
    }

    private void ReturnReply()
    {
        if (_reply is not null)
            ArrayPool<byte>.Shared.Return(_reply);
        _reply = null;
    }

    // ---- the application's side ----

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        if (message.Length > _engine.MaxMessageBytes)
            throw new TransportException(TransportError.MessageTooLarge, $"{message.Length} bytes > {_engine.MaxMessageBytes}");
        var copy = ArrayPool<byte>.Shared.Rent(Math.Max(1, message.Length));
        message.Span.CopyTo(copy);
        lock (_engine.Gate)
        {
            if (_state == State.Ended || _state == State.Closing || _engine.IsDisposed)
            {
                ArrayPool<byte>.Shared.Return(copy);
                throw _end ?? new TransportException(TransportError.Closed, "connection disposed");
            }
            long now = Stopwatch.GetTimestamp();
            if (IsClient)
            {
                _outbound.Enqueue((copy, message.Length));
                StartNextRequest(now);
            }
            else
            {
                if (!_awaitingReply)
                {
                    ArrayPool<byte>.Shared.Return(copy);
                    throw new TransportException(TransportError.InvalidOperation, "a server sends only replies, one per request");
                }
                _awaitingReply = false;
                _reply = copy;
                _replyLength = message.Length;
                _lastSent = now;
                _engine.EmitMessage(_peerMac, FrameKind.Reply, Service, Id, _lastSeq, copy.AsSpan(0, message.Length));
            }
            _engine.Flush();
        }
        return ValueTask.CompletedTask;
    }

    public bool TryReceive(out TransportMessage message)
    {
        _engine.Poll();
        lock (_engine.Gate)
        {
            if (_inbound.TryDequeue(out message))
                return true;
            if (_end is not null)
                throw _end;
            return false;
        }
    }

    // Pooled state machine: a receive that completes asynchronously allocates nothing in the steady state.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TransportMessage> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var backoff = new Backoff();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (TryReceive(out var message))
                return message;
            if (!backoff.Wait())
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Client dial: waits (polling) until the server acknowledged the Hello, or throws why not.</summary>
    public async ValueTask WaitOpenAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _engine.Poll();
            lock (_engine.Gate)
            {
                if (_state == State.Open)
                    return;
                if (_end is not null)
                    throw _end;
            }
            if (!backoff.Wait())
                await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Says goodbye and waits (a few retransmission periods at most) for the peer to acknowledge it.</summary>
    public void Dispose()
    {
        lock (_engine.Gate)
        {
            if (_state is State.Ended or State.Closing)
                return;
            if (_engine.IsDisposed)
            {
                End(new TransportException(TransportError.Closed, "transport disposed"));
                return;
            }
            _state = State.Closing;
            _closing = Stopwatch.GetTimestamp();
            SendGoodbye(_closing);
            _engine.Flush();
        }
        var backoff = new Backoff();
        while (true)
        {
            _engine.Poll();
            lock (_engine.Gate)
            {
                if (_state == State.Ended || _engine.IsDisposed)
                    break;
            }
            if (!backoff.Wait())
                Thread.Sleep(1);
        }
        lock (_engine.Gate)
            End(new TransportException(TransportError.Closed, "connection disposed"));
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
