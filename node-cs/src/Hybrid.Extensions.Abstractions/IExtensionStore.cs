namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// The data access an extension runs against. The node implements it over its storage, one instance
/// per worker (each with its own storage session); extension authors use <see cref="MockStore"/> or
/// <see cref="NullStore"/> in their own tests.
/// </summary>
/// <remarks>
/// What must stay true: a span returned by <see cref="TryGet"/> shows the bytes it was read with until the
/// extension's next yield point. A store that cannot keep that promise for a span it lent must stop the
/// invocation before extension code runs again (the node's store does: status Evicted).
/// The store never sees another tenant's data through these calls: the host passes the tenant of the
/// invocation, never a value chosen by the extension.
/// </remarks>
public interface IExtensionStore
{
    /// <summary>Reads a record without copying; false when the key is absent.</summary>
    bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value);

    /// <summary>
    /// A hint before reading several records of one table whose keys are packed back to back (<paramref name="keySize"/>
    /// bytes each): the store may start loading what those reads will touch. Changes no result; the default does nothing.
    /// </summary>
    void Prefetch(ulong tenant, uint table, ReadOnlySpan<byte> keys, int keySize)
    {
    }

    /// <summary>Inserts or replaces a record (the value is copied into the store).</summary>
    void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);

    /// <summary>Removes a record; false when it was absent.</summary>
    bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key);
}
