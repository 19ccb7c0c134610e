using System.Runtime.InteropServices;

namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// An in-memory <see cref="IExtensionStore"/> for extension authors' tests (Splinter's sandstorm
/// ships the same). Not thread-safe; values are copied in and returned as spans over its own arrays.
/// </summary>
public sealed class MockStore : IExtensionStore
{
    private readonly Dictionary<(ulong Tenant, uint Table, string Key), byte[]> _records = new();

    /// <summary>Number of records held, over all tenants and tables.</summary>
    public int Count => _records.Count;

    /// <inheritdoc />
    public bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        if (_records.TryGetValue((tenant, table, Convert.ToBase64String(key)), out var v))
        {
            value = v;
            return true;
        }
        value = default;
        return false;
    }

    /// <inheritdoc />
    public void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_records, (tenant, table, Convert.ToBase64String(key)), out _);
        slot = value.ToArray();
    }

    /// <inheritdoc />
    public bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key) =>
        _records.Remove((tenant, table, Convert.ToBase64String(key)));
}

/// <summary>A store that holds nothing and drops writes: for extensions that only compute.</summary>
public sealed class NullStore : IExtensionStore
{
    /// <summary>The one instance (it has no state).</summary>
    public static readonly NullStore Instance = new();

    /// <inheritdoc />
    public bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        value = default;
        return false;
    }

    /// <inheritdoc />
    public void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
    }

    /// <inheritdoc />
    public bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key) => false;
}
