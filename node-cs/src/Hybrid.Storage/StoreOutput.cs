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

    public readonly StoreResult ToResult() => new(Status, Version, Length, Number);
}
