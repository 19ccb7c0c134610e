namespace Hybrid.Cluster;

/// <summary>
/// A small, versioned, compare-and-swap key-value store for cluster metadata (ownership, views,
/// migrations, lineage, node membership). Two implementations exist: <see cref="FileMetadataStore"/>
/// (embedded, one machine, several processes) and <see cref="EtcdMetadataStore"/>. Both pass the same
/// contract tests, so callers never need to know which one they hold.
/// </summary>
/// <remarks>
/// Revisions: every successful mutation (a CAS, a delete, a whole <see cref="CompareAndSwapManyAsync"/>,
/// a lease expiry) gets a new store-wide revision, strictly greater than every earlier one, and each
/// entry it writes carries that revision. An expected revision of <see cref="MetadataRevision.Absent"/>
/// (0) means "the key must not exist"; <see cref="MetadataRevision.Any"/> (-1) skips the comparison.
/// This store only stores and publishes decisions atomically; it never decides protocol questions.
/// </remarks>
public interface IMetadataStore : IAsyncDisposable
{
    /// <summary>Reads one key; null when absent (or bound to an expired lease).</summary>
    Task<MetadataEntry?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Every live entry whose key starts with <paramref name="prefix"/>, in ordinal key order.</summary>
    Task<IReadOnlyList<MetadataEntry>> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes <paramref name="value"/> only if the key's current revision is <paramref name="expectedRevision"/>.
    /// A non-zero <paramref name="leaseId"/> binds the entry to that lease: it disappears when the lease
    /// expires or is revoked. On conflict nothing changes and the result carries the current entry.
    /// Throws <see cref="MetadataLeaseNotFoundException"/> when the lease is gone.
    /// </summary>
    Task<CasResult> CompareAndSwapAsync(
        string key, long expectedRevision, ReadOnlyMemory<byte> value, long leaseId = 0,
        CancellationToken cancellationToken = default);

    /// <summary>
    /// All-or-nothing: every operation's comparison must hold, then all writes and deletes apply at one
    /// new revision; if any comparison fails nothing changes and <see cref="TxnResult.Current"/> holds the
    /// current entry of every key, in operation order. A key may appear at most once. A transaction of
    /// <see cref="MetadataOpKind.Check"/> operations only writes nothing and returns the store's current revision
    /// (with <see cref="MetadataRevision.Any"/>, even for an absent key).
    /// </summary>
    Task<TxnResult> CompareAndSwapManyAsync(
        IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes the key only if its revision is <paramref name="expectedRevision"/> (which must be positive
    /// or <see cref="MetadataRevision.Any"/>). Deleting an absent key with <see cref="MetadataRevision.Any"/>
    /// fails with a null current entry.
    /// </summary>
    Task<CasResult> DeleteAsync(string key, long expectedRevision, CancellationToken cancellationToken = default);

    /// <summary>
    /// Changes under <paramref name="prefix"/> with a revision greater than <paramref name="afterRevision"/>,
    /// in revision order, until cancelled. Pass the revision of a preceding read to miss nothing in between;
    /// 0 means "from now". Throws <see cref="MetadataCompactedException"/> when the store no longer holds
    /// history that old (re-read and watch again), <see cref="MetadataUnavailableException"/> when the
    /// store cannot be reached.
    /// </summary>
    IAsyncEnumerable<WatchEvent> WatchAsync(
        string prefix, long afterRevision = 0, CancellationToken cancellationToken = default);

    /// <summary>Creates a lease that expires <paramref name="ttl"/> after its last keep-alive.</summary>
    Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default);

    /// <summary>Restarts the lease's TTL. False when the lease has already expired or was revoked.</summary>
    Task<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default);

    /// <summary>Ends the lease now and deletes every entry bound to it. Revoking an unknown lease is a no-op.</summary>
    Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default);
}

/// <summary>Special expected revisions for compare-and-swap.</summary>
public static class MetadataRevision
{
    /// <summary>The key must not exist.</summary>
    public const long Absent = 0;

    /// <summary>No comparison: the write applies whatever the key's revision is.</summary>
    public const long Any = -1;
}

/// <summary>A live entry: its value and the revision of the mutation that last wrote it.</summary>
/// <param name="Key">The full key.</param>
/// <param name="Value">The stored bytes; never mutated after creation.</param>
/// <param name="Revision">The store revision of the last write of this key (etcd's ModRevision).</param>
/// <param name="LeaseId">The lease the entry is bound to, 0 for none.</param>
public sealed record MetadataEntry(string Key, ReadOnlyMemory<byte> Value, long Revision, long LeaseId);

/// <summary>The outcome of a single-key compare-and-swap or delete.</summary>
/// <param name="Succeeded">True when the comparison held and the mutation applied.</param>
/// <param name="Revision">On success, the new store revision; on conflict, the store revision that was read.</param>
/// <param name="Current">On conflict, the key's current entry (null when absent); on success, null.</param>
public sealed record CasResult(bool Succeeded, long Revision, MetadataEntry? Current);

/// <summary>The outcome of <see cref="IMetadataStore.CompareAndSwapManyAsync"/>.</summary>
/// <param name="Succeeded">True when every comparison held and every operation applied.</param>
/// <param name="Revision">On success, the one new store revision of all writes.</param>
/// <param name="Current">On conflict, the current entry of each operation's key (null = absent), in order.</param>
public sealed record TxnResult(bool Succeeded, long Revision, IReadOnlyList<MetadataEntry?> Current);

/// <summary>What an operation of a multi-key transaction does once every comparison holds.</summary>
public enum MetadataOpKind
{
    /// <summary>Write the value (optionally bound to a lease).</summary>
    Put,

    /// <summary>Delete the key.</summary>
    Delete,

    /// <summary>Only compare; change nothing (e.g. "the state document is still at revision R").</summary>
    Check,
}

/// <summary>One operation of a multi-key transaction: a comparison plus what to do if all hold.</summary>
public sealed record MetadataOp(
    MetadataOpKind Kind, string Key, long ExpectedRevision, ReadOnlyMemory<byte> Value = default, long LeaseId = 0)
{
    /// <summary>Most operations one transaction may hold (etcd's default <c>--max-txn-ops</c>), in every store.</summary>
    public const int MaxPerTransaction = 128;

    /// <summary>Write <paramref name="value"/> if the key is at <paramref name="expectedRevision"/>.</summary>
    public static MetadataOp Put(string key, long expectedRevision, ReadOnlyMemory<byte> value, long leaseId = 0) =>
        new(MetadataOpKind.Put, key, expectedRevision, value, leaseId);

    /// <summary>Delete the key if it is at <paramref name="expectedRevision"/> (positive or Any).</summary>
    public static MetadataOp Delete(string key, long expectedRevision) =>
        new(MetadataOpKind.Delete, key, expectedRevision);

    /// <summary>Require the key to be at <paramref name="expectedRevision"/>; write nothing.</summary>
    public static MetadataOp Check(string key, long expectedRevision) =>
        new(MetadataOpKind.Check, key, expectedRevision);
}

/// <summary>Whether a watched key was written or removed.</summary>
public enum WatchEventKind
{
    /// <summary>The key was created or overwritten.</summary>
    Put,

    /// <summary>The key was deleted, or its lease expired or was revoked.</summary>
    Delete,
}

/// <summary>One change seen by <see cref="IMetadataStore.WatchAsync"/>.</summary>
/// <param name="Kind">Put or delete.</param>
/// <param name="Key">The full key.</param>
/// <param name="Value">The new value (empty for deletes).</param>
/// <param name="Revision">The store revision of the mutation.</param>
public sealed record WatchEvent(WatchEventKind Kind, string Key, ReadOnlyMemory<byte> Value, long Revision);

/// <summary>The metadata store cannot be reached or did not answer in time (e.g. etcd is down).</summary>
public sealed class MetadataUnavailableException(string message, Exception? inner = null)
    : Exception(message, inner);

/// <summary>A write named a lease that does not exist (never granted, expired, or revoked).</summary>
public sealed class MetadataLeaseNotFoundException(long leaseId)
    : Exception($"lease {leaseId} does not exist (expired, revoked or never granted)")
{
    /// <summary>The lease that was named.</summary>
    public long LeaseId { get; } = leaseId;
}

/// <summary>A watch asked for history the store no longer keeps: re-read the state and watch again.</summary>
public sealed class MetadataCompactedException(string message) : Exception(message);
