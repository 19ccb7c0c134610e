namespace Hybrid.Node.Cluster;

/// <summary>One key a priority pull asks for.</summary>
/// <param name="Tenant">The key's tenant.</param>
/// <param name="Table">The key's table.</param>
/// <param name="Key">The user's key bytes.</param>
public readonly record struct PullKey(uint Tenant, uint Table, ReadOnlyMemory<byte> Key);
