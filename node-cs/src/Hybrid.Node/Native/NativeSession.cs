using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Native;

/// <summary>
/// The native protocol state of one connection: the handshake, then batches. A batch is parsed completely before
/// anything runs (so a malformed batch runs nothing), checked against the worker's view once, charged to the
/// tenant's ops/s quota once, and run to completion against the worker's storage session, with results written
/// straight into the connection's output buffer. Reads that go to disk (or wait for a migration's priority pull) leave
/// a placeholder result (a "hole", status Pending, version = hole slot), and the batch parks: its reply moves out of
/// the output into a buffer of its own. The batches already received behind it run meanwhile, so their misses are
/// fetched together instead of one batch's after another's. A parked batch's reply is assembled when its last hole is
/// filled. A session that asked for out-of-order replies at Hello (<see cref="HelloOptions.OutOfOrderReplies"/>) gets
/// every reply as soon as its batch is complete; any other keeps request order (complete replies behind a parked batch
/// wait with it).
/// </summary>
internal sealed partial class NativeSession : IConnectionState, IExtensionResultTarget
{
    /// <summary>Internal flag on a MultiGet result whose packed sub-results contain holes.</summary>
    private const byte HasHoles = 1;

    private readonly ProtocolLimits _limits;
    private readonly bool _syncDurability;
    private readonly byte[] _challenge = new byte[AuthProof.Size];
    private TenantInfo? _challenged;

    // The replies not sent yet because of pending operations, in request order: parked batches (results with holes)
    // and, for an in-order session, the complete replies behind them. Holes are slots of _holeResults, reused once the
    // reply that held them is assembled, so a session that always has some batch parked does not grow.
    private readonly List<ParkedBatch> _parked = [];
    private Hole[] _holeResults = new Hole[8];
    private readonly Stack<int> _freeHoles = new();
    private int _holeSlots; // slots ever used
    private int _holesOpen; // holes not filled yet
    private int _openUnknown; // of those, holes of extensions (or extension management): their keys are unknown
    private int _batchId; // the batch running now (the holes it takes belong to it)
    private int _batchHoles; // holes it took so far
    private bool _deferred; // a frame behind parked batches must wait until they finish (it would close, or it touches their keys)
    private bool _outOfOrder; // the client accepts replies in completion order (Hello option)
    private int _replyStart; // where the running batch's reply frame starts in the output (its size limit)
    private long _heldBytes; // reply bytes waiting outside the output: parked and held batches, filled holes' values

    internal NativeSession(ProtocolLimits limits, bool syncDurability)
    {
        _limits = limits;
        _syncDurability = syncDurability;
    }

    private const byte ReadHole = 0, WriteHole = 1, UnknownHole = 2;

    /// <summary>One pending operation's place in a reply: what it waits on (for key order), then its result.</summary>
    private struct Hole
    {
        public bool Open;
        public byte Kind;
        public int Batch;
        public ulong Key;
        public Status Status;
        public ulong Version;
        public byte[]? Value; // rented; returned when the reply is assembled
        public int Length;
    }

    /// <summary>
    /// A reply that cannot go yet: a batch with holes (<see cref="Body"/> = its results after a reserved header, the
    /// header written when it is assembled), or, <see cref="Done"/>, a complete frame that waits behind one (in order).
    /// </summary>
    private sealed class ParkedBatch
    {
        public int Id;
        public byte[] Body = [];
        public int Length;
        public bool Done;
        public ushort Count;
        public uint Seq;
        public long Started;
        public bool Wrote;
        public int Open;
    }

    /// <summary>True while some reply waits for pending operations (the connection must not close or move).</summary>
    public bool HasPendingOperations => _parked.Count > 0;

    /// <inheritdoc />
    public bool RunsBetweenCompletions => true; // parked replies live outside the output; Validate keeps key order

    /// <inheritdoc />
    public ProcessOutcome Process(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> input, FrameBuffer output, out int consumed)
    {
        consumed = 0;
        while (input.Length - consumed >= 4)
        {
            // Replies this large go out first; the frames behind wait in the input (run again once they are sent, or,
            // for replies held behind a pending operation, once it completes), so a client that sends without reading
            // cannot pile up replies here.
            if (output.Length + _heldBytes >= _limits.MaxReplyBytes)
                break;
            int frameAt = consumed;
            int replyAt = output.Length;
            var rest = input[consumed..];
            int length = FrameHeader.PeekLength(rest);
            // Before it authenticated a connection sends Hello and Auth only: a few hundred bytes. Refusing more keeps
            // unauthenticated clients from making the node buffer a whole frame (megabytes) each.
            int maxFrame = connection.Tenant is null ? Math.Min(ProtocolLimits.MaxUnauthenticatedFrameBytes, _limits.MaxFrameBytes) : _limits.MaxFrameBytes;
            ProcessOutcome outcome;
            // Refuse an oversized or impossible length as soon as it is known, before receiving the body.
            if (length < FrameHeader.Size || length > maxFrame)
            {
                outcome = Reject(worker, connection, output, length < FrameHeader.Size ? Status.Malformed : Status.TooLarge, 0, input.Length, out consumed);
            }
            else
            {
                if (rest.Length < FrameHeader.Size)
                    break;
                var headerStatus = FrameHeader.TryRead(rest, maxFrame, out var header);
                if (headerStatus != Status.Ok || header.Kind != FrameKind.Request)
                {
                    outcome = Reject(worker, connection, output, headerStatus == Status.Ok ? Status.Malformed : headerStatus, 0, input.Length, out consumed);
                }
                else
                {
                    if (rest.Length < length)
                        break;
                    var frame = rest[..length];
                    consumed += length;
                    outcome = header.CheckCrc(frame)
                        ? RunBatch(worker, connection, header, frame[FrameHeader.Size..], output)
                        : Reject(worker, connection, output, Status.Malformed, header.BatchSeq, input.Length, out consumed);
                }
            }
            if (_deferred)
            {
                // Behind parked batches: this frame runs (and closes the connection) only once they are answered.
                _deferred = false;
                consumed = frameAt;
                return ProcessOutcome.Parked;
            }
            if (!_outOfOrder && _parked.Count > 0 && output.Length > replyAt)
                Hold(output, replyAt); // a complete reply behind a parked batch keeps request order
            if (outcome == ProcessOutcome.Close)
            {
                consumed = input.Length;
                return outcome;
            }
        }
        return _parked.Count > 0 ? ProcessOutcome.Parked : ProcessOutcome.Continue;
    }

    /// <inheritdoc />
    public void OnEndOfInput(IWorkerContext worker, ConnectionContext connection, ReadOnlySpan<byte> unconsumed, FrameBuffer output)
    {
        if (!unconsumed.IsEmpty)
            Reject(worker, connection, output, Status.Malformed, 0, 0, out _); // the peer stopped in the middle of a frame
    }

    private ProcessOutcome Reject(IWorkerContext worker, ConnectionContext connection, FrameBuffer output, Status status, uint batchSeq, int all, out int consumed)
    {
        if (_parked.Count > 0 && status is not (Status.ViewChanged or Status.Retry))
        {
            // Replies before this one are still open: answer and close after them (Process sees _deferred).
            _deferred = true;
            consumed = 0;
            return ProcessOutcome.Parked;
        }
        consumed = all;
        WriteRejected(worker, connection, output, status, batchSeq, 0);
        return status is Status.ViewChanged or Status.Retry ? ProcessOutcome.Continue : ProcessOutcome.Close;
    }

    private static void WriteRejected(IWorkerContext worker, ConnectionContext connection, FrameBuffer output, Status status, uint batchSeq, ulong version)
    {
        int start = output.BeginFrame();
        output.AppendResult(status, version, default);
        output.EndFrame(start, FrameKind.Rejected, 1, batchSeq, connection.SessionId, worker.View);
        worker.CountRejection(status);
    }

    private ProcessOutcome RunBatch(IWorkerContext worker, ConnectionContext connection, in FrameHeader header, ReadOnlySpan<byte> payload, FrameBuffer output)
    {
        long started = Stopwatch.GetTimestamp();
        _batchId++;
        _batchHoles = 0;
        if (header.Count > _limits.MaxRequestsPerBatch)
            return Reject(worker, connection, output, Status.TooLarge, header.BatchSeq, 0, out _);
        // Pass 1: parse everything, so that a bad request anywhere means nothing of the batch runs.
        var owned = worker.OwnedSlots;
        var check = Validate(payload, header.Count, owned, out bool handshakeOnly, out bool misrouted, out bool conflicts, out int operations);
        if (check != Status.Ok)
            return Reject(worker, connection, output, check, header.BatchSeq, 0, out _);
        if (conflicts)
        {
            // It touches a key an operation of a parked batch is still pending on (or an extension might): running it
            // now could let it overtake that operation, so it waits, like every frame behind a parked batch used to.
            _deferred = true;
            return ProcessOutcome.Parked;
        }

        var tenant = connection.Tenant;
        if (tenant is null)
        {
            if (!handshakeOnly)
                return Reject(worker, connection, output, Status.Unauthorized, header.BatchSeq, 0, out _);
            return RunHandshake(worker, connection, header, payload, output);
        }
        if (header.SessionId != 0 && header.SessionId != connection.SessionId)
            return Reject(worker, connection, output, Status.Unauthorized, header.BatchSeq, 0, out _);
        // The one ownership check of the batch (Shadowfax, the model's Execute/Reject guards): compare views, then
        // every key's slot against the slots owned in that view (computed during the parse; nothing to hash outside
        // a cluster). Run nothing on a mismatch.
        if (header.View != worker.View || misrouted)
        {
            WriteRejected(worker, connection, output, header.View != worker.View ? Status.ViewChanged : Status.NotOwner, header.BatchSeq, worker.View);
            return ProcessOutcome.Continue;
        }

        int frameStart = output.BeginFrame();
        _replyStart = frameStart;
        bool admitted = worker.TryChargeOps(tenant, operations);
        var session = worker.Session;
        var reader = new RequestReader(payload, header.Count, _limits);
        // Lookahead: the index buckets, then the records, of the next single-key requests are prefetched, so the
        // memory misses of a batch overlap instead of coming one per request.
        var ahead = new RequestReader(payload, admitted ? header.Count : 0, _limits);
        var window = new PrefetchWindow();
        bool wrote = false;
        for (int executed = 0; reader.Remaining > 0; executed++)
        {
            window.Records(session, executed);
            while (window.WantsMore(executed) && ahead.Remaining > 0)
            {
                ahead.TryRead(out var next);
                if (next.Op is OpCode.Get or OpCode.Put or OpCode.CondPut or OpCode.Delete)
                    window.Add(session, tenant.Id, next.Table, next.Key);
                else
                    window.Skip();
            }
            reader.TryRead(out var request);
            if (!admitted)
            {
                output.AppendResult(Status.QuotaExceeded, 0, default);
                continue;
            }
            wrote |= Execute(worker, connection, session, tenant, request, output);
        }
        if (_batchHoles > 0)
        {
            // Parked: its holes fill in later (CompletePending, an extension's result); Process goes on with the
            // frames behind it and reports Parked at the end.
            Park(output, frameStart, header.Count, header.BatchSeq, started, wrote);
            return ProcessOutcome.Continue;
        }
        FinishBatch(worker, connection, session, output, frameStart, header.Count, header.BatchSeq, wrote, started);
        return ProcessOutcome.Continue;
    }

    private void FinishBatch(IWorkerContext worker, ConnectionContext connection, IKvSession session, FrameBuffer output, int frameStart, ushort count, uint batchSeq, bool wrote, long started)
    {
        output.EndFrame(frameStart, FrameKind.Reply, count, batchSeq, connection.SessionId, worker.View);
        if (wrote && _syncDurability)
        {
            long last = Math.Max(session.LastWriteSequence, worker.Extensions.LastWriteSequence);
            connection.RequiredDurableSequence = Math.Max(connection.RequiredDurableSequence, last);
        }
        worker.RecordBatch(started);
    }

    /// <summary>
    /// Parses the whole batch. <paramref name="misrouted"/>: some key's slot is not in <paramref name="owned"/> (the
    /// slots owned in the worker's view; no hashing when it is <see cref="OwnedSlots.All"/>). <paramref name="operations"/>:
    /// what the ops/s quota charges, one per request and one per key of a multi-get (as RESP's MGET is charged).
    /// </summary>
    private Status Validate(ReadOnlySpan<byte> payload, int count, OwnedSlots owned, out bool handshakeOnly, out bool misrouted, out bool conflicts, out int operations)
    {
        handshakeOnly = true;
        misrouted = false;
        conflicts = false;
        operations = 0;
        bool parked = _holesOpen > 0;
        bool checkSlots = !owned.IsAll;
        var reader = new RequestReader(payload, count, _limits);
        int requests = 0;
        while (reader.Remaining > 0)
        {
            var status = reader.TryRead(out var request);
            if (status != Status.Ok)
                return status;
            requests++;
            operations++;
            handshakeOnly &= request.Op is OpCode.Hello or OpCode.Auth or OpCode.Noop;
            if (request.Op == OpCode.MultiGet)
            {
                operations--; // its keys are charged instead (at least one)
                int before = requests;
                if (!request.Key.IsEmpty)
                    return Status.Malformed;
                var keys = new PackedKeyReader(request.Value);
                while (!keys.AtEnd)
                {
                    var keyStatus = keys.TryRead(_limits.MaxKeyBytes, out var key);
                    if (keyStatus != Status.Ok)
                        return keyStatus;
                    misrouted |= checkSlots && !owned.ContainsKey(key);
                    conflicts |= parked && IsPendingKey(request.Table, key, write: false);
                    requests++;
                }
                operations += Math.Max(1, requests - before);
            }
            else if (request.Op is OpCode.Get or OpCode.Put or OpCode.CondPut or OpCode.Delete)
            {
                misrouted |= checkSlots && !owned.ContainsKey(request.Key);
                conflicts |= parked && IsPendingKey(request.Table, request.Key, write: request.Op != OpCode.Get);
            }
            else if (request.Op is OpCode.Invoke)
            {
                conflicts |= parked; // an extension's keys are not known before it runs
            }
        }
        if (!reader.AtEnd)
            return Status.Malformed;
        conflicts |= _openUnknown > 0;
        return requests > _limits.MaxRequestsPerBatch ? Status.TooLarge : Status.Ok;
    }

    /// <summary>A 64-bit FNV-1a hash of a table and key (collisions only make a frame wait needlessly).</summary>
    private static ulong KeyHash(uint table, ReadOnlySpan<byte> key)
    {
        ulong h = 14695981039346656037UL ^ table;
        foreach (byte b in key)
            h = (h ^ b) * 1099511628211UL;
        return h;
    }

    /// <summary>
    /// True when an operation on this key must wait for the parked batches: a write behind any pending operation on
    /// the key, a read behind a pending write (two reads may complete in either order: neither changes what the other
    /// sees).
    /// </summary>
    private bool IsPendingKey(uint table, ReadOnlySpan<byte> key, bool write)
    {
        ulong hash = KeyHash(table, key);
        for (int i = 0; i < _holeSlots; i++)
        {
            ref var hole = ref _holeResults[i];
            if (hole.Open && hole.Key == hash && (hole.Kind == WriteHole || (write && hole.Kind == ReadHole)))
                return true;
        }
        return false;
    }

    /// <summary>The slot the next hole will take (its number goes into the pending operation's context first).</summary>
    private int NextHole => _freeHoles.Count > 0 ? _freeHoles.Peek() : _holeSlots;

    /// <summary>An operation of the running batch went pending: takes <see cref="NextHole"/> for it.</summary>
    private ulong TakeHole(byte kind, ulong key)
    {
        int slot = _freeHoles.Count > 0 ? _freeHoles.Pop() : _holeSlots++;
        if (slot >= _holeResults.Length)
            Array.Resize(ref _holeResults, _holeResults.Length * 2);
        _holeResults[slot] = new Hole { Open = true, Kind = kind, Batch = _batchId, Key = key };
        _batchHoles++;
        _holesOpen++;
        if (kind == UnknownHole)
            _openUnknown++;
        return (ulong)slot;
    }

    /// <summary>Runs one request and appends its result; true if it wrote data.</summary>
    private bool Execute(IWorkerContext worker, ConnectionContext connection, IKvSession session, TenantInfo tenant, in Request request, FrameBuffer output)
    {
        switch (request.Op)
        {
            case OpCode.Get:
                worker.CountOps(tenant, OpKind.Get);
                ReadInto(worker, connection, session, tenant, request.Table, request.Key, output);
                return false;
            case OpCode.Put:
            case OpCode.CondPut:
                {
                    worker.CountOps(tenant, request.Op == OpCode.Put ? OpKind.Put : OpKind.CondPut);
                    if (!worker.TryChargeBytes(tenant, request.Key.Length + request.Value.Length + StoreOptions.RecordOverheadBytes))
                    {
                        output.AppendResult(Status.QuotaExceeded, 0, default);
                        return false;
                    }
                    ulong context = worker.PendingContext(connection, (uint)NextHole);
                    var result = request.Op == OpCode.Put
                        ? session.Put(tenant.Id, request.Table, request.Key, request.Value, context)
                        : session.PutIfVersion(tenant.Id, request.Table, request.Key, request.Value, request.ExpectedVersion, context);
                    AppendWriteResult(output, result, request.Table, request.Key);
                    return true;
                }
            case OpCode.Delete:
                {
                    worker.CountOps(tenant, OpKind.Delete);
                    var result = session.Delete(tenant.Id, request.Table, request.Key, worker.PendingContext(connection, (uint)NextHole));
                    AppendWriteResult(output, result, request.Table, request.Key);
                    return true;
                }
            case OpCode.MultiGet:
                MultiGet(worker, connection, session, tenant, request, output);
                return false;
            case OpCode.Noop:
                worker.CountOps(tenant, OpKind.Noop);
                output.AppendResult(Status.Ok, 0, default);
                return false;
            case OpCode.Invoke:
                worker.CountOps(tenant, OpKind.Other);
                Invoke(worker, connection, tenant, request, output);
                return true; // the extension may have written
            case OpCode.Install:
            case OpCode.Uninstall:
            case OpCode.ListExtensions:
                worker.CountOps(tenant, OpKind.Other);
                ManageExtensions(worker, connection, tenant, request, output);
                return false;
            default:
                // Hello/Auth inside an open session, and the opcodes reserved for extensions and migration.
                worker.CountOps(tenant, OpKind.Other);
                output.AppendResult(Status.Unsupported, 0, default);
                return false;
        }
    }

    private void AppendWriteResult(FrameBuffer output, in StoreResult result, uint table, ReadOnlySpan<byte> key)
    {
        if (result.IsPending)
            output.AppendResult(Status.Pending, TakeHole(WriteHole, KeyHash(table, key)), default);
        else
            output.AppendResult(Map(result.Status), result.Version, default);
    }

    /// <summary>Appends one Get result, reading the value straight into the output buffer.</summary>
    private void ReadInto(IWorkerContext worker, ConnectionContext connection, IKvSession session, TenantInfo tenant, uint table, ReadOnlySpan<byte> key, FrameBuffer output)
    {
        int at = output.Length;
        if (at - _replyStart >= _limits.MaxReplyBytes)
        {
            // The batch's reply is full (one small request could ask for the same large value thousands of times).
            output.AppendResult(Status.TooLarge, 0, default);
            return;
        }
        output.Append(ResultHeader.Size);
        var result = session.Get(tenant.Id, table, key, output, worker.PendingContext(connection, (uint)NextHole));
        if (result.IsPending)
        {
            output.Truncate(at + ResultHeader.Size);
            output.PatchResult(at, Status.Pending, 0, TakeHole(ReadHole, KeyHash(table, key)));
        }
        else if (result.Status == StoreStatus.Ok)
            output.PatchResult(at, Status.Ok, result.ValueLength, result.Version);
        else
        {
            output.Truncate(at + ResultHeader.Size);
            output.PatchResult(at, Map(result.Status), 0, result.Version);
        }
    }

    private void MultiGet(IWorkerContext worker, ConnectionContext connection, IKvSession session, TenantInfo tenant, in Request request, FrameBuffer output)
    {
        int at = output.Length;
        output.Append(ResultHeader.Size);
        int holesBefore = _batchHoles;
        // The keys' index buckets are prefetched first (their cache misses overlap) and the reads share one epoch
        // protection (a read run; a read that goes pending leaves a hole as before).
        var ahead = new PackedKeyReader(request.Value);
        while (!ahead.AtEnd)
        {
            if (ahead.TryRead(_limits.MaxKeyBytes, out var next) == Status.Ok)
                session.Prefetch(tenant.Id, request.Table, next, next.Length);
            else
                break;
        }
        session.BeginReadRun();
        var keys = new PackedKeyReader(request.Value);
        int count = 0;
        try
        {
            while (!keys.AtEnd)
            {
                keys.TryRead(_limits.MaxKeyBytes, out var key);
                ReadInto(worker, connection, session, tenant, request.Table, key, output);
                count++;
            }
        }
        finally
        {
            session.EndReadRun();
        }
        worker.CountOps(tenant, OpKind.MultiGet, count);
        output.PatchResult(at, Status.Ok, output.Length - at - ResultHeader.Size, 0);
        if (_batchHoles > holesBefore)
            output.Array[at + 1] = HasHoles;
    }

    private ProcessOutcome RunHandshake(IWorkerContext worker, ConnectionContext connection, in FrameHeader header, ReadOnlySpan<byte> payload, FrameBuffer output)
    {
        int frameStart = output.BeginFrame();
        var reader = new RequestReader(payload, header.Count, _limits);
        var outcome = ProcessOutcome.Continue;
        while (reader.Remaining > 0)
        {
            reader.TryRead(out var request);
            if (request.Op == OpCode.Noop)
            {
                output.AppendResult(Status.Ok, 0, default);
                continue;
            }
            if (request.Op == OpCode.Hello)
            {
                _challenged = null;
                if (request.Value.Length > 1 || (request.Value.Length == 1 && (request.Value[0] & ~HelloOptions.All) != 0))
                {
                    output.AppendResult(Status.Malformed, 0, default);
                    outcome = ProcessOutcome.Close;
                    continue;
                }
                // Granted on byte streams only: a message transport's request/reply contract answers in order.
                _outOfOrder = request.Value.Length == 1 && (request.Value[0] & HelloOptions.OutOfOrderReplies) != 0 && connection.MayReorderReplies;
                if (!worker.Tenants.TryGet(request.Key, out var tenant))
                {
                    output.AppendResult(Status.UnknownTenant, 0, default);
                }
                else if (tenant.RequiresAuth)
                {
                    AuthProof.NewChallenge(_challenge);
                    _challenged = tenant;
                    output.AppendResult(Status.Ok, 0, _challenge);
                }
                else if (worker.AllowsUnauthenticatedDefault && tenant.Name == TenantInfo.DefaultName)
                {
                    connection.Tenant = tenant;
                    worker.CountOps(tenant, OpKind.Session);
                    output.AppendResult(Status.Ok, 0, default);
                }
                else
                {
                    output.AppendResult(Status.Unauthorized, 0, default);
                    outcome = ProcessOutcome.Close;
                }
                continue;
            }
            // Auth
            if (_challenged is { } candidate && connection.Tenant is null && AuthProof.Verify(candidate.Secret, _challenge, request.Value))
            {
                connection.Tenant = candidate;
                worker.CountOps(candidate, OpKind.Session);
                output.AppendResult(Status.Ok, 0, default);
            }
            else
            {
                worker.Tenants.CountAuthFailure();
                output.AppendResult(Status.Unauthorized, 0, default);
                outcome = ProcessOutcome.Close;
            }
            _challenged = null;
        }
        output.EndFrame(frameStart, FrameKind.Reply, header.Count, header.BatchSeq, connection.SessionId, worker.View);
        return outcome;
    }

    /// <inheritdoc />
    public bool OnCompleted(IWorkerContext worker, ConnectionContext connection, uint token, in StoreResult result, ReadOnlySpan<byte> value, FrameBuffer output) =>
        FillHole(worker, connection, token, Map(result.Status), result.Version, result.Status == StoreStatus.Ok ? value : default, output);

    /// <inheritdoc />
    public bool OnExtensionResult(IWorkerContext worker, ConnectionContext connection, uint token, Status status, ulong version, ReadOnlySpan<byte> value, FrameBuffer output) =>
        FillHole(worker, connection, token, status, version, value, output);

    /// <summary>
    /// Fills one hole. True when the connection should run again: nothing is pending any more, or (on a connection that
    /// runs between completions, <see cref="ConnectionContext.ResumesWhilePending"/>) a reply became ready to send.
    /// </summary>
    private bool FillHole(IWorkerContext worker, ConnectionContext connection, uint token, Status status, ulong version, ReadOnlySpan<byte> value, FrameBuffer output)
    {
        if (token >= _holeSlots || !_holeResults[token].Open)
            return false;
        ref var hole = ref _holeResults[token];
        hole.Open = false;
        hole.Status = status;
        hole.Version = version;
        if (hole.Kind == ReadHole && _heldBytes + value.Length > _limits.MaxReplyBytes)
        {
            // Values read from disk wait here until their reply can go: past the reply limit they are not kept (reads
            // only: a write's or an extension's outcome is always delivered).
            hole.Status = Status.TooLarge;
            hole.Version = 0;
            value = default;
        }
        hole.Length = value.Length;
        if (!value.IsEmpty)
        {
            hole.Value = ArrayPool<byte>.Shared.Rent(value.Length);
            value.CopyTo(hole.Value);
            _heldBytes += value.Length;
        }
        _holesOpen--;
        if (hole.Kind == UnknownHole)
            _openUnknown--;
        ParkedBatch? batch = null;
        foreach (var parked in _parked)
        {
            if (parked.Id == hole.Batch && !parked.Done)
            {
                batch = parked;
                break;
            }
        }
        if (batch is null || --batch.Open > 0)
            return false;
        int before = output.Length;
        Flush(worker, connection, output);
        return _parked.Count == 0 || (output.Length > before && connection.ResumesWhilePending);
    }

    /// <summary>Moves the reply of the running batch (from <paramref name="frameStart"/>, with holes) out of the output.</summary>
    private void Park(FrameBuffer output, int frameStart, ushort count, uint seq, long started, bool wrote)
    {
        var batch = Detach(output, frameStart);
        (batch.Id, batch.Count, batch.Seq, batch.Started, batch.Wrote, batch.Open) = (_batchId, count, seq, started, wrote, _batchHoles);
        _parked.Add(batch);
    }

    /// <summary>Moves complete replies (from <paramref name="from"/>) out of the output, to go after the parked batches.</summary>
    private void Hold(FrameBuffer output, int from)
    {
        var batch = Detach(output, from);
        batch.Done = true;
        _parked.Add(batch);
    }

    private ParkedBatch Detach(FrameBuffer output, int from)
    {
        int length = output.Length - from;
        _heldBytes += length;
        var batch = new ParkedBatch { Body = ArrayPool<byte>.Shared.Rent(length), Length = length };
        output.Array.AsSpan(from, length).CopyTo(batch.Body);
        output.Truncate(from);
        return batch;
    }

    /// <summary>
    /// Appends the replies that may go now: every complete parked batch (out of order), or the complete ones at the head
    /// (in order).
    /// </summary>
    private void Flush(IWorkerContext worker, ConnectionContext connection, FrameBuffer output)
    {
        for (int i = 0; i < _parked.Count;)
        {
            var batch = _parked[i];
            bool ready = batch.Done || batch.Open == 0;
            if (!ready && !_outOfOrder)
                return;
            if (!ready)
            {
                i++;
                continue;
            }
            if (batch.Done)
            {
                batch.Body.AsSpan(0, batch.Length).CopyTo(output.Append(batch.Length));
            }
            else
            {
                int frameStart = output.BeginFrame();
                AppendFilled(output, batch.Body.AsSpan(FrameHeader.Size, batch.Length - FrameHeader.Size));
                FinishBatch(worker, connection, worker.Session, output, frameStart, batch.Count, batch.Seq, batch.Wrote, batch.Started);
            }
            _heldBytes -= batch.Length;
            ArrayPool<byte>.Shared.Return(batch.Body);
            _parked.RemoveAt(i);
        }
    }

    /// <summary>Appends the results of one parked batch (<paramref name="results"/>) with every hole filled in.</summary>
    private void AppendFilled(FrameBuffer output, ReadOnlySpan<byte> results)
    {
        var rest = results;
        while (!rest.IsEmpty)
        {
            int valueLength = BinaryPrimitives.ReadInt32LittleEndian(rest[4..]);
            var entry = rest[..(ResultHeader.Size + valueLength)];
            rest = rest[entry.Length..];
            if ((Status)entry[0] == Status.Pending)
            {
                AppendHole(output, entry);
            }
            else if (entry[1] == HasHoles)
            {
                int at = output.Length;
                output.Append(ResultHeader.Size);
                var subs = entry[ResultHeader.Size..];
                while (!subs.IsEmpty)
                {
                    var sub = subs[..(ResultHeader.Size + BinaryPrimitives.ReadInt32LittleEndian(subs[4..]))];
                    subs = subs[sub.Length..];
                    if ((Status)sub[0] == Status.Pending)
                        AppendHole(output, sub);
                    else
                        sub.CopyTo(output.Append(sub.Length));
                }
                output.PatchResult(at, Status.Ok, output.Length - at - ResultHeader.Size, 0);
            }
            else
            {
                entry.CopyTo(output.Append(entry.Length));
            }
        }
    }

    /// <summary>Appends a filled hole's result and frees its slot.</summary>
    private void AppendHole(FrameBuffer output, ReadOnlySpan<byte> placeholder)
    {
        int slot = (int)BinaryPrimitives.ReadUInt64LittleEndian(placeholder[8..]);
        ref var hole = ref _holeResults[slot];
        output.AppendResult(hole.Status, hole.Version, hole.Value.AsSpan(0, hole.Length));
        if (hole.Value is not null)
        {
            _heldBytes -= hole.Length;
            ArrayPool<byte>.Shared.Return(hole.Value);
        }
        hole = default;
        _freeHoles.Push(slot);
    }

    private static Status Map(StoreStatus status) => status switch
    {
        StoreStatus.Ok => Status.Ok,
        StoreStatus.NotFound => Status.NotFound,
        StoreStatus.VersionMismatch => Status.VersionMismatch,
        StoreStatus.KeyTooLarge or StoreStatus.ValueTooLarge => Status.TooLarge,
        StoreStatus.Unavailable => Status.Retry,
        _ => Status.InternalError,
    };

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var batch in _parked)
            ArrayPool<byte>.Shared.Return(batch.Body);
        _parked.Clear();
        for (int i = 0; i < _holeSlots; i++)
        {
            if (_holeResults[i].Value is { } value)
                ArrayPool<byte>.Shared.Return(value);
            _holeResults[i] = default;
        }
    }
}
