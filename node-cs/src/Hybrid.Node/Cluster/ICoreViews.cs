using Hybrid.Node.Hosting;

namespace Hybrid.Node.Cluster;

/// <summary>
/// A node's view as the migration coordinator sees it: it moves the node to a new view (the decision's
/// <c>BumpView</c>) and observes which view each core (worker) executes in, to report <c>CoreRefresh</c>.
/// Core i is the decision model's core <c>Cores[i]</c>.
/// </summary>
public interface ICoreViews
{
    /// <summary>Number of cores.</summary>
    int CoreCount { get; }

    /// <summary>
    /// Moves the node to <paramref name="view"/>, in which it owns exactly <paramref name="owned"/> (the decision's
    /// <c>Owned(n, view)</c>); its cores adopt both together at their next epoch refresh.
    /// </summary>
    void Advance(int view, IReadOnlyList<SlotRange> owned);

    /// <summary>The view core <paramref name="core"/> executes in now.</summary>
    int CoreView(int core);
}

/// <summary>The running node's <see cref="NodeView"/> as <see cref="ICoreViews"/> (worker i = core i).</summary>
public sealed class NodeViewCores(NodeView view) : ICoreViews
{
    /// <inheritdoc />
    public int CoreCount => view.Workers;

    /// <inheritdoc />
    public void Advance(int newView, IReadOnlyList<SlotRange> owned)
    {
        if ((ulong)newView > view.Current)
            view.Advance((ulong)newView, OwnedSlotsOf(owned));
    }

    /// <summary>The slot set of <paramref name="owned"/>.</summary>
    public static OwnedSlots OwnedSlotsOf(IEnumerable<SlotRange> owned) => OwnedSlots.Of(owned.Select(r => (r.Lo, r.Hi)));

    /// <inheritdoc />
    public int CoreView(int core) => (int)view.WorkerView(core);
}
