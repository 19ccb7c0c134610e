namespace Hybrid.Client;

/// <summary>Tenant extensions in a cluster: installed on every node, invoked at the owner of a routing key.</summary>
public sealed partial class ClusterClient
{
    /// <summary>
    /// Installs <paramref name="source"/> as <paramref name="name"/> on every node of the routing map, so the extension
    /// is there wherever the tenant's slots are served, today and after any migration (installs persist across a
    /// node's restarts). Returns each node's result; a node that cannot be reached gets a
    /// <see cref="Protocol.Status.Retry"/> result naming the error, and the caller may install again (an install
    /// of the same name replaces it).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, ExtensionInstallResult>> InstallExtensionAsync(string name, string source)
    {
        ClusterRouting map = Routing;
        var results = new Dictionary<string, ExtensionInstallResult>();
        foreach (string node in map.EndPoints.Keys.Order(StringComparer.Ordinal))
        {
            Task<HybridSession>? opening = null;
            try
            {
                opening = SessionAsync(node, map);
                results[node] = await (await opening.ConfigureAwait(false)).InstallExtensionAsync(name, source).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // A session that failed to open is never kept, whatever the failure (else every later call gets it).
                if (opening is { IsFaulted: true } && _sessions.TryRemove(KeyValuePair.Create(node, opening)))
                    _ = CloseAsync(opening);
                if (e is not (HybridConnectionException or HybridProtocolException or System.Net.Sockets.SocketException or IOException))
                    throw;
                await RefreshAsync(node, opening).ConfigureAwait(false);
                results[node] = new ExtensionInstallResult(Protocol.Status.Retry, [], [$"{node}: {e.Message}"], false);
            }
        }
        return results;
    }

    /// <summary>
    /// Invokes <paramref name="name"/> with <paramref name="args"/> on the node that owns <paramref name="routingKey"/>'s
    /// slot (the key, or its <c>{tag}</c>, of the data the extension works on), following ownership changes like
    /// <see cref="GetAsync"/>. The node does not check that the extension's own reads and writes stay in that slot.
    /// </summary>
    public Task<ExtensionResult> InvokeAsync(string name, ReadOnlyMemory<byte> routingKey, ReadOnlyMemory<byte> args) =>
        SendAsync(routingKey, idempotent: false, s => s.InvokeAsync(name, args.Span));
}
