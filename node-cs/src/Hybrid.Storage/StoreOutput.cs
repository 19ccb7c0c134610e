using System.Buffers;

namespace Hybrid.Storage;

/// <summary>
/// FASTER output of one operation: where a read copies its value and the result the functions computed.
/// A struct holding a reference, so passing it allocates nothing.
/// </summary>
internal struct StoreOutput
{
    public IBufferWriter<byte>? Writer;
    public StoreStatus Status;
    public ulong Version;
    public int Length;
    public long Number;

    /// <summary>Reads into an <see cref="ArrayBufferWriter{T}"/>: where in it the value starts (used by batched scans).</summary>
    public int ValueOffset;

    /// <summary>Set by the caller: hand the value out in place (<see cref="Data"/>) instead of copying it to <see cref="Writer"/>.</summary>
    public bool InPlace;

    /// <summary>An in-place read's value: its first byte in the log's memory (0: the value was copied to the writer).</summary>
    public nint Data;

    /// <summary>An in-place read's record: its logical address in the log.</summary>
    public long Address;

    public readonly StoreResult ToResult() => new(Status, Version, Length, Number);
}
