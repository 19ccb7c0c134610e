namespace Hybrid.Node.Hosting;

/// <summary>
/// The node's view number (Shadowfax): it changes whenever the set of ranges the node owns changes. A single number
/// per node for now; a cluster layer calls <see cref="Advance"/>. Workers read it only at their epoch refresh (so a
/// change is an asynchronous global cut: each worker moves at its own next refresh, no barrier) and report the view
/// they are in, so the cluster layer can wait until every worker has left an old view
/// (<see cref="AllWorkersAtLeast"/>) before letting a new owner serve a range. Each view is published with the slots
/// the node owns in it (<see cref="OwnedSlots"/>), as one immutable pair, so a worker never sees a view with another
/// view's ownership.
/// </summary>
public sealed class NodeView
{
    private const int Stride = 16; // one 128-byte line per worker slot: no false sharing between workers
    private readonly long[] _workerViews;
    private Published _current;

    /// <summary>
    /// Creates the view of a node with <paramref name="workers"/> workers, starting at <paramref name="initial"/> and
    /// owning <paramref name="owned"/> in it (null = every slot).
    /// </summary>
    public NodeView(int workers, ulong initial = 1, OwnedSlots? owned = null)
    {
        _current = new Published(initial, owned ?? OwnedSlots.All);
        _workerViews = new long[(workers + 1) * Stride];
        for (int w = 0; w < workers; w++)
            _workerViews[(w + 1) * Stride] = (long)initial;
        Workers = workers;
    }

    /// <summary>Number of workers that report.</summary>
    public int Workers { get; }

    /// <summary>The node's current view (what workers adopt at their next refresh).</summary>
    public ulong Current => Volatile.Read(ref _current).View;

    /// <summary>The slots owned in <see cref="Current"/>.</summary>
    public OwnedSlots CurrentOwned => Volatile.Read(ref _current).Owned;

    /// <summary>Raised after <see cref="Advance"/> so the node can wake idle workers to refresh.</summary>
    public event Action? Changed;

    /// <summary>
    /// Moves the node to <paramref name="view"/> (must be larger than the current one), owning <paramref name="owned"/>
    /// in it (null = every slot: a node outside a cluster).
    /// </summary>
    public void Advance(ulong view, OwnedSlots? owned = null)
    {
        var next = new Published(view, owned ?? OwnedSlots.All);
        while (true)
        {
            var current = Volatile.Read(ref _current);
            if (view <= current.View)
                throw new ArgumentOutOfRangeException(nameof(view), view, $"a view only grows (current {current.View})");
            if (Interlocked.CompareExchange(ref _current, next, current) == current)
                break;
        }
        Changed?.Invoke();
    }

    /// <summary>The view worker <paramref name="worker"/> reported at its last refresh.</summary>
    public ulong WorkerView(int worker) => (ulong)Volatile.Read(ref _workerViews[(worker + 1) * Stride]);

    /// <summary>True when every worker has refreshed to <paramref name="view"/> or later.</summary>
    public bool AllWorkersAtLeast(ulong view)
    {
        for (int w = 0; w < Workers; w++)
        {
            if (WorkerView(w) < view)
                return false;
        }
        return true;
    }

    /// <summary>
    /// Worker side of a refresh, first half: the view published now and the slots owned in it, read together. The
    /// worker finishes what it admitted in its old view, then reports exactly this view with <see cref="Report"/>: a
    /// view published in between must not be reported before the worker drained for it.
    /// </summary>
    internal ulong Peek(out OwnedSlots owned)
    {
        var current = Volatile.Read(ref _current);
        owned = current.Owned;
        return current.View;
    }

    /// <summary>Worker side of a refresh, second half: worker <paramref name="worker"/> is in <paramref name="view"/> (from <see cref="Peek"/>).</summary>
    internal void Report(int worker, ulong view) => Volatile.Write(ref _workerViews[(worker + 1) * Stride], (long)view);

    private sealed record Published(ulong View, OwnedSlots Owned);
}
