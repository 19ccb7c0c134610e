namespace Hybrid.Storage;

/// <summary>Receives the records of a slot scan (<see cref="ISlotScanner.ScanChunk"/>), one call per record.</summary>
public interface IScanSink
{
    /// <summary>One live record. WARNING: the spans are valid only during this call.</summary>
    void OnRecord(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version);
}
