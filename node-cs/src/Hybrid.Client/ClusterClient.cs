using System.Collections.Concurrent;
using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>
/// A cluster-aware client: one <see cref="HybridSession"/> per node, each request routed by its key's slot to the
/// range's owner in the routing map. A request goes to node n only when the map says n owns the range in the view the
/// session will stamp (the spec's <c>Send</c> reads <c>sessMap</c> and <c>sessView</c> together), so a batch is never
/// executed by a node in a view that does not hold its range. On ViewChanged or NotOwner the client re-reads the map
/// (<c>SessionRefresh</c>) and resends the request to the range's owner; the session keeps its connection (it adopted
/// the node's current view from the rejection's header), so the other requests in flight on it go on. A session whose
/// view is behind the map's learns the node's view with a Noop (it is shared: closing it would fail other callers'
/// requests in flight). A lost connection is reopened. While a range is being handed over (the source left it, the target does not
/// own it yet) its requests wait and retry; every other range is served as usual.
/// A request is sent again only when it did not run: a rejection (ViewChanged, NotOwner, Retry), a get or write whose
/// own result is Retry (a key of a range moving to the node whose pull failed), a
/// <see cref="HybridNotSentException"/>, a connection that could not be opened, or a read. A write or an extension
/// call whose connection broke after it was sent fails with <see cref="HybridConnectionException"/>: it may have run.
/// </summary>
public sealed partial class ClusterClient : IAsyncDisposable
{
    private readonly IClusterRoutingSource _source;
    private readonly HybridClientOptions _template;
    private readonly ConcurrentDictionary<string, Task<HybridSession>> _sessions = new();
    private readonly Lock _readLock = new();
    private Task? _reading;
    private ClusterRouting _map;
    private long _resends;
    private long _loadedAt;
    private TaskCompletionSource _routesChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _waiting;
    private int _polling;
    private volatile bool _disposed;

    private ClusterClient(IClusterRoutingSource source, HybridClientOptions template, ClusterRouting map)
    {
        _source = source;
        _template = template with { MaxResends = 0 };
        _map = map;
    }

    /// <summary>Reads the routing map; sessions to nodes open on first use with <paramref name="template"/>'s options.</summary>
    public static async Task<ClusterClient> ConnectAsync(IClusterRoutingSource source, HybridClientOptions? template = null, CancellationToken cancellationToken = default) =>
        new(source, template ?? new HybridClientOptions(), await source.LoadAsync(cancellationToken).ConfigureAwait(false));

    /// <summary>The routing map in use.</summary>
    public ClusterRouting Routing => Volatile.Read(ref _map);

    /// <summary>Requests sent again after a view change, a refusal or a lost connection.</summary>
    public long Resends => Interlocked.Read(ref _resends);

    /// <summary>How long a request keeps retrying (a handover, a restarting node) before it fails.</summary>
    public TimeSpan RetryFor { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Reads a key from its owner.</summary>
    public Task<GetResult> GetAsync(ushort table, ReadOnlyMemory<byte> key) => SendAsync(key, idempotent: true, s => s.GetAsync(table, key.Span));

    /// <summary>Writes a key at its owner.</summary>
    public Task<WriteResult> PutAsync(ushort table, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value) =>
        SendAsync(key, idempotent: false, s => s.PutAsync(table, key.Span, value.Span));

    /// <summary>Deletes a key at its owner.</summary>
    public Task<WriteResult> DeleteAsync(ushort table, ReadOnlyMemory<byte> key) => SendAsync(key, idempotent: false, s => s.DeleteAsync(table, key.Span));

    /// <summary>
    /// Routes and sends one request, retrying while it did not run (see the class remarks); <paramref name="idempotent"/>
    /// (reads) also retries a request whose outcome is unknown.
    /// </summary>
    private async Task<T> SendAsync<T>(ReadOnlyMemory<byte> key, bool idempotent, Func<HybridSession, ValueTask<T>> send)
    {
        int slot = ClusterSlot.Of(key.Span);
        DateTime deadline = DateTime.UtcNow + RetryFor;
        ClusterRouting? tried = null;
        Exception? last = null;
        for (int attempt = 0; ; attempt++)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (attempt > 0)
            {
                Interlocked.Increment(ref _resends);
                if (DateTime.UtcNow > deadline)
                {
                    // Say why the last attempt failed: a wrong secret or a tenant no node knows is retried like a node in
                    // handover (a new tenant reaches the nodes a moment after it is created), so it ends here too.
                    throw new HybridConnectionException(
                        $"slot {slot}: no owner accepted the request within {RetryFor}" + (last is null ? "" : $" (last: {last.Message})"), last);
                }
                await NewRouteAsync(tried!, TimeSpan.FromMilliseconds(Math.Min(attempt, 20))).ConfigureAwait(false);
            }
            ClusterRouting map = Routing;
            tried = map;
            string range = map.RangeOf(slot) ?? throw new InvalidOperationException($"no range holds slot {slot}");
            string node = map.Owner[range];
            Task<HybridSession>? opening = null;
            HybridSession session;
            try
            {
                opening = SessionAsync(node, map);
                session = await opening.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Never keep a session that failed to open, whatever the failure (else every later request gets it).
                if (opening is not null && _sessions.TryRemove(KeyValuePair.Create(node, opening)))
                    _ = CloseAsync(opening);
                if (e is not (HybridConnectionException or HybridProtocolException or System.Net.Sockets.SocketException or OperationCanceledException))
                    throw;
                last = e;
                await RefreshAsync(node, null).ConfigureAwait(false);
                continue;
            }
            if (!map.Owns(node, session.View, range))
            {
                // The map and the session's view disagree: the range is in handover, or one of them is stale. A session
                // behind the map asks the node for its view (the metadata names a view before the node reaches it, so
                // reopening the session would only learn the same view again, and fail its other callers' requests).
                // A session that cannot even be asked (its node restarted at another address while this session was
                // behind: the restarted node's views are not the ones it saw) is replaced, else it would be asked forever.
                bool answered = session.View >= (ulong)map.Views[node] || await LearnViewAsync(session).ConfigureAwait(false);
                await RefreshAsync(node, answered ? null : opening).ConfigureAwait(false);
                continue;
            }
            try
            {
                T result = await send(session).ConfigureAwait(false);
                if (!IsRetry(result))
                    return result;
                // The node did not run it (its range is moving there and the pull it waited for failed): again, later.
                last = new HybridProtocolException(Status.Retry, $"node {node} could not run the request now (Retry)");
            }
            catch (HybridProtocolException e) when (e.Status is Status.ViewChanged or Status.NotOwner or Status.Retry)
            {
                // The session stays: it adopted the node's view from the rejection (its other requests go on).
                last = e;
                await RefreshAsync(node, null).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HybridNotSentException || (e is ObjectDisposedException && !_disposed)
                || (idempotent && e is HybridConnectionException or System.Net.Sockets.SocketException or IOException))
            {
                // Not run (or a read): safe to send again. (ObjectDisposedException: the session was closed before the
                // request entered it.) Any other connection failure reaches the caller: the request may have run.
                last = e;
                await RefreshAsync(node, opening).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A result that says the request did not run and may be sent again (per-request <see cref="Status.Retry"/>).</summary>
    private static bool IsRetry<T>(T result) =>
        (typeof(T) == typeof(GetResult) && System.Runtime.CompilerServices.Unsafe.As<T, GetResult>(ref result).Status == Status.Retry)
        || (typeof(T) == typeof(WriteResult) && System.Runtime.CompilerServices.Unsafe.As<T, WriteResult>(ref result).Status == Status.Retry);

    /// <summary>
    /// Sends a Noop stamped with the session's view: a node in a newer view rejects it, and the session adopts that view.
    /// False when the node could not be asked at all (the connection failed, the session was closed).
    /// </summary>
    private static async Task<bool> LearnViewAsync(HybridSession session)
    {
        try
        {
            await session.NoopAsync().ConfigureAwait(false);
            return true;
        }
        catch (HybridProtocolException)
        {
            return true; // ViewChanged is the answer looked for
        }
        catch (Exception e) when (e is HybridConnectionException or ObjectDisposedException)
        {
            return false;
        }
    }

    private Task<HybridSession> SessionAsync(string node, ClusterRouting map)
    {
        if (!map.EndPoints.TryGetValue(node, out var endPoint))
            throw new HybridConnectionException($"node {node} has no endpoint (not running)");
        ObjectDisposedException.ThrowIf(_disposed, this);
        var session = _sessions.GetOrAdd(node, _ => HybridSession.ConnectAsync(_template with { EndPoint = endPoint }));
        if (_disposed)
        {
            // DisposeAsync may have closed the sessions already: one opened now would never be closed.
            if (_sessions.TryRemove(KeyValuePair.Create(node, session)))
                _ = CloseAsync(session);
            throw new ObjectDisposedException(nameof(ClusterClient));
        }
        return session;
    }

    /// <summary>
    /// Drops <paramref name="stale"/>, the session to <paramref name="node"/> that failed (so the next request
    /// reconnects), and re-reads the map unless it was read since this request failed or the poller is re-reading it
    /// (<see cref="PollRoutes"/>, while requests wait for a new route): one read at a time, which every request that
    /// needs it joins, each waiting for it at most <see cref="RefreshWaitsAtMost"/>.
    /// </summary>
    /// <remarks>
    /// The bound matters while the metadata store is away: a read then waits out its whole deadline (seconds) before it
    /// fails. A request that waited for it would stay waiting after the node that rejected it served again; and when the
    /// rejected requests queued to read one after another, the last of n waited n deadlines. Past the bound a request
    /// retries with the map in use; the read goes on and installs what it gets.
    /// </remarks>
    private async Task RefreshAsync(string node, Task<HybridSession>? stale)
    {
        if (stale is not null && _sessions.TryRemove(KeyValuePair.Create(node, stale)))
            _ = CloseAsync(stale);
        long failedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        Task reading;
        lock (_readLock)
        {
            if (_reading is { IsCompleted: false })
                reading = _reading;
            else if (Interlocked.Read(ref _loadedAt) < failedAt && Volatile.Read(ref _polling) == 0)
                reading = _reading = ReadMapAsync();
            else
                return; // read since, or the poller is reading for the requests that wait (this one waits with them)
        }
        try
        {
            await reading.WaitAsync(RefreshWaitsAtMost).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The metadata store is slow or away: retry with the map in use (the read installs its answer when it comes).
        }
    }

    /// <summary>Longest a request waits for a read of the map before it retries with the map in use.</summary>
    private static readonly TimeSpan RefreshWaitsAtMost = TimeSpan.FromMilliseconds(200);

    /// <summary>One read of the map, installed if it succeeds; never faults (an unreadable store keeps the old map).</summary>
    private async Task ReadMapAsync()
    {
        await Task.Yield(); // the caller holds _readLock
        try
        {
            Install(await _source.LoadAsync().ConfigureAwait(false));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The metadata store is unreachable: keep the old map; requests retry until their deadline.
        }
    }

    /// <summary>
    /// Makes <paramref name="map"/> the routing in use; wakes the requests waiting for a new route if it routes
    /// differently (then returns true).
    /// </summary>
    private bool Install(ClusterRouting map)
    {
        ClusterRouting old = Interlocked.Exchange(ref _map, map);
        Interlocked.Exchange(ref _loadedAt, System.Diagnostics.Stopwatch.GetTimestamp());
        if (SameRoutes(old, map))
            return false;
        Interlocked.Exchange(ref _routesChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        return true;
    }

    /// <summary>Owners, node views and endpoints equal: a request would be routed, stamped and sent the same by both.</summary>
    private static bool SameRoutes(ClusterRouting a, ClusterRouting b) =>
        ReferenceEquals(a, b) || (Same(a.Owner, b.Owner) && Same(a.Views, b.Views) && Same(a.EndPoints, b.EndPoints));

    private static bool Same<T>(IReadOnlyDictionary<string, T> a, IReadOnlyDictionary<string, T> b) =>
        a.Count == b.Count && a.All(e => b.TryGetValue(e.Key, out T? v) && EqualityComparer<T>.Default.Equals(v, e.Value));

    /// <summary>
    /// Waits until the routing in use routes differently from <paramref name="tried"/> (a request's retry has then
    /// something new to try), or <paramref name="atMost"/> passed. While any request waits here, one thread re-reads the
    /// map (<see cref="PollRoutes"/>: after 1 ms, backing off to <see cref="PollUnchangedMaxMs"/> while it does not change),
    /// so a handover's requests go to the new owner soon after the metadata names it, instead of each sleeping out its
    /// own back-off (under load a 2 ms Task.Delay took 17-21 ms).
    /// </summary>
    private async Task NewRouteAsync(ClusterRouting tried, TimeSpan atMost)
    {
        Task changed = Volatile.Read(ref _routesChanged).Task;
        if (!SameRoutes(tried, Routing))
            return;
        Interlocked.Increment(ref _waiting);
        try
        {
            if (Interlocked.CompareExchange(ref _polling, 1, 0) == 0)
                new Thread(PollRoutes) { IsBackground = true, Name = "cluster-routes" }.Start();
            await changed.WaitAsync(atMost).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Retry anyway: a lost connection or a node's own view change is not in the map.
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <summary>Longest pause between two reads of a map that did not change.</summary>
    private const int PollUnchangedMaxMs = 5; // a handover shows in the map at most this late

    /// <summary>Longest pause between two reads while the metadata store cannot be read.</summary>
    private const int PollFailedMaxMs = 256;

    /// <summary>
    /// Re-reads the map while requests wait for a new route; ends when none waits. The pause starts at 1 ms after a
    /// change and doubles while the map stays the same (up to <see cref="PollUnchangedMaxMs"/>) or cannot be read (up
    /// to <see cref="PollFailedMaxMs"/>): a long handover or an unreachable store is not read a thousand times a second.
    /// </summary>
    private void PollRoutes()
    {
        while (true)
        {
            int pause = 1;
            while (Volatile.Read(ref _waiting) > 0 && !_disposed)
            {
                try
                {
                    pause = Install(_source.LoadAsync().GetAwaiter().GetResult()) ? 1 : Math.Min(pause * 2, PollUnchangedMaxMs);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // The metadata store is unreachable: the waiters time out and retry with the map they have.
                    pause = Math.Min(pause * 2, PollFailedMaxMs);
                }
                Thread.Sleep(pause);
            }
            Volatile.Write(ref _polling, 0);
            // A request that started waiting after the loop's last look but before _polling was cleared saw it set and
            // started no poller: look again.
            if (Volatile.Read(ref _waiting) == 0 || _disposed || Interlocked.CompareExchange(ref _polling, 1, 0) != 0)
                return;
        }
    }

    private static async Task CloseAsync(Task<HybridSession> session)
    {
        try
        {
            await (await session.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (!session.IsCompletedSuccessfully
            || e is HybridConnectionException or HybridProtocolException or System.Net.Sockets.SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // It never opened (whatever the failure, its caller saw it), or it broke: nothing to close.
        }
    }

    /// <summary>Closes every session.</summary>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var session in _sessions.Values)
            await CloseAsync(session).ConfigureAwait(false);
        _sessions.Clear();
    }
}
