using Hybrid.Transport.Polling;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// The node's readiness loops for its kernel-socket front ends (<see cref="PolledConnection"/>): a few
/// <see cref="SocketPoller"/> threads and the table that maps an event's token back to its connection. A token is
/// slot and generation, so an event collected just before its connection closed (and the slot was reused) finds
/// nothing instead of the wrong connection. The table changes only when a connection opens or closes (under a lock
/// the request path never takes); the pollers read it without one.
/// </summary>
internal sealed class FrontPollers : IDisposable
{
    private readonly SocketPoller[] _pollers;
    private readonly Lock _lock = new();
    private readonly Stack<int> _free = new();
    private PolledConnection?[] _slots = new PolledConnection?[256];
    private int _used;
    private uint _generation;

    /// <summary>
    /// Starts <paramref name="threads"/> poller threads with worker-sized stacks (they run requests inline), each
    /// spinning <paramref name="spin"/> for more events before it sleeps; poller i runs on <c>cpus[i % n]</c> (worker i's
    /// CPU) when <paramref name="cpus"/> is not empty. A poller pinned beside worker i spins only while that worker
    /// sleeps (<paramref name="workerAsleep"/>), when the next request would run inline on the poller: while the worker
    /// is busy the spin would only take the CPU the worker needs to answer.
    /// </summary>
    internal FrontPollers(int threads, int stackBytes, TimeSpan spin, IReadOnlyList<int> cpus, Func<int, bool> workerAsleep)
    {
        _pollers = new SocketPoller[threads];
        try
        {
            for (int i = 0; i < threads; i++)
            {
                int index = i;
                _pollers[i] = cpus.Count == 0
                    ? new SocketPoller($"hybrid-poller-{i}", OnEvent, stackBytes, spin)
                    : new SocketPoller($"hybrid-poller-{i}", OnEvent, stackBytes, spin, cpus[i % cpus.Count], () => workerAsleep(index));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Events handled by all pollers.</summary>
    internal long Events => _pollers.Sum(p => p?.Events ?? 0);

    /// <summary>Watches the connection's socket on the poller paired with its owner worker.</summary>
    internal void Add(PolledConnection connection)
    {
        lock (_lock)
        {
            int slot;
            if (_free.Count > 0)
            {
                slot = _free.Pop();
            }
            else
            {
                if (_used == _slots.Length)
                {
                    var bigger = new PolledConnection?[_slots.Length * 2];
                    _slots.CopyTo(bigger, 0);
                    Volatile.Write(ref _slots, bigger);
                }
                slot = _used++;
            }
            connection.Token = ((ulong)++_generation << 32) | (uint)slot;
            Volatile.Write(ref _slots[slot], connection);
        }
        try
        {
            PollerOf(connection).Add(connection.Socket, connection.Token);
        }
        catch
        {
            FreeSlot(connection);
            throw;
        }
    }

    /// <summary>Stops watching the connection (before its socket closes) and frees its slot.</summary>
    internal void Remove(PolledConnection connection)
    {
        PollerOf(connection).Remove(connection.Socket);
        FreeSlot(connection);
    }

    private void FreeSlot(PolledConnection connection)
    {
        lock (_lock)
        {
            int slot = (int)(uint)connection.Token;
            if (ReferenceEquals(_slots[slot], connection))
            {
                _slots[slot] = null;
                _free.Push(slot);
            }
        }
    }

    private SocketPoller PollerOf(PolledConnection connection) => _pollers[connection.Owner.WorkerIndex % _pollers.Length];

    private void OnEvent(ulong token, PollEvents events)
    {
        var slots = Volatile.Read(ref _slots);
        int slot = (int)(uint)token;
        if (slot < slots.Length && Volatile.Read(ref slots[slot]) is { } connection && connection.Token == token)
            connection.OnEvent(events);
    }

    /// <summary>Stops the poller threads (call after the workers stopped).</summary>
    public void Dispose()
    {
        foreach (var poller in _pollers)
            poller?.Dispose();
    }
}
