namespace Hybrid.Storage;

/// <summary>
/// Outcome of one storage operation. Every operation returns exactly one of these; callers map them to
/// wire or RESP replies. Values are stable (only appended to), so they may be persisted or sent on the wire.
/// </summary>
public enum StoreStatus : byte
{
    /// <summary>The operation took effect (a write) or found a live record (a read).</summary>
    Ok = 0,

    /// <summary>The key has no live record (absent or deleted). For <c>PutIfExists</c>: nothing was written.</summary>
    NotFound = 1,

    /// <summary>A conditional put found a version other than the expected one; nothing was written.</summary>
    VersionMismatch = 2,

    /// <summary><c>PutIfAbsent</c> (SET NX) found a live record; nothing was written.</summary>
    Exists = 3,

    /// <summary>The key is longer than <see cref="StoreOptions.MaxKeyBytes"/>; nothing was done.</summary>
    KeyTooLarge = 4,

    /// <summary>The value (or the result of an append) is longer than <see cref="StoreOptions.MaxValueBytes"/>; nothing was written.</summary>
    ValueTooLarge = 5,

    /// <summary><c>Increment</c> found a value that is not an ASCII decimal 64-bit integer; nothing was written.</summary>
    NotAnInteger = 6,

    /// <summary><c>Increment</c> would overflow a signed 64-bit integer; nothing was written.</summary>
    Overflow = 7,

    /// <summary>
    /// <c>ApplyPulled</c> found a record (live or tombstone) whose version is at least the pulled one, so the
    /// pulled record was dropped. This is the protocol invariant "a pulled record never overwrites a newer one".
    /// </summary>
    Stale = 8,

    /// <summary>
    /// The record is on disk; the operation continues in the background. Its real result is handed to the
    /// <see cref="ICompletionSink"/> given to <see cref="IKvSession.CompletePending"/>, with the caller's context.
    /// </summary>
    Pending = 9,

    /// <summary>The store could not perform the operation (I/O error, store closing); details were logged.</summary>
    Error = 10,

    /// <summary>
    /// The operation did not run and may succeed later: its key is in a range being pulled here and the pull it waited
    /// for failed (the source went away, or the pulls were restarted). Clients are told to resend (<c>Status.Retry</c>).
    /// </summary>
    Unavailable = 11,
}
