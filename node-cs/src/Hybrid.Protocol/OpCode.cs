namespace Hybrid.Protocol;

/// <summary>
/// Request opcodes of protocol v1. Values are wire values: never renumber, only append.
/// Reserved opcodes (migration pulls) are answered with <see cref="Status.Unsupported"/>; any other unknown value is
/// <see cref="Status.Malformed"/> and closes the connection.
/// </summary>
public enum OpCode : byte
{
    /// <summary>Opens the session: key = tenant name (UTF-8). Result value = 32-byte challenge, or empty when no AUTH is needed.</summary>
    Hello = 0x01,
    /// <summary>Answers the challenge: value = HMAC-SHA256(tenant secret, challenge).</summary>
    Auth = 0x02,
    /// <summary>Does nothing and answers Ok: measures the protocol's ceiling.</summary>
    Noop = 0x03,
    /// <summary>Reads a key: result value = the value, version = its version.</summary>
    Get = 0x10,
    /// <summary>Writes a key unconditionally: result version = the new version.</summary>
    Put = 0x11,
    /// <summary>Deletes a key: Ok or NotFound.</summary>
    Delete = 0x12,
    /// <summary>Writes a key only if its version equals the expected one (0 = must be absent).</summary>
    CondPut = 0x13,
    /// <summary>Reads several keys of one table: value = packed keys, result value = packed results.</summary>
    MultiGet = 0x14,
    /// <summary>
    /// Installs (or replaces) a tenant extension: key = install name (UTF-8), value = C# source (UTF-8). Result: Ok +
    /// invocation names (one per line), or InstallRejected + the errors (one per line). Compiled off the worker.
    /// </summary>
    Install = 0x20,
    /// <summary>
    /// Invokes a tenant extension: key = invocation name (UTF-8), value = arguments. Result: Ok + the response,
    /// NotFound, QuotaExceeded (the tenant's extension CPU quota), or ExtensionFailed (version = why, value = message).
    /// </summary>
    Invoke = 0x21,
    /// <summary>Removes a tenant extension by install name: Ok or NotFound.</summary>
    Uninstall = 0x22,
    /// <summary>Lists the session tenant's invocation names: Ok + names, one per line, sorted.</summary>
    ListExtensions = 0x23,
    /// <summary>Reserved: migration background pull (Rocksteady).</summary>
    MigrationPull = 0x30,
    /// <summary>Reserved: migration priority pull of specific keys.</summary>
    PriorityPull = 0x31,
}

/// <summary>Classification of opcodes shared by the node and the client.</summary>
public static class OpCodes
{
    /// <summary>True for opcodes defined by v1 (implemented or reserved).</summary>
    public static bool IsKnown(byte op) => op is >= 0x01 and <= 0x03 or >= 0x10 and <= 0x14 or >= 0x20 and <= 0x23 or 0x30 or 0x31;

    /// <summary>True for opcodes reserved for later work: answered Unsupported, connection kept.</summary>
    public static bool IsReserved(OpCode op) => op is OpCode.MigrationPull or OpCode.PriorityPull;

    /// <summary>True for the tenant extension opcodes (Install, Invoke, Uninstall, ListExtensions).</summary>
    public static bool IsExtension(OpCode op) => op is >= OpCode.Install and <= OpCode.ListExtensions;

    /// <summary>True for opcodes that change data (they count against write quotas and durability).</summary>
    public static bool IsWrite(OpCode op) => op is OpCode.Put or OpCode.Delete or OpCode.CondPut;

    /// <summary>True when the request carries an 8-byte expected version after its header.</summary>
    public static bool HasExpectedVersion(OpCode op) => op == OpCode.CondPut;
}
