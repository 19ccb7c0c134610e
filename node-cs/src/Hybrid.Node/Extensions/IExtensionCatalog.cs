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

/// <summary>What applies the cluster catalog's changes on a node (<see cref="NodeExtensions"/>).</summary>
public interface IExtensionInstaller
{
    /// <summary>
    /// Installs (<paramref name="source"/> set) or uninstalls (null) <paramref name="tenant"/>'s <paramref name="name"/>,
    /// without recording it in the catalog again; the very source already installed under that name changes nothing.
    /// </summary>
    Task<Hybrid.Extensions.InstallResult> ApplyAsync(uint tenant, string name, string? source);
}
