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

/// <summary>The connection broke while requests were in flight: their outcome is unknown (writes may have run).</summary>
public sealed class HybridConnectionException(string message, Exception? inner = null) : Exception(message, inner);
