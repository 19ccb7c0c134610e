namespace Hybrid.Protocol;

/// <summary>One parsed request: spans point into the received frame and are valid only until it is released.</summary>
public readonly ref struct Request
{
    /// <summary>Creates a view of one request.</summary>
    public Request(OpCode op, ushort table, ulong expectedVersion, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, int keyOffset)
    {
        Op = op;
        Table = table;
        ExpectedVersion = expectedVersion;
        Key = key;
        Value = value;
        KeyOffset = keyOffset;
    }

    /// <summary>The opcode (always a known one: unknown opcodes fail parsing).</summary>
    public OpCode Op { get; }

    /// <summary>Table number inside the session's tenant.</summary>
    public ushort Table { get; }

    /// <summary>CondPut's expected version (0 = must be absent); 0 for other ops.</summary>
    public ulong ExpectedVersion { get; }

    /// <summary>Key bytes (empty for Hello/Auth/Noop/MultiGet unless stated).</summary>
    public ReadOnlySpan<byte> Key { get; }

    /// <summary>Value bytes (Put/CondPut value, Auth proof, MultiGet packed keys).</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>Offset of the key inside the frame payload (used by batch key hashing).</summary>
    public int KeyOffset { get; }
}

/// <summary>One parsed result: the value span points into the received frame.</summary>
public readonly ref struct Result
{
    /// <summary>Creates a view of one result.</summary>
    public Result(Status status, ulong version, ReadOnlySpan<byte> value)
    {
        Status = status;
        Version = version;
        Value = value;
    }

    /// <summary>The request's status.</summary>
    public Status Status { get; }

    /// <summary>Record version (Get/Put/CondPut), current version (VersionMismatch) or node view (ViewChanged).</summary>
    public ulong Version { get; }

    /// <summary>Value bytes: Get's value, Hello's challenge, MultiGet's packed results.</summary>
    public ReadOnlySpan<byte> Value { get; }
}
