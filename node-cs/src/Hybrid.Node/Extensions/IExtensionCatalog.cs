namespace Hybrid.Node.Extensions;

/// <summary>
/// Where a node records its clients' extension installs and uninstalls so that the other nodes of its cluster apply
/// them too (<see cref="NodeExtensions.Catalog"/>). Implemented over the cluster metadata by <c>Hybrid.Cluster</c>.
/// </summary>
public interface IExtensionCatalog
{
    /// <summary>
    /// Records that <paramref name="tenant"/>'s extension <paramref name="name"/> is now <paramref name="source"/>
    /// (null: removed). Durable when it returns; throws when it cannot record.
    /// </summary>
    CatalogRecord Record(uint tenant, string name, string? source);
}

/// <summary>What a catalog did with a change.</summary>
/// <param name="Held">Whether the catalog held the name (installed) before.</param>
/// <param name="Revision">The store revision of the entry now in the catalog (0: none).</param>
public readonly record struct CatalogRecord(bool Held, long Revision);

/// <summary>What applies the cluster catalog's changes on a node (<see cref="NodeExtensions"/>).</summary>
public interface IExtensionInstaller
{
    /// <summary>
    /// Installs (<paramref name="source"/> set) or uninstalls (null) <paramref name="tenant"/>'s <paramref name="name"/>
    /// as the catalog entry of <paramref name="revision"/> says, without recording it again. Changes nothing when the
    /// very source is installed under that name already, or when this node has itself recorded a newer change of that
    /// name (the entry is the echo of an older change of its own).
    /// </summary>
    Task<Hybrid.Extensions.InstallResult> ApplyAsync(uint tenant, string name, string? source, long revision);
}
