using System.Text;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// A metadata store for the <c>node-at</c> child role that holds its caller for <see cref="Hold"/> right after it
/// published a decision of the kind named in <paramref name="stallFile"/> (if that file exists): the decision is durable,
/// none of its effects is carried out yet. It prints <c>stalled after KIND</c> first, so a test can kill a node at
/// exactly that point of a migration. Test-only: the node code is unchanged.
/// </summary>
internal sealed class StallingMetadataStore(IMetadataStore inner, string stallFile) : IMetadataStore
{
    /// <summary>How long the decider is held.</summary>
    public static readonly TimeSpan Hold = TimeSpan.FromSeconds(3);

    private int _seen = -1;

    public Task<MetadataEntry?> GetAsync(string key, CancellationToken cancellationToken = default) => inner.GetAsync(key, cancellationToken);

    public Task<IReadOnlyList<MetadataEntry>> ListAsync(string prefix, CancellationToken cancellationToken = default) => inner.ListAsync(prefix, cancellationToken);

    public Task<CasResult> CompareAndSwapAsync(string key, long expectedRevision, ReadOnlyMemory<byte> value, long leaseId = 0, CancellationToken cancellationToken = default) =>
        inner.CompareAndSwapAsync(key, expectedRevision, value, leaseId, cancellationToken);

    public async Task<TxnResult> CompareAndSwapManyAsync(IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default)
    {
        string? kind = File.Exists(stallFile) ? (await File.ReadAllTextAsync(stallFile, cancellationToken).ConfigureAwait(false)).Trim() : null;
        string marker = $"\"Kind\":\"{kind}\"";
        MetadataOp? log = operations.FirstOrDefault(op => op.Key.EndsWith("/core", StringComparison.Ordinal));
        if (kind is not null && log is not null && _seen < 0)
        {
            // How many such decisions the log held before this process wrote any (the next one is new).
            MetadataEntry? before = await inner.GetAsync(log.Key, cancellationToken).ConfigureAwait(false);
            _seen = before is null ? 0 : Count(Encoding.UTF8.GetString(before.Value.Span), marker);
        }
        TxnResult result = await inner.CompareAndSwapManyAsync(operations, cancellationToken).ConfigureAwait(false);
        if (result.Succeeded && kind is not null && log is not null)
        {
            int count = Count(Encoding.UTF8.GetString(log.Value.Span), marker);
            int seen = Interlocked.Exchange(ref _seen, count);
            if (count > seen)
            {
                await Console.Out.WriteLineAsync($"stalled after {kind}").ConfigureAwait(false);
                await Console.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(Hold, cancellationToken).ConfigureAwait(false);
            }
        }
        return result;
    }

    private static int Count(string text, string marker)
    {
        int count = 0;
        for (int at = text.IndexOf(marker, StringComparison.Ordinal); at >= 0; at = text.IndexOf(marker, at + marker.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    public Task<CasResult> DeleteAsync(string key, long expectedRevision, CancellationToken cancellationToken = default) => inner.DeleteAsync(key, expectedRevision, cancellationToken);

    public IAsyncEnumerable<WatchEvent> WatchAsync(string prefix, long afterRevision = 0, CancellationToken cancellationToken = default) =>
        inner.WatchAsync(prefix, afterRevision, cancellationToken);

    public Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default) => inner.GrantLeaseAsync(ttl, cancellationToken);

    public Task<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default) => inner.KeepAliveAsync(leaseId, cancellationToken);

    public Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default) => inner.RevokeLeaseAsync(leaseId, cancellationToken);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
