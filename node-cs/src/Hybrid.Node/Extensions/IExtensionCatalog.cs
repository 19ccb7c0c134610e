namespace Hybrid.Node.Extensions;

/// <summary>
/// Where a node records its clients' extension installs and uninstalls so that the other nodes of its cluster apply
/// them too (<see cref="NodeExtensions.Catalog"/>). Implemented over the cluster metadata by <c>Hybrid.Cluster</c>.
/// </summary>
public interface IExtensionCatalog
{
    /// <summary>
    /// Records that <paramref name="tenant"/>'s extension <paramref name="name"/> is now <paramref name="source"/>
    /// (null: removed). Durable when it returns; throws when it cannot record. Returns whether the catalog held that
    /// name (installed) before.
    /// </summary>
    bool Record(uint tenant, string name, string? source);
}
