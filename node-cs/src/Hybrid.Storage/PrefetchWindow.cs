using System.Runtime.CompilerServices;

namespace Hybrid.Storage;

/// <summary>
/// Software pipelining of the memory misses of a run of single-key requests (a native batch, a RESP pipeline): the
/// index bucket of request <c>n + Depth</c> and the records of request <c>n + RecordLag</c> start loading while
/// request <c>n</c> executes, so that by the time a request runs, its bucket and record are (likely) in the cache.
/// </summary>
/// <remarks>
/// Usage, before executing request <c>e</c> (0-based within the run): <see cref="Records"/>, then, while
/// <see cref="WantsMore"/>, look at the next request not looked at yet and call <see cref="Add"/> (a request with a
/// key) or <see cref="Skip"/>. Hints only: nothing here changes a result or an order. A value type on the caller's
/// stack: no allocation.
/// </remarks>
public struct PrefetchWindow
{
    /// <summary>Requests whose buckets are loading ahead of the one executing.</summary>
    public const int Depth = 8;

    /// <summary>Requests ahead of the one executing whose records are loading (their buckets were issued earlier).</summary>
    public const int RecordLag = 4;

    private Tokens _tokens;
    private int _added;
    private int _recorded;

    /// <summary>True while fewer than <see cref="Depth"/> requests past <paramref name="executing"/> were looked at.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool WantsMore(int executing) => _added < executing + Depth;

    /// <summary>Requests looked at so far.</summary>
    public readonly int Added => _added;

    /// <summary>The next request has <paramref name="key"/>: its bucket starts loading.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(IKvSession session, uint tenant, uint table, ReadOnlySpan<byte> key) =>
        _tokens[_added++ & (Depth - 1)] = session.PrefetchKey(tenant, table, key);

    /// <summary>The next request has no key to prefetch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Skip() => _tokens[_added++ & (Depth - 1)] = 0;

    /// <summary>Starts loading the records of the requests up to <see cref="RecordLag"/> past <paramref name="executing"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Records(IKvSession session, int executing)
    {
        int until = Math.Min(_added, executing + RecordLag);
        for (; _recorded < until; _recorded++)
        {
            long token = _tokens[_recorded & (Depth - 1)];
            if (token != 0)
                session.PrefetchRecords(token);
        }
    }

    [InlineArray(Depth)]
    private struct Tokens
    {
        private long _first;
    }
}
