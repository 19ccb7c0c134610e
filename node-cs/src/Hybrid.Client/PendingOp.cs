using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;
using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>
/// One request waiting for its result: a pooled, reusable <see cref="IValueTaskSource{TResult}"/>, so an operation
/// allocates no task. It serves the typed results of every operation kind; each awaiter reads it exactly once, after
/// which it goes back to the pool.
/// </summary>
internal sealed class PendingOp : IValueTaskSource<GetResult>, IValueTaskSource<WriteResult>, IValueTaskSource<GetResult[]>, IValueTaskSource
{
    private static readonly ConcurrentQueue<PendingOp> s_pool = new();
    private ManualResetValueTaskSourceCore<Outcome> _core;
    private int _settled; // 1 once completed or failed in this use: a second outcome is ignored, never delivered

    private PendingOp(bool runContinuationsAsynchronously) => _core.RunContinuationsAsynchronously = runContinuationsAsynchronously;

    /// <summary>The request's opcode (to parse its result).</summary>
    internal OpCode Op { get; private set; }

    /// <summary>Token of the current use.</summary>
    internal short Token => _core.Version;

    /// <summary>
    /// When set, the request belongs to <see cref="HybridSession.ExecuteAsync(HybridBatch, HybridBatchResults)"/>: its
    /// result goes into these reused results at <see cref="Index"/> (no value copy to a new array, nobody awaits this op)
    /// and the op goes straight back to the pool.
    /// </summary>
    internal HybridBatchResults? Results { get; set; }

    /// <summary>The request's position in <see cref="Results"/>.</summary>
    internal int Index { get; set; }

    /// <summary>True when the result goes into <see cref="Results"/> (so the value need not be copied into an array).</summary>
    internal bool HasResults => Results is not null;

    internal static PendingOp Rent(OpCode op, bool inline)
    {
        if (!s_pool.TryDequeue(out var pending))
            pending = new PendingOp(!inline);
        pending._core.RunContinuationsAsynchronously = !inline;
        pending.Op = op;
        Volatile.Write(ref pending._settled, 0);
        return pending;
    }

    internal void Complete(Status status, ulong version, byte[]? value, GetResult[]? multi)
    {
        if (Settle())
            _core.SetResult(new Outcome(status, version, value, multi));
    }

    /// <summary>True for the first outcome of this use only.</summary>
    private bool Settle() => Interlocked.Exchange(ref _settled, 1) == 0;

    /// <summary>Completes a request of <see cref="Results"/>: copies the value there and returns this op to the pool.</summary>
    internal void CompleteInto(Status status, ulong version, ReadOnlySpan<byte> value)
    {
        if (!Settle())
            return;
        var results = Results!;
        int index = Index;
        Recycle();
        results.Set(index, status, version, value);
    }

    internal void Fail(Exception error)
    {
        if (!Settle())
            return;
        if (Results is { } results)
        {
            int index = Index;
            Recycle();
            results.Fail(index, error);
            return;
        }
        _core.SetException(error);
    }

    private void Recycle()
    {
        Results = null;
        _core.Reset();
        s_pool.Enqueue(this);
    }

    private Outcome Take(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            s_pool.Enqueue(this);
        }
    }

    GetResult IValueTaskSource<GetResult>.GetResult(short token)
    {
        var o = Take(token);
        return new GetResult(o.Status, o.Version, o.Value);
    }

    WriteResult IValueTaskSource<WriteResult>.GetResult(short token)
    {
        var o = Take(token);
        return new WriteResult(o.Status, o.Version);
    }

    GetResult[] IValueTaskSource<GetResult[]>.GetResult(short token)
    {
        var o = Take(token);
        return o.Multi ?? throw new HybridProtocolException(o.Status, $"MultiGet failed: {o.Status}");
    }

    void IValueTaskSource.GetResult(short token)
    {
        var o = Take(token);
        if (o.Status != Status.Ok)
            throw new HybridProtocolException(o.Status, $"request failed: {o.Status}");
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private readonly record struct Outcome(Status Status, ulong Version, byte[]? Value, GetResult[]? Multi);
}
