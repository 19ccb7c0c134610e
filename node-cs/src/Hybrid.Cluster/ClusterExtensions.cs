using System.Globalization;
using System.Text;
using Hybrid.Node.Extensions;

namespace Hybrid.Cluster;

/// <summary>
/// The cluster's catalog of tenant extensions, under <c>&lt;root&gt;/extensions/&lt;tenant id&gt;/&lt;name&gt;</c> (the
/// C# source, UTF-8), so that an extension is on every node that may serve its tenant's slots: installed on nodes that
/// were down when it was installed, on nodes started later, and on the target of a migration.
/// </summary>
/// <remarks>
/// A node records its clients' installs and uninstalls here (<see cref="Record"/>, as the node's
/// <see cref="NodeExtensions.Catalog"/>, before it answers; an uninstall leaves a tombstone), applies the whole catalog
/// before it registers (<see cref="ApplyAllAsync"/>: installs, and removes what was uninstalled while it was down), and
/// then applies every change as it happens (<see cref="FollowAsync"/>). Installing the source already installed under a
/// name costs nothing (the node compares content hashes), so the echo of a node's own change, or a client that installs
/// on every node, is harmless. What a node had installed before it joined a catalog, under a name the catalog never
/// held, stays as it is.
/// </remarks>
public sealed class ClusterExtensions : MetadataFolder, IExtensionCatalog
{

    /// <summary>Uses the catalog of the cluster under <paramref name="root"/> in <paramref name="store"/> (the caller owns it).</summary>
    public ClusterExtensions(IMetadataStore store, string root = "/hybrid")
        : base(store, root, "extensions")
    {
    }

    /// <summary>
    /// One catalog entry: a tenant's extension, its source (null: removed, a tombstone) and the store revision that wrote
    /// it (an installer skips a change older than one it recorded itself).
    /// </summary>
    public readonly record struct Entry(uint Tenant, string Name, string? Source, long Revision);

    /// <inheritdoc />
    public CatalogRecord Record(uint tenant, string name, string? source) => RecordAsync(tenant, name, source).GetAwaiter().GetResult();

    /// <summary>
    /// Records <paramref name="tenant"/>'s <paramref name="name"/> as <paramref name="source"/>; a removal (null) leaves a
    /// tombstone (an empty value), so a node that was down meanwhile removes its copy when it comes back. Returns whether
    /// the catalog held the name (installed) before, and the revision of the entry now stored.
    /// </summary>
    public async Task<CatalogRecord> RecordAsync(uint tenant, string name, string? source, CancellationToken cancellationToken = default)
    {
        if (source is { Length: 0 })
            throw new ArgumentException("an extension's source is not empty (an empty entry is a removal)", nameof(source));
        string key = KeyOf(tenant, name);
        byte[] value = source is null ? [] : Encoding.UTF8.GetBytes(source);
        for (int attempt = 0; ; attempt++)
        {
            MetadataEntry? current = await Store.GetAsync(key, cancellationToken).ConfigureAwait(false);
            bool held = current is not null && !current.Value.IsEmpty;
            // The same content again (every node of a cluster-wide install records it): no new revision, so no echo.
            if (current is null ? source is null : current.Value.Span.SequenceEqual(value))
                return new CatalogRecord(held, current?.Revision ?? 0);
            // Compared with what was read, so a concurrent change of the same name is not silently overwritten.
            CasResult written = await Store.CompareAndSwapAsync(key, current?.Revision ?? MetadataRevision.Absent, value, 0, cancellationToken).ConfigureAwait(false);
            if (written.Succeeded)
                return new CatalogRecord(held, written.Revision);
            if (attempt >= 100)
                throw new InvalidOperationException($"recording extension '{name}' lost 100 races in a row");
        }
    }

    /// <summary>Every entry of the catalog, and a revision to follow changes from (none after the list is missed).</summary>
    public async Task<(IReadOnlyList<Entry> Entries, long Revision)> ListAsync(CancellationToken cancellationToken = default)
    {
        (IReadOnlyList<MetadataEntry> entries, long revision) = await ListEntriesAsync(cancellationToken).ConfigureAwait(false);
        var list = new List<Entry>(entries.Count);
        foreach (MetadataEntry e in entries)
        {
            if (TryParse(e.Key, out uint tenant, out string name))
                list.Add(new Entry(tenant, name, SourceOf(e.Value), e.Revision));
        }
        return (list, revision);
    }

    /// <summary>Applies every entry of <paramref name="entries"/> to the node's extensions; each failure goes to <paramref name="refused"/>.</summary>
    public static async Task ApplyAllAsync(IExtensionInstaller extensions, IEnumerable<Entry> entries, Action<string> refused)
    {
        ArgumentNullException.ThrowIfNull(extensions);
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(refused);
        foreach (Entry entry in entries)
            await ApplyAsync(extensions, entry, refused).ConfigureAwait(false);
    }

    /// <summary>
    /// Applies every change after <paramref name="revision"/> to <paramref name="extensions"/> until cancelled; after a
    /// compacted or unreachable store, lists the catalog again and applies all of it (tombstones included, so no removal
    /// is missed).
    /// </summary>
    public Task FollowAsync(IExtensionInstaller extensions, long revision, Action<string> refused, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(extensions);
        ArgumentNullException.ThrowIfNull(refused);
        return FollowEntriesAsync(revision,
            e => TryParse(e.Key, out uint tenant, out string name)
                ? ApplyAsync(extensions, new Entry(tenant, name, e.Kind == WatchEventKind.Put ? SourceOf(e.Value) : null, e.Revision), refused)
                : Task.CompletedTask,
            cancellationToken);
    }

    private static async Task ApplyAsync(IExtensionInstaller extensions, Entry entry, Action<string> refused)
    {
        var result = await extensions.ApplyAsync(entry.Tenant, entry.Name, entry.Source, entry.Revision).ConfigureAwait(false);
        if (entry.Source is not null && !result.Success)
            refused($"extension '{entry.Name}' of tenant {entry.Tenant} from the cluster's catalog was not installed: {string.Join("; ", result.Errors)}");
    }

    /// <summary>An entry's source; null for a tombstone (an empty value: removed).</summary>
    private static string? SourceOf(ReadOnlyMemory<byte> value) => value.IsEmpty ? null : Encoding.UTF8.GetString(value.Span);

    private string KeyOf(uint tenant, string name) => Prefix + tenant.ToString(CultureInfo.InvariantCulture) + "/" + name;

    private bool TryParse(string key, out uint tenant, out string name)
    {
        name = "";
        tenant = 0;
        if (!key.StartsWith(Prefix, StringComparison.Ordinal))
            return false;
        string rest = key[Prefix.Length..];
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == rest.Length - 1 || !uint.TryParse(rest.AsSpan(0, slash), NumberStyles.None, CultureInfo.InvariantCulture, out tenant))
            return false;
        name = rest[(slash + 1)..];
        return true;
    }
}
