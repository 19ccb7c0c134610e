using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// <see cref="IMigrationPeer"/> over TCP to another node's <see cref="PeerServer"/>. Each call borrows a pooled
/// connection (opened on demand), sends one frame and awaits one reply, so concurrent partitions and the priority
/// batcher each get their own connection and a pipelined partition has its next chunk in flight while it applies the
/// current one. A connection that failed is dropped; the call throws and the caller decides (a pull job fails, the
/// coordinator reports it). Also moves the remote node's view and reads its cores' views (<see cref="Views"/>) and
/// sends cluster control requests.
/// </summary>
public sealed class NetworkPeer : IMigrationPeer, IDisposable
{
    private readonly ConcurrentBag<Channel> _idle = [];
    private readonly Func<EndPoint> _resolve;
    private readonly byte[] _key;
    private volatile EndPoint? _lastResolved;
    private volatile bool _disposed;

    /// <summary>A peer at <paramref name="endPoint"/>; connects lazily, proving <paramref name="key"/> (the cluster's peer key).</summary>
    public NetworkPeer(EndPoint endPoint, byte[] key)
        : this(() => endPoint, key)
    {
    }

    /// <summary>
    /// A peer found through <paramref name="resolve"/> at every new connection, so a node that restarted on another
    /// port is found again. When the resolver throws (the node is not running, or the metadata store is unreachable)
    /// the connection goes to the endpoint last resolved, or, if there is none, the call fails like an unreachable
    /// peer (<see cref="IOException"/>), which pulls retry. Every connection proves <paramref name="key"/>, the cluster's
    /// peer key (<see cref="PeerHandshake"/>), and checks that the peer holds it too.
    /// </summary>
    public NetworkPeer(Func<EndPoint> resolve, byte[] key)
    {
        PeerHandshake.CheckKey(key);
        _key = [.. key];
        _resolve = resolve;
        Views = new RemoteCoreViews(this);
    }

    /// <summary>The remote node's view and its cores' views, as the migration coordinator drives them.</summary>
    public ICoreViews Views { get; }

    /// <summary>How long a connect may take.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public async ValueTask<ulong> VersionFloorAsync(CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(c.Request.Begin((byte)PeerOp.VersionFloor), cancellationToken).ConfigureAwait(false);
        ulong floor = (ulong)new PeerReader(reply.Payload).I64();
        Return(c);
        return floor;
    }

    /// <inheritdoc />
    public async ValueTask<PullPlan> PlanPullsAsync(int partitions, long from, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(c.Request.Begin((byte)PeerOp.PlanPulls).I32(partitions).I64(from), cancellationToken).ConfigureAwait(false);
        PullPlan plan = ReadPlan(reply.Payload);
        Return(c);
        return plan;
    }

    /// <inheritdoc />
    public async ValueTask<ScanCursor> PullAsync(SlotRange range, long incarnation, ScanCursor cursor, PullBuffer into, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage request = c.Request.Begin((byte)PeerOp.Pull).I32(range.Lo).I32(range.Hi).I64(incarnation).I64(cursor.Next).I64(cursor.End);
        PeerMessage reply = await c.CallAsync(request, cancellationToken).ConfigureAwait(false);
        ScanCursor next;
        try
        {
            next = LoadChunk(reply.Payload, incarnation, into);
        }
        catch (InvalidDataException)
        {
            c.Socket.Dispose(); // a reply this side cannot read: never reuse the connection
            throw;
        }
        catch (SourceRestartedException)
        {
            Return(c); // the exchange itself was complete: the connection serves the next pull
            throw;
        }
        Return(c);
        return next;
    }

    /// <summary>
    /// Streams the partition over a connection of its own (<see cref="PeerOp.PullStream"/>): the source scans and sends
    /// chunk after chunk while this side applies, TCP's window being the only flow control, so a chunk costs no round
    /// trip and no thread hand-off. Reads block the calling (pull) thread.
    /// </summary>
    public IPullStream OpenPulls(SlotRange range, long incarnation, ScanCursor from, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ValueTask<Socket> connecting = ConnectAsync(cancellationToken);
        Socket socket = connecting.IsCompletedSuccessfully ? connecting.Result : connecting.AsTask().GetAwaiter().GetResult();
        try
        {
            return new NetworkPullStream(socket, range, incarnation, from, cancellationToken) { Timeout = StreamTimeout };
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// How long a pull stream waits for its next chunk before it gives up on the source (an <see cref="IOException"/>:
    /// the puller reopens from its cursor). A chunk normally follows within milliseconds; a scan over a long stretch of
    /// the log without a record of the range can take seconds.
    /// </summary>
    public TimeSpan StreamTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <inheritdoc />
    public async ValueTask PriorityPullAsync(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(PriorityRequest(c, keys.Span), cancellationToken).ConfigureAwait(false);
        LoadRecords(c, reply.Payload, into);
        Return(c);
    }

    private static PeerMessage PriorityRequest(Channel c, ReadOnlySpan<PullKey> keys)
    {
        PeerMessage request = c.Request.Begin((byte)PeerOp.PriorityPull).I32(keys.Length);
        foreach (PullKey k in keys)
            request.I32((int)k.Tenant).I32((int)k.Table).I32(k.Key.Length).Bytes(k.Key.Span);
        return request;
    }

    /// <summary>How long a priority pull waits for its reply before the source counts as unreachable (and the pull is sent again).</summary>
    public TimeSpan PriorityTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <inheritdoc />
    public void PriorityPull(ReadOnlyMemory<PullKey> keys, PullBuffer into, CancellationToken cancellationToken = default)
    {
        Channel c = RentAsync(cancellationToken).AsTask().GetAwaiter().GetResult(); // completes at once with a pooled connection
        PeerMessage reply = c.Call(PriorityRequest(c, keys.Span), PriorityTimeout, cancellationToken);
        LoadRecords(c, reply.Payload, into);
        if (cancellationToken.IsCancellationRequested)
        {
            // The cancellation may have closed the socket after the reply came: never pool it.
            c.Socket.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
        }
        Return(c);
    }

    /// <inheritdoc />
    public async ValueTask<long> DropAsync(SlotRange range, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(c.Request.Begin((byte)PeerOp.Drop).I32(range.Lo).I32(range.Hi), cancellationToken).ConfigureAwait(false);
        long dropped = new PeerReader(reply.Payload).I64();
        Return(c);
        return dropped;
    }

    /// <summary>Sends a cluster control request (JSON) and returns the reply (JSON).</summary>
    public async Task<string> ControlAsync(string json, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(c.Request.Begin((byte)PeerOp.Control).Bytes(Encoding.UTF8.GetBytes(json)), cancellationToken).ConfigureAwait(false);
        string text = Encoding.UTF8.GetString(reply.Payload);
        Return(c);
        return text;
    }

    /// <summary>Moves the remote node to <paramref name="view"/>, owning <paramref name="owned"/> in it (a decision's BumpView for it).</summary>
    public async Task AdvanceViewAsync(int view, IReadOnlyList<SlotRange> owned, CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage request = c.Request.Begin((byte)PeerOp.AdvanceView).I32(view).I32(owned.Count);
        foreach (SlotRange r in owned)
            request.I32(r.Lo).I32(r.Hi);
        await c.CallAsync(request, cancellationToken).ConfigureAwait(false);
        Return(c);
    }

    /// <summary>The view each of the remote node's cores executes in.</summary>
    public async Task<int[]> CoreViewsAsync(CancellationToken cancellationToken = default)
    {
        Channel c = await RentAsync(cancellationToken).ConfigureAwait(false);
        PeerMessage reply = await c.CallAsync(c.Request.Begin((byte)PeerOp.CoreViews), cancellationToken).ConfigureAwait(false);
        var r = new PeerReader(reply.Payload);
        var views = new int[r.I32()];
        for (int i = 0; i < views.Length; i++)
            views[i] = r.I32();
        Return(c);
        return views;
    }

    /// <summary>Closes every pooled connection.</summary>
    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out Channel? c))
            c.Socket.Dispose();
    }

    private static PullPlan ReadPlan(ReadOnlySpan<byte> payload)
    {
        try
        {
            var r = new PeerReader(payload);
            long incarnation = r.I64();
            int n = r.I32();
            if (n < 0 || (long)n * 16 > r.Rest.Length)
                throw new InvalidDataException($"a pull plan of {n} partitions in {payload.Length} bytes");
            var plan = new ScanCursor[n];
            for (int i = 0; i < plan.Length; i++)
                plan[i] = new ScanCursor(r.I64(), r.I64());
            return new PullPlan(incarnation, plan);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidDataException("a pull plan reply too short for its content", e);
        }
    }

    /// <summary>
    /// Reads a chunk reply (<c>i64 incarnation, i64 next, i64 end, i32 count, records</c>) into <paramref name="into"/>;
    /// returns the next cursor. A reply that names another incarnation than <paramref name="incarnation"/> (the source
    /// restarted) throws <see cref="SourceRestartedException"/>; a malformed one <see cref="InvalidDataException"/>.
    /// </summary>
    internal static ScanCursor LoadChunk(ReadOnlySpan<byte> payload, long incarnation, PullBuffer into)
    {
        ScanCursor next;
        long now;
        var r = new PeerReader(payload);
        try
        {
            now = r.I64();
            next = new ScanCursor(r.I64(), r.I64());
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new InvalidDataException("a pull chunk reply too short for its header", e);
        }
        if (now != incarnation)
        {
            into.Clear();
            throw new SourceRestartedException(now);
        }
        LoadRecords(r.Rest, into);
        return next;
    }

    /// <summary>Reads <c>i32 count, records</c> into <paramref name="into"/>, checked (<see cref="PullBuffer.Load"/>).</summary>
    private static void LoadRecords(ReadOnlySpan<byte> payload, PullBuffer into)
    {
        if (payload.Length < 4)
            throw new InvalidDataException($"a records reply of {payload.Length} bytes has no count");
        var r = new PeerReader(payload);
        int count = r.I32();
        into.Load(r.Rest, count);
    }

    /// <summary><see cref="LoadRecords(ReadOnlySpan{byte}, PullBuffer)"/> of a reply on <paramref name="c"/>, which is closed if the reply is malformed.</summary>
    private static void LoadRecords(Channel c, ReadOnlySpan<byte> payload, PullBuffer into)
    {
        try
        {
            LoadRecords(payload, into);
        }
        catch (InvalidDataException)
        {
            c.Socket.Dispose();
            throw;
        }
    }

    private async ValueTask<Channel> RentAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_idle.TryTake(out Channel? c))
            return c;
        return new Channel(await ConnectAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>
    /// A new connection to the peer, authenticated both ways (<see cref="PeerHandshake"/>), within
    /// <see cref="ConnectTimeout"/>; an unreachable or silent peer is an <see cref="IOException"/> or
    /// <see cref="SocketException"/>, a refused handshake a <see cref="PeerException"/>.
    /// </summary>
    private async ValueTask<Socket> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ConnectTimeout);
            EndPoint endPoint;
            try
            {
                endPoint = _resolve();
                _lastResolved = endPoint;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The node is not registered, or the metadata store that says where it is cannot be reached (etcd
                // down): dial where the peer was last found (a pull stream opens a connection of its own, so this
                // happens mid-migration), or fail like an unreachable peer, which pulls retry.
                endPoint = _lastResolved ?? throw new IOException("peer not reachable: " + e.Message, e);
            }
            try
            {
                await socket.ConnectAsync(endPoint, timeout.Token).ConfigureAwait(false);
                await PeerHandshake.ConnectAsync(socket, _key, new PeerMessage(), timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new IOException($"peer {endPoint} did not connect and authenticate within {ConnectTimeout.TotalSeconds:F0} s");
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return socket;
    }

    private void Return(Channel c)
    {
        if (_disposed)
            c.Socket.Dispose();
        else
            _idle.Add(c);
    }

    /// <summary>One <see cref="PeerOp.PullStream"/> on its own connection; closing it (or cancelling) ends it on both sides.</summary>
    private sealed class NetworkPullStream : IPullStream
    {
        private readonly Socket _socket;
        private readonly PeerMessage _frame = new();
        private readonly PullBuffer _records = new();
        private readonly CancellationTokenRegistration _cancel;
        private readonly long _incarnation;
        private bool _done;

        public NetworkPullStream(Socket socket, SlotRange range, long incarnation, ScanCursor from, CancellationToken cancellationToken)
        {
            _socket = socket;
            _incarnation = incarnation;
            _frame.Begin((byte)PeerOp.PullStream).I32(range.Lo).I32(range.Hi).I64(incarnation).I64(from.Next).I64(from.End).Send(socket);
            // A blocked Receive does not see the token: closing the socket wakes it with an exception.
            _cancel = cancellationToken.Register(static s => ((Socket)s!).Dispose(), socket);
        }

        public TimeSpan Timeout
        {
            init => _socket.ReceiveTimeout = (int)value.TotalMilliseconds;
        }

        public PullBuffer Read(out ScanCursor next)
        {
            if (_done)
                throw new InvalidOperationException("the pull stream has ended");
            try
            {
                if (!_frame.Receive(_socket))
                    throw new IOException("the source closed the pull stream");
            }
            catch (ObjectDisposedException e)
            {
                throw new OperationCanceledException("the pull stream was cancelled", e);
            }
            _frame.ThrowIfFailed();
            try
            {
                next = LoadChunk(_frame.Payload, _incarnation, _records);
            }
            catch (Exception e) when (e is SourceRestartedException or InvalidDataException)
            {
                _done = true; // the source ends the stream after such a frame; a malformed one leaves it unusable
                throw;
            }
            _done = next.IsDone;
            return _records;
        }

        public void Dispose()
        {
            _cancel.Dispose();
            _socket.Dispose();
        }
    }

    /// <summary>One connection with its reusable request and reply frames.</summary>
    private sealed class Channel(Socket socket)
    {
        public Socket Socket { get; } = socket;
        public PeerMessage Request { get; } = new();
        private readonly PeerMessage _reply = new();

        /// <summary>The call on the calling thread: blocking send and receive, the receive bounded by <paramref name="timeout"/>.</summary>
        public PeerMessage Call(PeerMessage request, TimeSpan timeout, CancellationToken cancellationToken)
        {
            // A blocked receive does not see the token: closing the socket wakes it with an exception.
            using CancellationTokenRegistration cancel = cancellationToken.Register(static s => ((Socket)s!).Dispose(), Socket);
            try
            {
                Socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
                request.Send(Socket);
                if (!_reply.Receive(Socket))
                    throw new IOException("the peer closed the connection");
            }
            catch (ObjectDisposedException e) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("the call was cancelled", e, cancellationToken);
            }
            catch
            {
                Socket.Dispose();
                throw;
            }
            return Checked();
        }

        public async ValueTask<PeerMessage> CallAsync(PeerMessage request, CancellationToken cancellationToken)
        {
            try
            {
                await request.SendAsync(Socket, cancellationToken).ConfigureAwait(false);
                await _reply.ReceiveAsync(Socket, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                Socket.Dispose();
                throw;
            }
            // The reply completed on the socket engine's thread (a node runs socket completions inline, on one such
            // thread on a small machine): the caller goes on from a pool thread instead, since a caller that blocks
            // there (the coordinator's synchronous view changes and metadata writes) would stop every socket of the
            // process, its own next peer call's included (seen: a migrate of ranges from two sources timed out
            // connecting to the second one, for two minutes).
            await Task.CompletedTask.ConfigureAwait(ConfigureAwaitOptions.ForceYielding);
            return Checked();
        }

        /// <summary>The reply, or its remote failure thrown (the connection is then not returned to the pool).</summary>
        private PeerMessage Checked()
        {
            if (_reply.Code != PeerFrame.Ok)
                Socket.Dispose();
            return _reply.ThrowIfFailed();
        }
    }

    /// <summary>The remote node's views, for the coordinator (which polls them while it waits for a cut).</summary>
    private sealed class RemoteCoreViews(NetworkPeer peer) : ICoreViews
    {
        public int CoreCount => Fetch().Length;

        public void Advance(int view, IReadOnlyList<SlotRange> owned) => peer.AdvanceViewAsync(view, owned).GetAwaiter().GetResult();

        /// <summary>One round trip per question: the coordinator polls while it waits for a cut, a few times per migration.</summary>
        public int CoreView(int core) => Fetch()[core];

        private int[] Fetch() => peer.CoreViewsAsync().GetAwaiter().GetResult();
    }
}
