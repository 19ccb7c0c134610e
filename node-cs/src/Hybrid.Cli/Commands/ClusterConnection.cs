using Hybrid.Client;
using Hybrid.Cluster;

namespace Hybrid.Cli.Commands;

/// <summary>A <see cref="ClusterClient"/> and the metadata store its routing is read from, disposed together.</summary>
internal sealed class ClusterConnection(IMetadataStore store, ClusterClient client) : IAsyncDisposable
{
    /// <summary>The client.</summary>
    public ClusterClient Client { get; } = client;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync().ConfigureAwait(false);
        await store.DisposeAsync().ConfigureAwait(false);
    }
}
