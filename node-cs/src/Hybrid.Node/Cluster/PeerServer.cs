using System.Net;
using System.Net.Sockets;
using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The node's peer port (<see cref="PeerOp"/>): serves migration pulls from this node's store, moves this node's view
/// when a coordinator elsewhere carries out a BumpView for it, reports its workers' views, and answers cluster control
/// requests. Deliberately not on the node's workers: a pull scans the log and may block on disk, so each peer
/// connection runs on its own thread and client batches keep the workers. Every connection must first pass the
/// handshake (<see cref="PeerHandshake"/>) with the cluster's peer key; a connection that fails it is told why and closed.
/// </summary>
public sealed class PeerServer : IDisposable
{
    private readonly Socket _listener;
    private readonly MigrationSource _source;
    private readonly ICoreViews _views;
    private readonly Func<string, string>? _control;
    private readonly byte[] _key;
    private long _refused;
    private string? _lastRefusal;
    private readonly List<Socket> _open = [];
    private readonly Lock _lock = new();
    private volatile bool _stopping;

    /// <summary>Listens on <paramref name="endPoint"/> (port 0 = ephemeral) and serves until disposed.</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="key">The cluster's peer key (<see cref="PeerHandshake.KeyBytes"/> bytes) every connection must prove.</param>
    /// <param name="source">Serves pulls and drops from this node's store.</param>
    /// <param name="views">This node's view and its workers' views.</param>
    /// <param name="control">Answers <see cref="PeerOp.Control"/> requests (JSON in, JSON out); null = refused.</param>
    public PeerServer(IPEndPoint endPoint, byte[] key, MigrationSource source, ICoreViews views, Func<string, string>? control = null)
    {
        PeerHandshake.CheckKey(key);
        _key = [.. key];
        _source = source;
        _views = views;
        _control = control;
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        _listener.Bind(endPoint);
        _listener.Listen(64);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        new Thread(AcceptLoop) { IsBackground = true, Name = "peer-accept" }.Start();
    }

    /// <summary>The bound address.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>How many connections failed the handshake (wrong key, another version, silence past the deadline).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Why the last refused connection was refused (null when none was).</summary>
    public string? LastRefusal => Volatile.Read(ref _lastRefusal);

    private void AcceptLoop()
    {
        while (!_stopping)
        {
            Socket socket;
            try
            {
                socket = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            socket.NoDelay = true;
            lock (_lock)
                _open.Add(socket);
            new Thread(() => Serve(socket)) { IsBackground = true, Name = "peer-conn" }.Start();
        }
    }

    private void Serve(Socket socket)
    {
        var request = new PeerMessage();
        var reply = new PeerMessage();
        var records = new PullBuffer();
        try
        {
            if (!Authenticated(socket, request))
                return;
            while (!_stopping && request.Receive(socket))
            {
                if ((PeerOp)request.Code == PeerOp.PullStream)
                {
                    Stream(socket, request.Payload, reply, records);
                    continue;
                }
                try
                {
                    Handle((PeerOp)request.Code, request.Payload, reply.Begin(PeerFrame.Ok), records);
                }
                catch (Exception e) when (e is not (SocketException or IOException or ObjectDisposedException))
                {
                    reply.Begin(PeerFrame.Failed).Bytes(Encoding.UTF8.GetBytes(e.GetType().Name + ": " + e.Message));
                }
                reply.Send(socket);
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // The peer went away; its calls fail on its side.
        }
        catch (Exception)
        {
            // Anything else (a frame this server cannot make sense of) closes this connection only, and the peer's call
            // fails on its side: an exception that left this thread would end the node's process.
        }
        finally
        {
            lock (_lock)
                _open.Remove(socket);
            socket.Dispose();
        }
    }

    private bool Authenticated(Socket socket, PeerMessage frame)
    {
        string? refusal;
        try
        {
            if (PeerHandshake.Accept(socket, _key, frame, out refusal))
                return true;
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            refusal = "no valid handshake: " + e.Message;
        }
        Interlocked.Increment(ref _refused);
        Volatile.Write(ref _lastRefusal, $"{socket.RemoteEndPoint}: {refusal}");
        return false;
    }

    /// <summary>
    /// <see cref="PeerOp.PullStream"/>: sends the partition chunk after chunk (at least one frame, the last one with a
    /// done cursor) until it ends, this server stops, or the target goes away (the send fails). Background work: with
    /// <see cref="BackgroundPriority"/> on, the thread drops below client work first (this connection serves nothing else).
    /// </summary>
    private void Stream(Socket socket, ReadOnlySpan<byte> payload, PeerMessage frame, PullBuffer records)
    {
        BackgroundPriority.LowerCurrentThread();
        SlotRange range = default;
        long incarnation = 0;
        Storage.ScanCursor cursor = default;
        bool parsed = false;
        while (!_stopping)
        {
            try
            {
                if (!parsed)
                {
                    // Inside the try: a short or malformed request gets a Failed frame, not an exception on this thread.
                    var r = new PeerReader(payload);
                    range = new SlotRange(r.I32(), r.I32());
                    incarnation = r.I64();
                    cursor = new Storage.ScanCursor(r.I64(), r.I64());
                    parsed = true;
                }
                cursor = _source.Pull(range, incarnation, cursor, records);
                frame.Begin(PeerFrame.Ok).I64(incarnation).I64(cursor.Next).I64(cursor.End).I32(records.Count).Bytes(records.Encoded);
            }
            catch (SourceRestartedException e)
            {
                // The cursor was planned before this node's store restarted: nothing scanned; the frame names the
                // incarnation now, and the target starts its pulls over.
                frame.Begin(PeerFrame.Ok).I64(e.Incarnation).I64(cursor.Next).I64(cursor.End).I32(0);
                frame.Send(socket);
                return;
            }
            catch (Exception e) when (e is not (SocketException or IOException or ObjectDisposedException))
            {
                frame.Begin(PeerFrame.Failed).Bytes(Encoding.UTF8.GetBytes(e.GetType().Name + ": " + e.Message));
                frame.Send(socket);
                return;
            }
            frame.Send(socket);
            if (cursor.IsDone)
                return;
        }
    }

    private void Handle(PeerOp op, ReadOnlySpan<byte> payload, PeerMessage reply, PullBuffer records)
    {
        var r = new PeerReader(payload);
        switch (op)
        {
            case PeerOp.Pull:
                {
                    var range = new SlotRange(r.I32(), r.I32());
                    long incarnation = r.I64();
                    var cursor = new Storage.ScanCursor(r.I64(), r.I64());
                    try
                    {
                        Storage.ScanCursor next = _source.Pull(range, incarnation, cursor, records);
                        reply.I64(incarnation).I64(next.Next).I64(next.End).I32(records.Count).Bytes(records.Encoded);
                    }
                    catch (SourceRestartedException e)
                    {
                        // Planned before this node's store restarted: nothing scanned, the reply names the incarnation now.
                        reply.I64(e.Incarnation).I64(cursor.Next).I64(cursor.End).I32(0);
                    }
                    break;
                }
            case PeerOp.PriorityPull:
                {
                    int n = r.I32();
                    if (n is < 0 or > MigrationSource.MaxPriorityKeys)
                        throw new InvalidDataException($"priority pull of {n} keys");
                    var keys = new PullKey[n];
                    for (int i = 0; i < n; i++)
                    {
                        uint tenant = (uint)r.I32(), table = (uint)r.I32();
                        keys[i] = new PullKey(tenant, table, r.Bytes(r.I32()).ToArray());
                    }
                    _source.PriorityPull(keys, records);
                    reply.I32(records.Count).Bytes(records.Encoded);
                    break;
                }
            case PeerOp.PlanPulls:
                {
                    PullPlan plan = _source.PlanPulls(r.I32(), r.I64());
                    reply.I64(plan.Incarnation).I32(plan.Partitions.Length);
                    foreach (Storage.ScanCursor c in plan.Partitions)
                        reply.I64(c.Next).I64(c.End);
                    break;
                }
            case PeerOp.Drop:
                {
                    // A scan of the whole log and a delete per record: background work, on a thread of its own that
                    // BackgroundPriority may lower (this connection's thread stays as it is, for what it serves next).
                    var range = new SlotRange(r.I32(), r.I32());
                    long removed = 0;
                    Exception? failed = null;
                    var dropper = new Thread(() =>
                    {
                        BackgroundPriority.LowerCurrentThread();
                        try
                        {
                            removed = _source.Drop(range);
                        }
                        catch (Exception e)
                        {
                            failed = e;
                        }
                    })
                    { IsBackground = true, Name = "peer-drop" };
                    dropper.Start();
                    dropper.Join();
                    if (failed is not null)
                        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed);
                    reply.I64(removed);
                    break;
                }
            case PeerOp.VersionFloor:
                reply.I64((long)_source.VersionFloor);
                break;
            case PeerOp.AdvanceView:
                {
                    int view = r.I32();
                    int count = r.I32();
                    if (count is < 0 or > Storage.Slot.Count)
                        throw new InvalidDataException($"AdvanceView with {count} ranges");
                    var owned = new SlotRange[count];
                    for (int i = 0; i < owned.Length; i++)
                        owned[i] = new SlotRange(r.I32(), r.I32());
                    _views.Advance(view, owned);
                    break;
                }
            case PeerOp.CoreViews:
                reply.I32(_views.CoreCount);
                for (int i = 0; i < _views.CoreCount; i++)
                    reply.I32(_views.CoreView(i));
                break;
            case PeerOp.Control when _control is not null:
                reply.Bytes(Encoding.UTF8.GetBytes(_control(Encoding.UTF8.GetString(payload))));
                break;
            default:
                throw new InvalidDataException($"unsupported peer op 0x{(byte)op:x2}");
        }
    }

    /// <summary>Stops listening and closes every peer connection.</summary>
    public void Dispose()
    {
        _stopping = true;
        _listener.Dispose();
        lock (_lock)
        {
            foreach (Socket s in _open)
                s.Dispose();
            _open.Clear();
        }
    }
}
