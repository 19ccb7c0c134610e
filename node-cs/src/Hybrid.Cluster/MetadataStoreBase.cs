namespace Hybrid.Cluster;

/// <summary>
/// What both stores share: the single-key operations are one-operation transactions, so a store
/// implements only <see cref="CompareAndSwapManyAsync"/> and cannot give them different semantics.
/// </summary>
public abstract class MetadataStoreBase : IMetadataStore
{
    /// <inheritdoc/>
    public async Task<CasResult> CompareAndSwapAsync(
        string key, long expectedRevision, ReadOnlyMemory<byte> value, long leaseId = 0,
        CancellationToken cancellationToken = default) =>
        Single(await CompareAndSwapManyAsync([MetadataOp.Put(key, expectedRevision, value, leaseId)], cancellationToken));

    /// <inheritdoc/>
    public async Task<CasResult> DeleteAsync(string key, long expectedRevision, CancellationToken cancellationToken = default) =>
        Single(await CompareAndSwapManyAsync([MetadataOp.Delete(key, expectedRevision)], cancellationToken));

    /// <inheritdoc/>
    public abstract Task<MetadataEntry?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract Task<IReadOnlyList<MetadataEntry>> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract Task<TxnResult> CompareAndSwapManyAsync(
        IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract IAsyncEnumerable<WatchEvent> WatchAsync(
        string prefix, long afterRevision = 0, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract Task<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default);

    /// <inheritdoc/>
    public abstract ValueTask DisposeAsync();

    private static CasResult Single(TxnResult result) =>
        new(result.Succeeded, result.Revision, result.Succeeded ? null : result.Current[0]);
}
