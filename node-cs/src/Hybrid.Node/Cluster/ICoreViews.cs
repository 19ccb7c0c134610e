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

    /// <summary>Moves the node to <paramref name="view"/>; its cores adopt it at their next epoch refresh.</summary>
    void Advance(int view);

    /// <summary>The view core <paramref name="core"/> executes in now.</summary>
    int CoreView(int core);
}

/// <summary>The running node's <see cref="NodeView"/> as <see cref="ICoreViews"/> (worker i = core i).</summary>
public sealed class NodeViewCores(NodeView view) : ICoreViews
{
    /// <inheritdoc />
    public int CoreCount => view.Workers;

    /// <inheritdoc />
    public void Advance(int newView)
    {
        if ((ulong)newView > view.Current)
            view.Advance((ulong)newView);
    }

    /// <inheritdoc />
    public int CoreView(int core) => (int)view.WorkerView(core);
}
