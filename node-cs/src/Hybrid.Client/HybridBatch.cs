using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>
/// An explicit batch: requests collected by the caller and sent together in one frame (as long as they fit
/// <see cref="HybridClientOptions.MaxBatchOps"/>/<see cref="HybridClientOptions.MaxBatchBytes"/>), run in order, and
/// answered together by <see cref="HybridSession.ExecuteAsync(HybridBatch)"/> (or, allocation-free, <see cref="HybridSession.ExecuteAsync(HybridBatch, HybridBatchResults)"/>).
/// </summary>
public sealed class HybridBatch
{
    internal List<Item> Items { get; } = [];

    /// <summary>Requests in the batch.</summary>
    public int Count => Items.Count;

    /// <summary>Empties the batch so it can be filled again (reuse it: a batch keeps its capacity).</summary>
    public HybridBatch Clear()
    {
        Items.Clear();
        return this;
    }

    /// <summary>Adds a read.</summary>
    public HybridBatch Get(ushort table, ReadOnlyMemory<byte> key) => Add(new Item(OpCode.Get, table, key, default, 0));

    /// <summary>Adds a write.</summary>
    public HybridBatch Put(ushort table, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value) => Add(new Item(OpCode.Put, table, key, value, 0));

    /// <summary>Adds a conditional write (expected version 0 = must be absent).</summary>
    public HybridBatch CondPut(ushort table, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, ulong expectedVersion) =>
        Add(new Item(OpCode.CondPut, table, key, value, expectedVersion));

    /// <summary>Adds a delete.</summary>
    public HybridBatch Delete(ushort table, ReadOnlyMemory<byte> key) => Add(new Item(OpCode.Delete, table, key, default, 0));

    /// <summary>Adds a no-op.</summary>
    public HybridBatch Noop() => Add(new Item(OpCode.Noop, 0, default, default, 0));

    private HybridBatch Add(Item item)
    {
        Items.Add(item);
        return this;
    }

    internal readonly record struct Item(OpCode Op, ushort Table, ReadOnlyMemory<byte> Key, ReadOnlyMemory<byte> Value, ulong Expected);
}
