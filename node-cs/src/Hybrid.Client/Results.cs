using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>Result of a read.</summary>
/// <param name="Status">Ok, NotFound, QuotaExceeded...</param>
/// <param name="Version">The record's version (when Ok).</param>
/// <param name="Value">The value (when Ok), else null.</param>
public readonly record struct GetResult(Status Status, ulong Version, byte[]? Value)
{
    /// <summary>True when the key was found.</summary>
    public bool Found => Status == Status.Ok;
}

/// <summary>Result of a write.</summary>
/// <param name="Status">Ok, NotFound (Delete), VersionMismatch (CondPut), QuotaExceeded...</param>
/// <param name="Version">The new version (Ok), or the current one (VersionMismatch; 0 = absent).</param>
public readonly record struct WriteResult(Status Status, ulong Version)
{
    /// <summary>True when the write took effect.</summary>
    public bool Succeeded => Status == Status.Ok;
}

/// <summary>The node refused a whole batch (Malformed, TooLarge, Unauthorized...) or answered something unparsable.</summary>
public sealed class HybridProtocolException(Status status, string message) : Exception(message)
{
    /// <summary>The status the node answered.</summary>
    public Status Status { get; } = status;
}

/// <summary>
/// The connection failed. Thrown for a request that was sent, its outcome is unknown: a write or an extension call may
/// have run (sending it again may run it twice). The subclass <see cref="HybridNotSentException"/> says the request
/// never reached the node, or the node ran none of it, so it is safe to send again.
/// </summary>
public class HybridConnectionException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// No reply within <see cref="HybridClientOptions.Timeout"/>: the connection is reset and the request's outcome is
/// unknown (a write may have run), as for any <see cref="HybridConnectionException"/>.
/// </summary>
public sealed class HybridTimeoutException(string message) : HybridConnectionException(message);

/// <summary>
/// The request did not run: it was never sent (the connection or reconnect failed first, the session was closed), or
/// the node refused its batch without running any of it and it could not be sent again. Safe to retry.
/// </summary>
public sealed class HybridNotSentException(string message, Exception? inner = null) : HybridConnectionException(message, inner);
