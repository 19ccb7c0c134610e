namespace Hybrid.Storage;

/// <summary>
/// The result of one operation: a status plus what the caller needs to build a reply. A plain value type so
/// returning it allocates nothing.
/// </summary>
/// <param name="Status">What happened.</param>
/// <param name="Version">
/// For reads and successful writes: the record's version (for a write, the new version). For
/// <see cref="StoreStatus.VersionMismatch"/> and <see cref="StoreStatus.Stale"/>: the version found (0 if none).
/// </param>
/// <param name="ValueLength">For reads: bytes written to the caller's output. For <c>Append</c>: the new value length.</param>
/// <param name="Number">For <c>Increment</c>: the new integer value.</param>
public readonly record struct StoreResult(StoreStatus Status, ulong Version = 0, int ValueLength = 0, long Number = 0)
{
    /// <summary>True when the operation went to disk and will complete through <see cref="IKvSession.CompletePending"/>.</summary>
    public bool IsPending => Status == StoreStatus.Pending;

    /// <summary>A result carrying only a status.</summary>
    public static StoreResult Of(StoreStatus status) => new(status);
}
