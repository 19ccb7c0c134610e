using System.Threading.Tasks.Sources;
using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>
/// Reusable results of one <see cref="HybridSession.ExecuteAsync(HybridBatch, HybridBatchResults)"/> call: statuses,
/// versions and values (copied into one buffer this object keeps), in request order. Reusing it across batches makes
/// the explicit batch path allocation-free. Read the results after the call completed and before the next call.
/// </summary>
public sealed class HybridBatchResults : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core;
    private Status[] _status = [];
    private ulong[] _version = [];
    private int[] _start = [];
    private int[] _length = [];
    private byte[] _values = new byte[4096];
    private int _used;
    private int _remaining;
    private int _busy;
    private Exception? _error;

    /// <summary>Results of the last batch.</summary>
    public int Count { get; private set; }

    /// <summary>Status of request <paramref name="index"/> (Ok, NotFound, VersionMismatch, QuotaExceeded...).</summary>
    public Status StatusAt(int index) => _status[Check(index)];

    /// <summary>Version of request <paramref name="index"/>'s record (read or written), or the current one after VersionMismatch.</summary>
    public ulong VersionAt(int index) => _version[Check(index)];

    /// <summary>Value of request <paramref name="index"/> (a Get that found its key; empty otherwise). Valid until the next batch.</summary>
    public ReadOnlySpan<byte> ValueAt(int index) => _values.AsSpan(_start[Check(index)], _length[index]);

    private int Check(int index) => (uint)index < (uint)Count ? index : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>Starts a use for <paramref name="count"/> results; returns the token to await.</summary>
    internal short Begin(int count, bool inline)
    {
        if (Interlocked.Exchange(ref _busy, 1) != 0)
            throw new InvalidOperationException("these results are still in use by another ExecuteAsync");
        if (_status.Length < count)
        {
            int size = Math.Max(count, _status.Length * 2);
            _status = new Status[size];
            _version = new ulong[size];
            _start = new int[size];
            _length = new int[size];
        }
        _core.Reset();
        _core.RunContinuationsAsynchronously = !inline;
        Count = count;
        _used = 0;
        _error = null;
        _remaining = count;
        if (count == 0)
            Finish();
        return _core.Version;
    }

    /// <summary>One result arrived (results of one session arrive on its receive loop, one at a time).</summary>
    internal void Set(int index, Status status, ulong version, ReadOnlySpan<byte> value)
    {
        if (_values.Length - _used < value.Length)
            Array.Resize(ref _values, Math.Max(_values.Length * 2, _used + value.Length));
        value.CopyTo(_values.AsSpan(_used));
        _status[index] = status;
        _version[index] = version;
        _start[index] = _used;
        _length[index] = value.Length;
        _used += value.Length;
        if (Interlocked.Decrement(ref _remaining) == 0)
            Finish();
    }

    /// <summary>A request failed (connection lost, batch refused): the call throws the first such error once every request is accounted for.</summary>
    internal void Fail(int index, Exception error)
    {
        _status[index] = Status.InternalError;
        _start[index] = 0;
        _length[index] = 0;
        Interlocked.CompareExchange(ref _error, error, null);
        if (Interlocked.Decrement(ref _remaining) == 0)
            Finish();
    }

    private void Finish()
    {
        Volatile.Write(ref _busy, 0);
        if (_error is { } error)
            _core.SetException(error);
        else
            _core.SetResult(true);
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
