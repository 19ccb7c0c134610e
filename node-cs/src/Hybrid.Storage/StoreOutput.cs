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

    public readonly StoreResult ToResult() => new(Status, Version, Length, Number);
}
