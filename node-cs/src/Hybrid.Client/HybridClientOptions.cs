using System.Net;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Client;

/// <summary>
/// Settings of a <see cref="HybridSession"/>. Batching: requests issued close together share one frame; a frame is
/// sent when it holds <see cref="MaxBatchOps"/> requests or <see cref="MaxBatchBytes"/> bytes, or when
/// <see cref="Linger"/> has passed (zero = as soon as the caller's current burst of calls ends), and at most
/// <see cref="MaxInFlightBatches"/> frames wait for replies at once (more requests accumulate meanwhile).
/// </summary>
public sealed record HybridClientOptions
{
    /// <summary>The node's native endpoint.</summary>
    public EndPoint EndPoint { get; init; } = new IPEndPoint(IPAddress.Loopback, 7100);

    /// <summary>
    /// The message transport to reach the node over (shared memory, DPDK, length-prefixed TCP), or null (default)
    /// for the node's native TCP socket at <see cref="EndPoint"/>. Create it once per process with
    /// <c>TransportFactory.Create</c> (a process hosts one DPDK transport) and share it between sessions; the caller
    /// disposes it after the sessions. Each session opens its own transport connection.
    /// </summary>
    public ITransport? Transport { get; init; }

    /// <summary>The node's address on <see cref="Transport"/>: e.g. <c>/tmp/hybrid-7100.sock</c> (shm) or <c>7100</c> (DPDK service).</summary>
    public string? TransportAddress { get; init; }

    /// <summary>Tenant name sent in Hello.</summary>
    public string Tenant { get; init; } = "default";

    /// <summary>The tenant's secret (HMAC key); empty for the default tenant of a loopback node.</summary>
    public byte[] Secret { get; init; } = [];

    /// <summary>
    /// The node's size limits (the <see cref="ProtocolLimits"/> it runs with; the default is a node's default).
    /// A request whose key or value is over them fails at once with <see cref="ArgumentException"/>, before it enters a
    /// frame shared with other requests: the node answers a frame over its limits TooLarge and closes the connection.
    /// </summary>
    public ProtocolLimits Limits { get; init; } = ProtocolLimits.Default;

    /// <summary>Most requests in one frame.</summary>
    public int MaxBatchOps { get; init; } = 256;

    /// <summary>A frame is sent once it reaches this many bytes.</summary>
    public int MaxBatchBytes { get; init; } = 64 * 1024;

    /// <summary>How long a request may wait for others to share its frame (zero = only the current burst).</summary>
    public TimeSpan Linger { get; init; } = TimeSpan.Zero;

    /// <summary>Frames sent and not yet answered, per connection.</summary>
    public int MaxInFlightBatches { get; init; } = 4;

    /// <summary>
    /// A request not answered within this time fails with <see cref="HybridTimeoutException"/> (outcome unknown, like
    /// any <see cref="HybridConnectionException"/>) and the connection is reset.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// <see cref="Timeout"/> for a frame that holds an extension install or uninstall, and for the frames sent after it
    /// on the same connection, which the node holds until it answers (the larger of the two applies): the node's
    /// compiler runs installs one at a time, and the first compile in a node process loads it, which took over 10 s
    /// on a busy 2-core machine.
    /// </summary>
    public TimeSpan InstallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How often a batch is resent after ViewChanged or Retry before its requests fail.</summary>
    public int MaxResends { get; init; } = 8;

    /// <summary>Refreshes routing after ViewChanged (one node: nothing to do; the cluster layer plugs its map in here).</summary>
    public IRoutingMap Routing { get; init; } = SingleNodeRouting.Instance;

    /// <summary>
    /// True runs callers' continuations on the client's receive loop (fastest, but a continuation that blocks stalls
    /// the connection); false (default) runs them on the thread pool.
    /// </summary>
    public bool InlineCompletions { get; init; }
}

/// <summary>
/// Where the client learns about ownership changes. After a node answers ViewChanged the session awaits
/// <see cref="RefreshAsync"/>, adopts the node's view and resends the batch. A cluster router refreshes its slot →
/// node map here; with one node there is nothing to refresh.
/// </summary>
public interface IRoutingMap
{
    /// <summary>The node at <paramref name="node"/> is in <paramref name="nodeView"/>; refresh what depends on it.</summary>
    ValueTask RefreshAsync(EndPoint node, ulong nodeView, CancellationToken cancellationToken);
}

/// <summary>Routing for a single node: a view change needs no refresh, only the new view.</summary>
public sealed class SingleNodeRouting : IRoutingMap
{
    /// <summary>The shared instance.</summary>
    public static SingleNodeRouting Instance { get; } = new();

    /// <inheritdoc />
    public ValueTask RefreshAsync(EndPoint node, ulong nodeView, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
