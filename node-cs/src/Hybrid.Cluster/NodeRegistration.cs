namespace Hybrid.Cluster;

/// <summary>
/// A node's live membership entry: a key bound to a lease that a background loop keeps alive. Disposing
/// it stops the loop and revokes the lease, so the entry disappears at once; a process that dies simply
/// stops renewing, and the entry disappears when the lease's TTL runs out.
/// </summary>
public sealed class NodeRegistration : IAsyncDisposable
{
    private readonly IMetadataStore _store;
    private readonly byte[] _value;
    private readonly TimeSpan _ttl;
    private readonly TimeSpan _interval;
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;
    private long _leaseId;
    private int _registrations;

    internal NodeRegistration(IMetadataStore store, string key, byte[] value, TimeSpan ttl, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero);
        _store = store;
        Key = key;
        _value = value;
        _ttl = ttl;
        _interval = interval;
    }

    /// <summary>The membership key (<c>&lt;root&gt;/nodes/&lt;id&gt;</c>).</summary>
    public string Key { get; }

    /// <summary>The lease the entry is currently bound to (changes when a lost lease is replaced).</summary>
    public long LeaseId => Interlocked.Read(ref _leaseId);

    /// <summary>How many times the entry was written: 1 plus the re-registrations after lost leases.</summary>
    public int Registrations => Volatile.Read(ref _registrations);

    /// <summary>Stops renewing and revokes the lease (removing the entry now, or at TTL if the store is down). Safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
        try
        {
            await _store.RevokeLeaseAsync(LeaseId);
        }
        catch (MetadataUnavailableException)
        {
            // The store is down: the lease is no longer renewed and expires after its TTL anyway.
        }
    }

    /// <summary>Grants a fresh lease and writes the entry bound to it, whatever was there before.</summary>
    internal async Task RegisterAsync(CancellationToken cancellationToken)
    {
        var lease = await _store.GrantLeaseAsync(_ttl, cancellationToken);
        await _store.CompareAndSwapAsync(Key, MetadataRevision.Any, _value, lease, cancellationToken);
        Interlocked.Exchange(ref _leaseId, lease);
        Interlocked.Increment(ref _registrations);
    }

    internal void Start() => _loop = Task.Run(KeepAliveLoopAsync);

    private async Task KeepAliveLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_interval, token);
                if (!await _store.KeepAliveAsync(LeaseId, token))
                {
                    await RegisterAsync(token);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is MetadataUnavailableException or MetadataLeaseNotFoundException)
            {
                // The store is down or the new lease vanished at once: try again at the next tick.
            }
        }
    }
}
