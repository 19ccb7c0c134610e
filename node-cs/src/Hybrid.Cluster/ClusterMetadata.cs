using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hybrid.Cluster;

/// <summary>A state document together with the store revision it was read at (or written with).</summary>
public sealed record VersionedClusterState(ClusterState State, long Revision);

/// <summary>The outcome of <see cref="ClusterMetadata.UpdateAsync"/>.</summary>
/// <param name="Applied">False when the decision returned null (nothing to do): the store is unchanged.</param>
/// <param name="State">The state now stored (the new one when applied, else the one the decision saw).</param>
/// <param name="Revision">The revision of <paramref name="State"/>.</param>
/// <param name="Attempts">How many times the decision ran (1 + the number of lost races).</param>
public sealed record ClusterUpdate(bool Applied, ClusterState State, long Revision, int Attempts);

/// <summary>A live node as it registers itself under <c>nodes/&lt;id&gt;</c>.</summary>
/// <param name="Id">The node id (the spec's node strings: "n1", ...).</param>
/// <param name="Endpoint">Where clients reach its native protocol (host:port).</param>
/// <param name="RespEndpoint">Where clients reach its RESP port, if it has one.</param>
/// <param name="PeerEndpoint">Where other nodes reach its peer port (migration pulls, views, control), if it has one.</param>
/// <param name="Pid">The node's process id, if it runs in its own process (for tools that stop it).</param>
public sealed record NodeInfo(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("endpoint")] string Endpoint,
    [property: JsonPropertyName("respEndpoint")] string? RespEndpoint = null,
    [property: JsonPropertyName("peerEndpoint")] string? PeerEndpoint = null,
    [property: JsonPropertyName("pid")] int? Pid = null);

/// <summary>
/// The typed layer over an <see cref="IMetadataStore"/>: the cluster state document under
/// <c>&lt;root&gt;/state</c>, changed only by optimistic concurrency (read, apply a pure decision, CAS,
/// retry on conflict), and node membership under <c>&lt;root&gt;/nodes/&lt;id&gt;</c> bound to leases.
/// </summary>
/// <remarks>
/// This class decides nothing about ownership, views or phases: the decision is the function passed to
/// <see cref="UpdateAsync"/> (the F# core's), and this class only makes its result the one new state,
/// atomically, or runs it again on the newer state when another writer won the race.
/// </remarks>
public sealed class ClusterMetadata
{
    private static readonly JsonSerializerOptions s_json = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private readonly IMetadataStore _store;

    /// <summary>Uses <paramref name="store"/> with every key under <paramref name="root"/>.</summary>
    /// <param name="store">The metadata store (file or etcd); the caller keeps ownership of it.</param>
    /// <param name="root">Key root of this cluster, e.g. <c>/hybrid</c>; must not end with '/'.</param>
    public ClusterMetadata(IMetadataStore store, string root = "/hybrid")
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(root);
        if (root.EndsWith('/'))
        {
            throw new ArgumentException("the root must not end with '/'", nameof(root));
        }

        _store = store;
        StateKey = root + "/state";
        NodesPrefix = root + "/nodes/";
    }

    /// <summary>The key of the state document.</summary>
    public string StateKey { get; }

    /// <summary>The prefix of node registrations.</summary>
    public string NodesPrefix { get; }

    /// <summary>Bound on lost races in one <see cref="UpdateAsync"/>; reaching it means a livelock, not bad luck.</summary>
    public int MaxAttempts { get; init; } = 1000;

    /// <summary>The current state document, or null when the cluster was never initialized.</summary>
    public async Task<VersionedClusterState?> ReadAsync(CancellationToken cancellationToken = default) =>
        Decode(await _store.GetAsync(StateKey, cancellationToken));

    /// <summary>Stores <paramref name="initial"/> if there is no state yet; false when one already exists.</summary>
    public async Task<bool> InitializeAsync(ClusterState initial, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(initial);
        var result = await _store.CompareAndSwapAsync(StateKey, MetadataRevision.Absent, Encode(initial), 0, cancellationToken);
        return result.Succeeded;
    }

    /// <summary>
    /// Applies <paramref name="decide"/> to the current state and stores its result with one CAS; when
    /// another writer changed the state in between, runs <paramref name="decide"/> again on the newer state.
    /// A null result means "nothing to do" and stores nothing. <paramref name="decide"/> must be pure: it
    /// may run several times.
    /// </summary>
    public async Task<ClusterUpdate> UpdateAsync(
        Func<ClusterState, ClusterState?> decide, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(decide);
        var current = await ReadAsync(cancellationToken)
                      ?? throw new InvalidOperationException($"no cluster state at {StateKey}: initialize the cluster first");
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            if (decide(current.State) is not { } next)
            {
                return new ClusterUpdate(false, current.State, current.Revision, attempt);
            }

            var result = await _store.CompareAndSwapAsync(StateKey, current.Revision, Encode(next), 0, cancellationToken);
            if (result.Succeeded)
            {
                return new ClusterUpdate(true, next, result.Revision, attempt);
            }

            // The conflict carries the winner's state: decide again on it without another read.
            current = Decode(result.Current)
                      ?? throw new InvalidOperationException($"the cluster state at {StateKey} was deleted");
        }

        throw new InvalidOperationException($"cluster state update lost {MaxAttempts} races in a row");
    }

    /// <summary>
    /// Every new state document after <paramref name="afterRevision"/> (pass the revision of a
    /// <see cref="ReadAsync"/> to miss nothing), until cancelled.
    /// </summary>
    public async IAsyncEnumerable<VersionedClusterState> WatchAsync(
        long afterRevision, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var e in _store.WatchAsync(StateKey, afterRevision, cancellationToken))
        {
            if (e.Key == StateKey && e.Kind == WatchEventKind.Put)
            {
                yield return new VersionedClusterState(Deserialize<ClusterState>(e.Value), e.Revision);
            }
        }
    }

    /// <summary>
    /// Registers <paramref name="node"/> under a lease of <paramref name="ttl"/> and keeps it alive in the
    /// background every <paramref name="keepAliveInterval"/> (default a third of the TTL) until the
    /// returned registration is disposed. If the lease is lost (the process stalled, or etcd was down
    /// longer than the TTL) the registration grants a new lease and registers again.
    /// </summary>
    public async Task<NodeRegistration> RegisterNodeAsync(
        NodeInfo node, TimeSpan ttl, TimeSpan? keepAliveInterval = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        MetadataChecks.Key(node.Id);
        var registration = new NodeRegistration(_store, NodesPrefix + node.Id, Encode(node), ttl, keepAliveInterval ?? ttl / 3);
        await registration.RegisterAsync(cancellationToken);
        registration.Start();
        return registration;
    }

    /// <summary>The nodes whose registration lease is alive, by id.</summary>
    public async Task<IReadOnlyList<NodeInfo>> ListLiveNodesAsync(CancellationToken cancellationToken = default) =>
        (await _store.ListAsync(NodesPrefix, cancellationToken)).Select(e => Deserialize<NodeInfo>(e.Value)).ToArray();

    private static byte[] Encode<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, s_json);

    private static T Deserialize<T>(ReadOnlyMemory<byte> value) =>
        JsonSerializer.Deserialize<T>(value.Span, s_json) ?? throw new InvalidDataException($"null {typeof(T).Name} document");

    private static VersionedClusterState? Decode(MetadataEntry? entry) =>
        entry is null ? null : new VersionedClusterState(Deserialize<ClusterState>(entry.Value), entry.Revision);
}
