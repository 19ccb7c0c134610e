namespace Hybrid.Protocol;

/// <summary>
/// Request opcodes of protocol v1. Values are wire values: never renumber, only append.
/// Reserved opcodes are answered with <see cref="Status.Unsupported"/>; any other unknown value is
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
    /// <summary>Reserved: install a tenant extension.</summary>
    Install = 0x20,
    /// <summary>Reserved: invoke a tenant extension.</summary>
    Invoke = 0x21,
    /// <summary>Reserved: remove a tenant extension.</summary>
    Uninstall = 0x22,
    /// <summary>Reserved: list a tenant's extensions.</summary>
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
    public static bool IsReserved(OpCode op) => op is >= OpCode.Install and <= OpCode.ListExtensions or OpCode.MigrationPull or OpCode.PriorityPull;

    /// <summary>True for opcodes that change data (they count against write quotas and durability).</summary>
    public static bool IsWrite(OpCode op) => op is OpCode.Put or OpCode.Delete or OpCode.CondPut;

    /// <summary>True when the request carries an 8-byte expected version after its header.</summary>
    public static bool HasExpectedVersion(OpCode op) => op == OpCode.CondPut;
}
