namespace Hybrid.Protocol;

/// <summary>
/// Result status of one request, or of a whole batch when the reply frame is <see cref="FrameKind.Rejected"/>.
/// Values are wire values (one byte): never renumber, only append.
/// </summary>
public enum Status : byte
{
    /// <summary>The operation ran; for reads the value follows.</summary>
    Ok = 0,
    /// <summary>The key does not exist (Get, Delete, CondPut with a non-zero expected version).</summary>
    NotFound = 1,
    /// <summary>CondPut's expected version differs from the record's; the result carries the current version (0 = absent).</summary>
    VersionMismatch = 2,
    /// <summary>The batch's view differs from the node's; nothing ran; the result's version field is the node's view.</summary>
    ViewChanged = 3,
    /// <summary>The node does not own the key's range (cluster work; a single node never answers this today).</summary>
    NotOwner = 4,
    /// <summary>The tenant's memory or ops/s quota is exhausted; the request did not run.</summary>
    QuotaExceeded = 5,
    /// <summary>The session is not authenticated, the proof was wrong, or the session id does not match.</summary>
    Unauthorized = 6,
    /// <summary>The frame or the request could not be parsed; the connection is closed after this reply.</summary>
    Malformed = 7,
    /// <summary>A frame, key, value or batch exceeds the node's limits; the connection is closed after this reply.</summary>
    TooLarge = 8,
    /// <summary>Hello named a tenant the node does not know.</summary>
    UnknownTenant = 9,
    /// <summary>Server-internal: the operation went to disk and completes later. Never sent on the wire.</summary>
    Pending = 10,
    /// <summary>The node is overloaded or shutting down; the client should resend later (nothing ran).</summary>
    Retry = 11,
    /// <summary>The opcode is reserved for a later version (migration pulls); nothing ran.</summary>
    Unsupported = 12,
    /// <summary>The node failed while running the request (a bug or a storage failure).</summary>
    InternalError = 13,
    /// <summary>Install refused the source: the value holds the errors, one per line (<c>file(line,col): ...</c>).</summary>
    InstallRejected = 14,
    /// <summary>
    /// An extension invocation was stopped or threw: <c>Version</c> says why (2 faulted, 3 CPU budget, 4 memory budget,
    /// 5 stack budget, 7 quarantined by the watchdog) and the value holds the message.
    /// </summary>
    ExtensionFailed = 15,
}
