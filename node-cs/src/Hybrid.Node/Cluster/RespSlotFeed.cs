using System.Security.Cryptography;
using System.Text;
using Hybrid.Core.Interop;
using Hybrid.Node.Resp;

namespace Hybrid.Node.Cluster;

/// <summary>
/// Keeps a cluster member's RESP slot map (<see cref="ClusterSlotMap"/>: who serves each slot, for <c>-MOVED</c> and
/// CLUSTER SLOTS) in step with the decision state: each range's owner in the metadata, at the RESP endpoint that
/// node registered. Whether this node executes a key is not decided here: that is the worker's view (its owned
/// slots); the map only says where to send a client for a slot the view does not own. Rebuilt when the node's view
/// changes and every <see cref="Interval"/> (owners of ranges this node never held change without its view moving).
/// </summary>
internal sealed class RespSlotFeed : IAsyncDisposable
{
    private readonly ClusterSlotMap _map;
    private readonly IClusterMetadata _metadata;
    private readonly IReadOnlyDictionary<string, SlotRange> _ranges;
    private readonly Func<CancellationToken, Task<IReadOnlyDictionary<string, string>>> _endpoints;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _poke = new(0, 1);
    private Task _loop = Task.CompletedTask;

    internal RespSlotFeed(ClusterSlotMap map, IClusterMetadata metadata, IReadOnlyDictionary<string, SlotRange> ranges,
        Func<CancellationToken, Task<IReadOnlyDictionary<string, string>>> endpoints)
    {
        _map = map;
        _metadata = metadata;
        _ranges = ranges;
        _endpoints = endpoints;
    }

    /// <summary>How often the map is rebuilt without a view change.</summary>
    public static TimeSpan Interval { get; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The id Redis Cluster clients see for node <paramref name="name"/>: 40 hex characters, stable per name.</summary>
    public static string NodeId(string name) => Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(name)));

    /// <summary>Starts rebuilding in the background.</summary>
    public void Start() => _loop = Task.Run(LoopAsync);

    /// <summary>Asks for a rebuild now (the node's view changed).</summary>
    public void Poke()
    {
        if (_poke.CurrentCount == 0)
        {
            try
            {
                _poke.Release();
            }
            catch (SemaphoreFullException)
            {
                // another poke got there first: one rebuild covers both
            }
        }
    }

    /// <summary>Rebuilds the map once from the metadata and the registered endpoints.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        ClusterCore core = _metadata.Current;
        IReadOnlyDictionary<string, string> endpoints = await _endpoints(cancellationToken).ConfigureAwait(false);
        var ranges = new List<RespSlotRange>();
        foreach (var (name, slots) in _ranges)
        {
            string owner = core.Owner(name);
            if (!endpoints.TryGetValue(owner, out string? endpoint))
                continue; // not running: the slots stay unnamed, and a key there gets -TRYAGAIN, never a dead address
            int colon = endpoint.LastIndexOf(':');
            ranges.Add(new RespSlotRange(slots.Lo, slots.Hi, endpoint[..colon], int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), NodeId(owner)));
        }
        _map.Update(ranges);
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(_stop.Token).ConfigureAwait(false);
                await _poke.WaitAsync(Interval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or TimeoutException or System.Net.Http.HttpRequestException or KeyNotFoundException)
            {
                // The metadata is unreachable for now: keep the last map (redirects may be stale; clients retry).
                await Task.Delay(Interval).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
        _poke.Dispose();
    }
}
