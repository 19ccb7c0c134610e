using System.Buffers;
using System.Diagnostics;
using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>
/// An asynchronous, batching session on one connection to one node (native protocol v1, docs/protocol.md).
/// Thread-safe: any number of callers may issue requests at once; requests issued close together share a frame,
/// several frames are in flight at once, and results come back in request order. After ViewChanged the session
/// refreshes routing, adopts the node's view and resends the batch (later batches wait behind it, so writes to a key
/// keep their order). A broken connection fails the requests in flight with <see cref="HybridConnectionException"/>
/// (their outcome is unknown) and is re-opened, with a new handshake, by the next request; requests that never
/// reached the node fail with <see cref="HybridNotSentException"/> (safe to send again).
/// WARNING: no operation is completed or failed while <c>_lock</c> is held: with <see cref="HybridClientOptions.InlineCompletions"/>
/// the caller's continuation runs right there and may call back into the session (the lock is reentrant). Failures
/// are collected under the lock (<see cref="FailLaterLocked"/>) and delivered after it (<see cref="DrainFailures"/>).
/// </summary>
public sealed partial class HybridSession : IAsyncDisposable
{
    private readonly HybridClientOptions _options;
    private readonly Lock _lock = new();
    private readonly List<Batch> _inFlight = []; // sent, oldest first; replies may come in any order (HelloOptions.OutOfOrderReplies)
    private readonly Queue<Batch> _full = new();
    private readonly List<Batch> _resend = []; // rejected (ViewChanged/Retry), to go again before any other, by first-send order
    private List<(PendingOp Op, Exception Error)> _failures = []; // failed under the lock, delivered by DrainFailures
    private volatile bool _hasFailures;
    private int _holding; // rejected batches whose delay or routing refresh runs: nothing is sent meanwhile
    private readonly Stack<Batch> _spare = new();
    private readonly Timer _timer;
    private readonly Action<object?> _flushCallback;
    private readonly ClientLink.ReplyHandler _onReply;
    private Batch? _open;
    private ClientLink? _link;
    private Task? _connecting;
    private bool _flushScheduled;
    private bool _disposed;
    private uint _nextSeq;
    private ulong _view;
    private ulong _sessionId;
    private long _controlSent; // Sent of the last install or uninstall answered (under _lock)
    private long _controlAnswered; // when its reply came

    private HybridSession(HybridClientOptions options)
    {
        _options = options;
        _flushCallback = _ => Flush();
        _onReply = OnReply;
        _timer = new Timer(_ => OnTimer(), null, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>The node's view as this session last learned it (stamped on every batch).</summary>
    public ulong View => Volatile.Read(ref _view);

    /// <summary>The session id the node gave in its Hello reply.</summary>
    public ulong SessionId => Volatile.Read(ref _sessionId);

    /// <summary>Connects, says Hello and answers the AUTH challenge. Throws <see cref="HybridProtocolException"/> when refused.</summary>
    public static async Task<HybridSession> ConnectAsync(HybridClientOptions options, CancellationToken cancellationToken = default)
    {
        var session = new HybridSession(options);
        try
        {
            await session.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        long period = (long)Math.Clamp(options.Timeout.TotalMilliseconds / 4, 10, 1000);
        session._timer.Change(period, period);
        return session;
    }

    /// <summary>Reads a key.</summary>
    public ValueTask<GetResult> GetAsync(ushort table, ReadOnlySpan<byte> key)
    {
        var op = Submit(OpCode.Get, table, key, default, 0);
        return new ValueTask<GetResult>(op, op.Token);
    }

    /// <summary>Writes a key.</summary>
    public ValueTask<WriteResult> PutAsync(ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        var op = Submit(OpCode.Put, table, key, value, 0);
        return new ValueTask<WriteResult>(op, op.Token);
    }

    /// <summary>Writes a key only if its version is <paramref name="expectedVersion"/> (0 = must be absent).</summary>
    public ValueTask<WriteResult> CondPutAsync(ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion)
    {
        var op = Submit(OpCode.CondPut, table, key, value, expectedVersion);
        return new ValueTask<WriteResult>(op, op.Token);
    }

    /// <summary>Deletes a key (Ok, or NotFound when there was none).</summary>
    public ValueTask<WriteResult> DeleteAsync(ushort table, ReadOnlySpan<byte> key)
    {
        var op = Submit(OpCode.Delete, table, key, default, 0);
        return new ValueTask<WriteResult>(op, op.Token);
    }

    /// <summary>Reads several keys of one table in one request; results in key order.</summary>
    public ValueTask<GetResult[]> MultiGetAsync(ushort table, IReadOnlyList<byte[]> keys)
    {
        CheckKeyCount(keys.Count);
        int size = keys.Sum(k => PackedKeyReader.EncodedLength(k.Length));
        var packed = ArrayPool<byte>.Shared.Rent(Math.Max(1, size));
        try
        {
            int at = 0;
            foreach (var key in keys)
                at += PackedKeyReader.Write(packed.AsSpan(at), key);
            var op = Submit(OpCode.MultiGet, table, default, packed.AsSpan(0, size), 0);
            return new ValueTask<GetResult[]>(op, op.Token);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    /// <summary>
    /// Reads several keys of one table in one request, the keys packed back to back, each <paramref name="keySize"/>
    /// bytes long (as a stored key list holds them); results in key order.
    /// </summary>
    public ValueTask<GetResult[]> MultiGetAsync(ushort table, ReadOnlySpan<byte> keys, int keySize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keySize);
        if (keys.Length % keySize != 0)
            throw new ArgumentException($"{keys.Length} bytes of keys is not a multiple of the key size {keySize}", nameof(keys));
        int count = keys.Length / keySize;
        CheckKeyCount(count);
        int size = count * PackedKeyReader.EncodedLength(keySize);
        var packed = ArrayPool<byte>.Shared.Rent(Math.Max(1, size));
        try
        {
            int at = 0;
            for (int k = 0; k < count; k++)
                at += PackedKeyReader.Write(packed.AsSpan(at), keys.Slice(k * keySize, keySize));
            var op = Submit(OpCode.MultiGet, table, default, packed.AsSpan(0, size), 0);
            return new ValueTask<GetResult[]>(op, op.Token);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    /// <summary>A request that does nothing (measures the protocol's ceiling). Throws if the node refuses it.</summary>
    public ValueTask NoopAsync()
    {
        var op = Submit(OpCode.Noop, 0, default, default, 0);
        return new ValueTask(op, op.Token);
    }

    /// <summary>Sends the batch's requests together and returns their results in order (writes: Value = null).</summary>
    public async ValueTask<GetResult[]> ExecuteAsync(HybridBatch batch)
    {
        var ops = new PendingOp[batch.Count];
        CheckSizes(batch);
        lock (_lock)
        {
            for (int i = 0; i < ops.Length; i++)
            {
                var item = batch.Items[i];
                ops[i] = AppendLocked(item.Op, item.Table, item.Key.Span, item.Value.Span, item.Expected);
            }
            FlushLocked(force: true);
        }
        DrainFailures();
        var results = new GetResult[ops.Length];
        for (int i = 0; i < ops.Length; i++)
            results[i] = await new ValueTask<GetResult>(ops[i], ops[i].Token).ConfigureAwait(false);
        return results;
    }

    /// <summary>
    /// Sends the batch's requests together and puts their results, in order, into <paramref name="results"/> (reused
    /// between calls: values are copied into its own buffer, so a caller that reuses both the batch and the results
    /// allocates nothing per request or per batch). Completes when every result is there; a connection failure makes
    /// it throw (the outcome of requests in flight is unknown). One call at a time per <paramref name="results"/>.
    /// </summary>
    public ValueTask ExecuteAsync(HybridBatch batch, HybridBatchResults results)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckSizes(batch);
        short token = results.Begin(batch.Count, _options.InlineCompletions);
        if (batch.Count == 0)
            return new ValueTask(results, token);
        lock (_lock)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                var item = batch.Items[i];
                var op = AppendLocked(item.Op, item.Table, item.Key.Span, item.Value.Span, item.Expected);
                op.Results = results;
                op.Index = i;
            }
            FlushLocked(force: true);
        }
        DrainFailures();
        return new ValueTask(results, token);
    }

    private void CheckSizes(HybridBatch batch)
    {
        for (int i = 0; i < batch.Count; i++)
            CheckSizes(batch.Items[i].Op, batch.Items[i].Key.Length, batch.Items[i].Value.Length);
    }

    /// <summary>A MultiGet's keys count as requests of its frame: more than a frame may hold is refused before sending.</summary>
    private void CheckKeyCount(int count)
    {
        // The node counts the multi-get itself and each key; its frame may carry up to MaxBatchOps other requests.
        int most = _options.Limits.MaxRequestsPerBatch - 1 - _options.MaxBatchOps;
        if (count > most)
            throw new ArgumentException($"a multi-get reads at most {most} keys (the node's limit on requests per frame, less the requests batched with it); this one has {count}", "keys");
    }

    /// <summary>
    /// A request over the node's limits (<see cref="HybridClientOptions.Limits"/>) is refused before any byte of it
    /// enters a shared frame: the node would answer that whole frame TooLarge and close the connection, failing the
    /// other callers' requests in it and in flight.
    /// </summary>
    private void CheckSizes(OpCode code, int keyLength, int valueLength)
    {
        ProtocolLimits limits = _options.Limits;
        int maxKey = Math.Min(limits.MaxKeyBytes, ushort.MaxValue);
        if (keyLength > maxKey)
            throw new ArgumentException($"a key (or extension name) is at most {maxKey} bytes (the node's limit); this one has {keyLength}", "key");
        // A MultiGet's packed keys travel as its value, bounded by the frame rather than by the value limit.
        // ... and shares its frame with up to MaxBatchBytes of other requests.
        int room = limits.MaxFrameBytes - FrameHeader.Size - RequestHeader.Size - _options.MaxBatchBytes;
        if (code == OpCode.MultiGet && valueLength > room)
            throw new ArgumentException($"a multi-get's keys take {valueLength} bytes; at most {room} fit a frame with the requests batched beside it (the node's limit is {limits.MaxFrameBytes})", "keys");
        if (code != OpCode.MultiGet && valueLength > limits.MaxValueBytes)
            throw new ArgumentException($"a value (or extension source or arguments) is at most {limits.MaxValueBytes} bytes (the node's limit); this one has {valueLength}", "value");
    }

    private PendingOp Submit(OpCode code, ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expected)
    {
        CheckSizes(code, key.Length, value.Length);
        PendingOp submitted;
        lock (_lock)
        {
            var op = AppendLocked(code, table, key, value, expected);
            if (_full.Count > 0)
            {
                FlushLocked(force: false);
            }
            else if (!_flushScheduled)
            {
                _flushScheduled = true;
                if (_options.Linger > TimeSpan.Zero)
                    _ = Task.Delay(_options.Linger).ContinueWith(_ => Flush(), TaskScheduler.Default);
                else
                    ThreadPool.UnsafeQueueUserWorkItem(_flushCallback, null, preferLocal: true);
            }
            submitted = op;
        }
        DrainFailures();
        return submitted;
    }

    private PendingOp AppendLocked(OpCode code, ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expected)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckSizes(code, key.Length, value.Length);
        var open = _open ??= NewBatchLocked();
        open.WaitsForControl |= code is OpCode.Install or OpCode.Uninstall;
        int mark = open.Buffer.Length;
        try
        {
            open.Buffer.AppendRequest(code, table, key, value, expected);
        }
        catch
        {
            // The frame is shared with other callers: leave no partial request in it.
            open.Buffer.Truncate(mark);
            throw;
        }
        var op = PendingOp.Rent(code, _options.InlineCompletions);
        open.Ops.Add(op);
        if (open.Ops.Count >= _options.MaxBatchOps || open.Buffer.Length >= _options.MaxBatchBytes)
        {
            // Full: it waits for a free in-flight slot while later requests start the next frame.
            _full.Enqueue(open);
            _open = null;
        }
        return op;
    }

    private Batch NewBatchLocked()
    {
        var batch = _spare.Count > 0 ? _spare.Pop() : new Batch();
        batch.Buffer.Clear();
        batch.Ops.Clear();
        batch.Resends = 0;
        batch.Order = 0;
        batch.WaitsForControl = false;
        batch.Generation++;
        batch.Start = batch.Buffer.BeginFrame();
        batch.Opened = Stopwatch.GetTimestamp();
        return batch;
    }

    private void Flush()
    {
        lock (_lock)
        {
            _flushScheduled = false;
            FlushLocked(force: true);
        }
        DrainFailures();
    }

    /// <summary>
    /// Sends rejected batches due again, then full batches, then (when <paramref name="force"/>) the open one, while
    /// in-flight slots are free; reconnects first if needed. Sends happen under the lock so the wire order is the
    /// in-flight order (<see cref="ClientLink.Send"/> never blocks). While a rejected batch waits for its delay or
    /// routing refresh nothing is sent, so a later write to the same key cannot overtake it.
    /// </summary>
    private void FlushLocked(bool force)
    {
        if (_disposed)
            return;
        if (_resend.Count == 0 && _full.Count == 0 && (_open is null || _open.Ops.Count == 0))
            return;
        if (_link is null)
        {
            _connecting ??= ReconnectAsync();
            return;
        }
        if (_holding > 0)
            return; // the rejected batch's resend flushes
        while (_inFlight.Count < _options.MaxInFlightBatches && _link is not null)
        {
            Batch batch;
            if (_resend.Count > 0)
            {
                batch = _resend[0];
                _resend.RemoveAt(0);
            }
            else if (_full.Count > 0)
                batch = _full.Dequeue();
            else if (force && _open is { Ops.Count: > 0 })
            {
                batch = _open;
                _open = null;
            }
            else
                return; // a reply will free a slot and flush again
            // A resend keeps its requests; only the header changes (the CRC covers the payload only).
            batch.Seq = ++_nextSeq;
            if (batch.Order == 0)
                batch.Order = batch.Seq;
            batch.Buffer.EndFrame(batch.Start, FrameKind.Request, (ushort)batch.Ops.Count, batch.Seq, _sessionId, _view);
            SendLocked(batch);
        }
    }

    private void SendLocked(Batch batch)
    {
        batch.Sent = Stopwatch.GetTimestamp();
        _inFlight.Add(batch);
        try
        {
            _link!.Send(batch.Buffer.WrittenMemory);
        }
        catch (HybridConnectionException e)
        {
            // This frame never left (an earlier send failed); the batches sent before it have an unknown outcome.
            _inFlight.Remove(batch);
            FailLaterLocked(batch.Ops, new HybridNotSentException("not sent: " + e.Message, e));
            batch.Ops.Clear();
            _spare.Push(batch);
            BreakLocked(e);
        }
    }

    private async Task ReceiveLoop(ClientLink link)
    {
        try
        {
            await link.ReceiveLoopAsync(_onReply).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                if (ReferenceEquals(_link, link))
                    BreakLocked(e as HybridConnectionException ?? new HybridConnectionException("connection failed: " + e.Message, e));
            }
            DrainFailures();
        }
    }

    private ValueTask OnReply(FrameHeader header, ReadOnlyMemory<byte> payload)
    {
        Batch batch;
        lock (_lock)
        {
            int at = 0;
            while (at < _inFlight.Count && _inFlight[at].Seq != header.BatchSeq)
                at++;
            if (at == _inFlight.Count)
                throw new HybridProtocolException(Status.Malformed, $"reply to batch {header.BatchSeq}, which is not in flight");
            batch = _inFlight[at];
            _inFlight.RemoveAt(at);
            if (batch.WaitsForControl)
            {
                // The frames sent after it waited for it on the node: their clocks start again now (OnTimer).
                _controlSent = batch.Sent;
                _controlAnswered = Stopwatch.GetTimestamp();
            }
        }
        if (header.Kind == FrameKind.Rejected)
        {
            var reader = new ResultReader(payload.Span);
            var status = reader.TryRead(out var result) ? result.Status : Status.Malformed;
            bool resend = status is Status.ViewChanged or Status.Retry && batch.Resends < _options.MaxResends;
            lock (_lock)
            {
                // The header carries the node's current view: batches sent from now on carry it (a resend below, or,
                // under ClusterClient, which routes by its own map, the next request on this same session).
                if (status is Status.ViewChanged or Status.NotOwner && header.View > _view)
                    _view = header.View;
                if (resend)
                {
                    // The node ran nothing of it. It goes again first, and nothing else goes until it can (writes to a
                    // key keep their order); the delay or refresh runs off the receive loop.
                    batch.Resends++;
                    _holding++;
                    int at = 0;
                    while (at < _resend.Count && _resend[at].Order < batch.Order)
                        at++;
                    _resend.Insert(at, batch);
                }
            }
            if (resend)
            {
                StartResend(batch, status, header.View);
                return ValueTask.CompletedTask;
            }
            FailAll(batch.Ops, new HybridProtocolException(status, $"the node refused the batch: {status}"));
        }
        else
        {
            Complete(batch, payload.Span);
        }
        lock (_lock)
        {
            batch.Ops.Clear();
            _spare.Push(batch);
            FlushLocked(force: true);
        }
        DrainFailures();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Runs <see cref="ResendAfterAsync"/> off the receive loop. A method of its own: a lambda in <see cref="OnReply"/>
    /// would capture its locals there, and the closure would be allocated for every reply, resent or not.
    /// </summary>
    private void StartResend(Batch batch, Status status, ulong nodeView)
    {
        int generation = batch.Generation;
        _ = Task.Run(() => ResendAfterAsync(batch, generation, status, nodeView));
    }

    /// <summary>
    /// Waits out a Retry (a short delay) or refreshes routing after ViewChanged (bounded by the timeout), then lets the
    /// held batches go. A refresh that fails or hangs fails the batch's requests (the node ran none of them).
    /// </summary>
    private async Task ResendAfterAsync(Batch batch, int generation, Status status, ulong nodeView)
    {
        Exception? error = null;
        try
        {
            if (status == Status.ViewChanged)
            {
                using var cancel = new CancellationTokenSource(_options.Timeout);
                await _options.Routing.RefreshAsync(_options.EndPoint, nodeView, cancel.Token).AsTask().WaitAsync(_options.Timeout).ConfigureAwait(false);
            }
            else
            {
                await Task.Delay(batch.Resends).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        lock (_lock)
        {
            _holding--;
            if (error is not null && batch.Generation == generation && _resend.Remove(batch))
            {
                FailLaterLocked(batch.Ops, new HybridNotSentException("the node refused the batch (" + status + ") and the routing refresh failed: " + error.Message, error));
                batch.Ops.Clear();
                _spare.Push(batch);
            }
            FlushLocked(force: true);
        }
        DrainFailures();
    }

    private static void Complete(Batch batch, ReadOnlySpan<byte> payload)
    {
        var reader = new ResultReader(payload);
        foreach (var op in batch.Ops)
        {
            if (!reader.TryRead(out var result))
            {
                op.Fail(new HybridProtocolException(Status.Malformed, "reply has fewer results than requests"));
                continue;
            }
            if (op.HasResults)
            {
                op.CompleteInto(result.Status, result.Version, result.Value);
                continue;
            }
            if (op.Op == OpCode.MultiGet && result.Status == Status.Ok)
            {
                var items = new List<GetResult>();
                var subs = new ResultReader(result.Value);
                while (subs.TryRead(out var sub))
                    items.Add(new GetResult(sub.Status, sub.Version, sub.Status == Status.Ok ? sub.Value.ToArray() : null));
                op.Complete(Status.Ok, 0, null, items.ToArray());
            }
            else
            {
                byte[]? value = (op.Op == OpCode.Get && result.Status == Status.Ok) || OpCodes.IsExtension(op.Op) ? result.Value.ToArray() : null;
                op.Complete(result.Status, result.Version, value, null);
            }
        }
    }

    private static void FailAll(List<PendingOp> ops, Exception error)
    {
        foreach (var op in ops)
            op.Fail(error);
    }

    /// <summary>
    /// Drops the connection: requests in flight fail (after the lock is released); requests not sent yet, and rejected
    /// batches due again, wait for the reconnect.
    /// </summary>
    private void BreakLocked(Exception error)
    {
        var link = _link;
        _link = null;
        link?.Dispose();
        foreach (var batch in _inFlight)
        {
            FailLaterLocked(batch.Ops, error);
            batch.Ops.Clear();
            _spare.Push(batch);
        }
        _inFlight.Clear();
        if ((_resend.Count > 0 || _full.Count > 0 || _open is { Ops.Count: > 0 }) && !_disposed)
            _connecting ??= ReconnectAsync();
    }

    /// <summary>Fails every request not sent (they never reached the node, or it ran none of them), after the lock is released.</summary>
    private void FailUnsentLocked(HybridNotSentException error)
    {
        foreach (var batch in _resend)
        {
            FailLaterLocked(batch.Ops, error);
            batch.Ops.Clear();
            _spare.Push(batch);
        }
        _resend.Clear();
        if (_open is { } open)
            _full.Enqueue(open);
        _open = null;
        while (_full.TryDequeue(out var batch))
        {
            FailLaterLocked(batch.Ops, error);
            batch.Ops.Clear();
            _spare.Push(batch);
        }
    }

    /// <summary>Marks <paramref name="ops"/> to fail with <paramref name="error"/> once the lock is released (see <see cref="DrainFailures"/>).</summary>
    private void FailLaterLocked(List<PendingOp> ops, Exception error)
    {
        foreach (var op in ops)
            _failures.Add((op, error));
        if (_failures.Count > 0)
            _hasFailures = true;
    }

    /// <summary>
    /// Fails the operations <see cref="FailLaterLocked"/> collected, outside the lock (a caller's inline continuation
    /// may re-enter the session). Called after every lock section that can fail operations; a no-op while the lock
    /// is held (the outermost section delivers them).
    /// </summary>
    private void DrainFailures()
    {
        if (!_hasFailures || _lock.IsHeldByCurrentThread)
            return;
        List<(PendingOp Op, Exception Error)> failures;
        lock (_lock)
        {
            failures = _failures;
            _failures = [];
            _hasFailures = false;
        }
        foreach (var (op, error) in failures)
            op.Fail(error);
    }

    private async Task ReconnectAsync()
    {
        await Task.Yield();
        try
        {
            await OpenAsync(CancellationToken.None).ConfigureAwait(false);
            lock (_lock)
            {
                _connecting = null;
                FlushLocked(force: true);
            }
        }
        catch (Exception e)
        {
            lock (_lock)
            {
                _connecting = null;
                FailUnsentLocked(new HybridNotSentException("reconnect failed: " + e.Message, e));
            }
        }
        DrainFailures();
    }

    /// <summary>Connects and runs the handshake (Hello, then Auth if challenged), then starts the receive loop.</summary>
    private async Task OpenAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        var link = await ClientLink.ConnectAsync(_options, timeout.Token).ConfigureAwait(false);
        try
        {
            // Replies in completion order: a batch waiting for a disk read or a migration's pull holds back no other.
            var (hello, header) = await RoundTripAsync(link, OpCode.Hello, Encoding.UTF8.GetBytes(_options.Tenant), [HelloOptions.OutOfOrderReplies], timeout.Token).ConfigureAwait(false);
            if (hello.Status != Status.Ok)
                throw new HybridProtocolException(hello.Status, $"Hello refused: {hello.Status}");
            if (hello.Value.Length > 0)
            {
                var proof = new byte[AuthProof.Size];
                AuthProof.Compute(_options.Secret, hello.Value, proof);
                var (auth, _) = await RoundTripAsync(link, OpCode.Auth, [], proof, timeout.Token).ConfigureAwait(false);
                if (auth.Status != Status.Ok)
                    throw new HybridProtocolException(auth.Status, $"Auth refused: {auth.Status}");
            }
            lock (_lock)
            {
                // Disposed meanwhile: nobody would ever close this connection.
                ObjectDisposedException.ThrowIf(_disposed, this);
                _sessionId = header.SessionId;
                _view = header.View;
                _link = link;
            }
            _ = ReceiveLoop(link);
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    private static async Task<(Answer Result, FrameHeader Header)> RoundTripAsync(ClientLink link, OpCode op, byte[] key, byte[] value, CancellationToken cancellationToken)
    {
        using var frame = new FrameBuffer(256);
        int start = frame.BeginFrame();
        frame.AppendRequest(op, 0, key, value);
        frame.EndFrame(start, FrameKind.Request, 1, 0, 0, 0);
        // A copy of its own: the send may still be running in the background when this returns (a timed-out
        // handshake), and the frame's pooled buffer goes back to the pool here.
        link.Send(frame.Written.ToArray());
        var body = await link.ReceiveFrameAsync(cancellationToken).ConfigureAwait(false);
        FrameHeader.TryRead(body, int.MaxValue, out var header);
        var reader = new ResultReader(body.AsSpan(FrameHeader.Size));
        if (!reader.TryRead(out var result))
            throw new HybridProtocolException(Status.Malformed, "empty handshake reply");
        return (new Answer(result.Status, result.Value.ToArray()), header);
    }

    private void OnTimer()
    {
        lock (_lock)
        {
            if (_disposed)
                return;
            long now = Stopwatch.GetTimestamp();
            long limit = (long)(_options.Timeout.TotalSeconds * Stopwatch.Frequency);
            long controlLimit = Math.Max(limit, (long)(_options.InstallTimeout.TotalSeconds * Stopwatch.Frequency));
            // An install or uninstall waits for the node's compiler (the first compile in a node process loads it:
            // seconds on a busy machine), so it has a limit of its own; and the node holds the frames sent after it on
            // this connection until it answers, so they have its deadline at least.
            long held = long.MinValue;
            foreach (Batch batch in _inFlight)
            {
                // A frame sent behind the last install or uninstall answered waited for it on the node until then.
                long start = batch.Sent >= _controlSent && batch.Sent < _controlAnswered ? _controlAnswered : batch.Sent;
                long deadline = start + (batch.WaitsForControl ? controlLimit : limit);
                if (batch.WaitsForControl)
                    held = Math.Max(held, deadline);
                deadline = Math.Max(deadline, held);
                if (now > deadline)
                {
                    var waited = TimeSpan.FromSeconds((double)(now - batch.Sent) / Stopwatch.Frequency);
                    BreakLocked(new HybridTimeoutException($"no reply within {waited:g}: the outcome of the requests in flight is unknown"));
                    break;
                }
            }
            if (_link is not null && _open is { Ops.Count: > 0 } open && now - open.Opened > limit)
                FlushLocked(force: true);
        }
        DrainFailures();
    }

    /// <summary>Closes the connection; requests still in flight fail.</summary>
    public async ValueTask DisposeAsync()
    {
        Task? connecting;
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            connecting = _connecting;
            var closed = new ObjectDisposedException(nameof(HybridSession));
            BreakLocked(new HybridConnectionException("the session was closed with the request in flight: its outcome is unknown", closed));
            FailUnsentLocked(new HybridNotSentException("the session was closed before the request was sent", closed));
        }
        DrainFailures();
        await _timer.DisposeAsync().ConfigureAwait(false);
        if (connecting is not null)
            await connecting.ConfigureAwait(false);
    }

    private readonly record struct Answer(Status Status, byte[] Value);

    private sealed class Batch
    {
        internal FrameBuffer Buffer { get; } = new(4096);
        internal List<PendingOp> Ops { get; } = [];
        internal int Start { get; set; }
        internal uint Seq { get; set; }
        internal int Resends { get; set; }
        internal uint Order { get; set; } // Seq of its first send: rejected batches go again in this order
        internal int Generation { get; set; } // changes at each reuse
        internal long Opened { get; set; }
        internal long Sent { get; set; }
        internal bool WaitsForControl { get; set; } // holds an install or uninstall (InstallTimeout)
    }
}
