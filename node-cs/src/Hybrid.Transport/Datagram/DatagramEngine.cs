using System.Diagnostics;

namespace Hybrid.Transport.Datagram;

/// <summary>
/// The datagram RPC over one <see cref="IFrameLink"/>: sessions, sequence numbers, fragmentation to the
/// frame size, client retransmission, server de-duplication, keepalives and goodbye (docs/transport.md).
/// </summary>
/// <remarks>
/// Poll mode: there is no thread of its own. Whoever waits (a receive, an accept, a dial) drives the engine
/// through <see cref="Poll"/>, under one lock; a caller that finds the lock taken simply checks its own queue,
/// because the holder is already moving frames for everyone. All state below is guarded by <see cref="Gate"/>.
/// </remarks>
internal sealed class DatagramEngine : IDisposable
{
    private const int Burst = 32;
    private const int SendRetries = 200;
    private static ReadOnlySpan<byte> Broadcast => [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    private readonly IFrameLink _link;
    private readonly int _stride;
    private readonly byte[] _rx;
    private readonly int[] _rxLengths = new int[Burst];
    private readonly byte[] _tx;
    private readonly int[] _txLengths = new int[Burst];
    private readonly byte[] _mac = new byte[6];
    private readonly Dictionary<ulong, DatagramSession> _sessions = [];
    private readonly List<DatagramSession> _sessionList = [];
    private readonly Dictionary<ushort, DatagramListener> _listeners = [];
    private readonly long _timerTicks;
    private int _txCount;
    private long _lastTimers;
    private bool _disposed;

    public DatagramEngine(IFrameLink link, TransportOptions options)
    {
        _link = link;
        _stride = link.FrameBytes;
        FragmentPayload = _stride - DatagramFrame.HeaderBytes;
        _rx = new byte[Burst * _stride];
        _tx = new byte[Burst * _stride];
        link.GetMac(_mac);
        MaxMessageBytes = options.MaxMessageBytes;
        RetransmitTicks = Ticks(options.Dpdk.RetransmitTimeout);
        PeerTimeoutTicks = Ticks(options.Dpdk.PeerTimeout);
        ConnectTimeoutTicks = Ticks(options.ConnectTimeout);
        _timerTicks = Math.Max(1, RetransmitTicks / 4);
    }

    /// <summary>The lock guarding every session and the link.</summary>
    public object Gate { get; } = new();

    public int FragmentPayload { get; }

    public int MaxMessageBytes { get; }

    public long RetransmitTicks { get; }

    public long PeerTimeoutTicks { get; }

    public long ConnectTimeoutTicks { get; }

    /// <summary>Frames this engine handed to the link (retransmissions included): for tests and benchmarks.</summary>
    public long FramesSent { get; private set; }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    /// <summary>Moves frames in and out and runs due timers, unless another thread is already doing it.</summary>
    public void Poll()
    {
        if (!Monitor.TryEnter(Gate))
            return;
        try
        {
            PollLocked();
        }
        finally
        {
            Monitor.Exit(Gate);
        }
    }

    private void PollLocked()
    {
        if (_disposed)
            return;
        long now = Stopwatch.GetTimestamp();
        for (int round = 0; round < 8; round++)
        {
            int n = _link.Receive(_rx, _rxLengths, _stride);
            for (int i = 0; i < n; i++)
            {
                if (DatagramFrame.TryParse(_rx.AsSpan(i * _stride, _rxLengths[i]), out var frame))
                    Handle(frame, now);
            }
            if (n < Burst)
                break;
        }
        if (now - _lastTimers >= _timerTicks)
        {
            _lastTimers = now;
            for (int i = _sessionList.Count - 1; i >= 0; i--)
                _sessionList[i].OnTimer(now);
        }
        Flush();
    }

    private void Handle(in DatagramFrame frame, long now)
    {
        _sessions.TryGetValue(frame.Session, out var session);
        switch (frame.Kind)
        {
            case FrameKind.Hello:
                if (session is null && _listeners.TryGetValue(frame.Service, out var listener))
                {
                    session = new DatagramSession(this, frame.Session, frame.Service, isClient: false, frame.SourceMac, now);
                    Add(session);
                    listener.Enqueue(session);
                }
                if (session is null || session.IsClient)
                    EmitControl(frame.SourceMac, FrameKind.Reset, frame.Service, frame.Session);
                else
                    EmitControl(frame.SourceMac, FrameKind.HelloAck, frame.Service, frame.Session);
                break;
            case FrameKind.Goodbye when session is null:
                EmitControl(frame.SourceMac, FrameKind.GoodbyeAck, frame.Service, frame.Session);
                break;
            case FrameKind.Request or FrameKind.KeepAlive when session is null:
                EmitControl(frame.SourceMac, FrameKind.Reset, frame.Service, frame.Session);
                break;
            default:
                session?.OnFrame(frame, now);
                break;
        }
    }

    /// <summary>Registers a session so frames and timers reach it.</summary>
    public void Add(DatagramSession session)
    {
        _sessions.Add(session.Id, session);
        _sessionList.Add(session);
    }

    /// <summary>Forgets a session: later frames for it are answered with Reset.</summary>
    public void Remove(DatagramSession session)
    {
        if (_sessions.Remove(session.Id))
            _sessionList.Remove(session);
    }

    public bool IsDisposed => _disposed;

    public void AddListener(DatagramListener listener)
    {
        if (!_listeners.TryAdd(listener.Service, listener))
            throw new TransportException(TransportError.InvalidAddress, $"service {listener.Service} already has a listener");
    }

    public void RemoveListener(DatagramListener listener) => _listeners.Remove(listener.Service);

    /// <summary>Queues a frame without payload.</summary>
    public void EmitControl(ReadOnlySpan<byte> dstMac, FrameKind kind, ushort service, ulong session, uint seq = 0) =>
        Emit(dstMac, kind, service, seq, session, 0, 0, 1, []);

    /// <summary>Queues every fragment of a message (a request, or a reply from the server's cache).</summary>
    public void EmitMessage(ReadOnlySpan<byte> dstMac, FrameKind kind, ushort service, ulong session, uint seq, ReadOnlySpan<byte> message)
    {
        int count = Reassembly.FragmentsFor(message.Length, FragmentPayload);
        for (int i = 0; i < count; i++)
        {
            int offset = i * FragmentPayload;
            var part = message.Slice(offset, Math.Min(FragmentPayload, message.Length - offset));
            Emit(dstMac, kind, service, seq, session, message.Length, i, count, part);
        }
    }

    /// <summary>The destination for a session whose peer is not known yet (a Hello): every station on the link.</summary>
    public static ReadOnlySpan<byte> AnyPeer => Broadcast;

    private void Emit(ReadOnlySpan<byte> dstMac, FrameKind kind, ushort service, uint seq, ulong session, int length, int index, int count, ReadOnlySpan<byte> payload)
    {
        if (_txCount == Burst)
            Flush();
        var frame = _tx.AsSpan(_txCount * _stride, _stride);
        DatagramFrame.Write(frame, dstMac, _mac, kind, service, seq, session, length, index, count);
        payload.CopyTo(frame[DatagramFrame.HeaderBytes..]);
        _txLengths[_txCount++] = DatagramFrame.HeaderBytes + payload.Length;
    }

    /// <summary>
    /// Hands queued frames to the link. A full tx ring is retried briefly (the peer is polling and drains it in
    /// microseconds); frames still refused after that count as lost, and retransmission recovers them.
    /// </summary>
    public void Flush()
    {
        int offset = 0;
        for (int attempt = 0; offset < _txCount && attempt < SendRetries; attempt++)
        {
            int sent = _link.Send(_tx.AsSpan(offset * _stride), _txLengths.AsSpan(offset, _txCount - offset), _stride);
            offset += sent;
            FramesSent += sent;
            if (offset < _txCount)
                Thread.SpinWait(20);
        }
        _txCount = 0;
    }

    /// <summary>Says goodbye to every open session, stops polling for good and closes the link.</summary>
    public void Dispose()
    {
        lock (Gate)
        {
            if (_disposed)
                return;
            for (int i = _sessionList.Count - 1; i >= 0; i--)
                _sessionList[i].Abandon();
            Flush();
            _disposed = true;
            _link.Dispose();
        }
    }
}
