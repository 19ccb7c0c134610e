using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The background pull of one partition as a stream of chunks (<see cref="IMigrationPeer.OpenPulls"/>): the source
/// scans ahead while the target applies, without a request per chunk. Stateless like the cursors it carries: after a
/// failure the target opens a new stream from the cursor after the last chunk it applied.
/// </summary>
public interface IPullStream : IDisposable
{
    /// <summary>
    /// Blocks until the next chunk is here; returns its records (valid until the next call) and sets
    /// <paramref name="next"/> to the cursor after it. The chunk whose <paramref name="next"/> is done is the last.
    /// </summary>
    PullBuffer Read(out ScanCursor next);
}

/// <summary>
/// <see cref="IMigrationPeer.OpenPulls"/> over <see cref="IMigrationPeer.PullAsync"/>: one request per chunk with the
/// next chunk in flight while the caller applies the current one. For peers without a streaming path of their own.
/// </summary>
internal sealed class PrefetchingPullStream : IPullStream
{
    private readonly IMigrationPeer _peer;
    private readonly SlotRange _range;
    private readonly long _incarnation;
    private readonly CancellationToken _cancel;
    private PullBuffer _current = new(), _inFlight = new();
    private ValueTask<ScanCursor> _pending;
    private bool _done;

    public PrefetchingPullStream(IMigrationPeer peer, SlotRange range, long incarnation, ScanCursor from, CancellationToken cancellationToken)
    {
        _peer = peer;
        _range = range;
        _incarnation = incarnation;
        _cancel = cancellationToken;
        _pending = peer.PullAsync(range, incarnation, from, _inFlight, cancellationToken);
    }

    public PullBuffer Read(out ScanCursor next)
    {
        if (_done)
            throw new InvalidOperationException("the pull stream has ended");
        ValueTask<ScanCursor> pending = _pending;
        _pending = default; // consumed, whatever happens next
        next = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
        (_current, _inFlight) = (_inFlight, _current);
        if (next.IsDone)
            _done = true;
        else
            _pending = _peer.PullAsync(_range, _incarnation, next, _inFlight, _cancel);
        return _current;
    }

    public void Dispose()
    {
        // A chunk still in flight lands in a buffer nobody reads: let it finish on its own, its failure observed.
        if (!_pending.IsCompleted)
            _ = _pending.AsTask().ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
