namespace Hybrid.Node.Hosting;

/// <summary>
/// The node's view number (Shadowfax): it changes whenever the set of ranges the node owns changes. A single number
/// per node for now; a cluster layer calls <see cref="Advance"/>. Workers read it only at their epoch refresh (so a
/// change is an asynchronous global cut: each worker moves at its own next refresh, no barrier) and report the view
/// they are in, so the cluster layer can wait until every worker has left an old view
/// (<see cref="AllWorkersAtLeast"/>) before letting a new owner serve a range.
/// </summary>
public sealed class NodeView
{
    private const int Stride = 16; // one 128-byte line per worker slot: no false sharing between workers
    private readonly long[] _workerViews;
    private long _current;

    /// <summary>Creates the view of a node with <paramref name="workers"/> workers, starting at <paramref name="initial"/>.</summary>
    public NodeView(int workers, ulong initial = 1)
    {
        _current = (long)initial;
        _workerViews = new long[(workers + 1) * Stride];
        for (int w = 0; w < workers; w++)
            _workerViews[(w + 1) * Stride] = (long)initial;
        Workers = workers;
    }

    /// <summary>Number of workers that report.</summary>
    public int Workers { get; }

    /// <summary>The node's current view (what workers adopt at their next refresh).</summary>
    public ulong Current => (ulong)Volatile.Read(ref _current);

    /// <summary>Raised after <see cref="Advance"/> so the node can wake idle workers to refresh.</summary>
    public event Action? Changed;

    /// <summary>Moves the node to <paramref name="view"/> (must be larger than the current one).</summary>
    public void Advance(ulong view)
    {
        if (view <= Current)
            throw new ArgumentOutOfRangeException(nameof(view), view, "a view only grows");
        Volatile.Write(ref _current, (long)view);
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

    /// <summary>Worker side of the refresh: reads the current view and reports it. Returns the view to check batches against.</summary>
    internal ulong Refresh(int worker)
    {
        ulong view = Current;
        Volatile.Write(ref _workerViews[(worker + 1) * Stride], (long)view);
        return view;
    }
}
