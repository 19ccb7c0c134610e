namespace Hybrid.Cluster;

/// <summary>Opens the metadata store a node or tool is configured with, from one location string.</summary>
public static class MetadataStores
{
    /// <summary>
    /// <c>etcd:http://127.0.0.1:2379</c> opens an <see cref="EtcdMetadataStore"/> on that endpoint;
    /// <c>file:DIR</c> (or a plain directory path) opens a <see cref="FileMetadataStore"/> in DIR.
    /// </summary>
    /// <param name="location">Where the store is.</param>
    /// <param name="clock">Lease clock of a file store (etcd keeps its own time).</param>
    public static IMetadataStore Open(string location, TimeProvider? clock = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(location);
        if (location.StartsWith("etcd:", StringComparison.Ordinal))
        {
            var endpoint = location["etcd:".Length..];
            if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            {
                throw new ArgumentException($"'{location}' is not etcd:http://HOST:PORT", nameof(location));
            }

            return new EtcdMetadataStore(endpoint);
        }

        var directory = FileDirectory(location);
        return string.IsNullOrEmpty(directory)
            ? throw new ArgumentException($"'{location}' names no directory", nameof(location))
            : new FileMetadataStore(directory, clock);
    }

    /// <summary>The directory of a file store's location (<c>file:DIR</c> or a plain path); null for etcd.</summary>
    public static string? FileDirectory(string location) =>
        location.StartsWith("etcd:", StringComparison.Ordinal) ? null
        : location.StartsWith("file:", StringComparison.Ordinal) ? location["file:".Length..] : location;
}
