using System.Net;
using System.Net.Sockets;

namespace Hybrid.Client;

/// <summary>
/// A node's native endpoint together with its address on a message transport (a shared-memory socket path, a DPDK
/// service). Where a <see cref="HybridClientOptions.EndPoint"/> is one of these and <see cref="HybridClientOptions.Transport"/>
/// is set, the session dials <see cref="Address"/> on that transport instead of
/// <see cref="HybridClientOptions.TransportAddress"/>; without a transport it dials <see cref="Native"/> over TCP. So a
/// routing map whose endpoints carry transport addresses (<see cref="TransportRouting"/>) lets a
/// <see cref="ClusterClient"/> reach every node over the transport, each at its own address.
/// </summary>
public sealed class TransportEndPoint : EndPoint
{
    /// <summary>The node's endpoint <paramref name="native"/> and its address <paramref name="address"/> on the transport.</summary>
    public TransportEndPoint(EndPoint native, string address)
    {
        ArgumentNullException.ThrowIfNull(native);
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (native is TransportEndPoint)
            throw new ArgumentException("the native endpoint must be a socket endpoint", nameof(native));
        Native = native;
        Address = address;
    }

    /// <summary>The node's native TCP endpoint.</summary>
    public EndPoint Native { get; }

    /// <summary>The node's address on the transport.</summary>
    public string Address { get; }

    /// <inheritdoc />
    public override AddressFamily AddressFamily => Native.AddressFamily;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TransportEndPoint other && Native.Equals(other.Native) && Address == other.Address;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Native, Address);

    /// <inheritdoc />
    public override string ToString() => $"{Address} ({Native})";
}

/// <summary>A routing source whose node endpoints carry each node's transport address (<see cref="TransportEndPoint"/>).</summary>
public static class TransportRouting
{
    /// <summary>
    /// Wraps <paramref name="source"/>: every node's endpoint in the maps it loads becomes a <see cref="TransportEndPoint"/>
    /// with the address <paramref name="addressOf"/> gives for (node, native endpoint); null keeps the plain endpoint
    /// (that node is reached over TCP).
    /// </summary>
    public static IClusterRoutingSource Over(IClusterRoutingSource source, Func<string, EndPoint, string?> addressOf)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(addressOf);
        return new Source(source, addressOf);
    }

    private sealed class Source(IClusterRoutingSource inner, Func<string, EndPoint, string?> addressOf) : IClusterRoutingSource
    {
        public async Task<ClusterRouting> LoadAsync(CancellationToken cancellationToken = default)
        {
            var map = await inner.LoadAsync(cancellationToken).ConfigureAwait(false);
            var endPoints = new Dictionary<string, EndPoint>();
            foreach (var (node, endPoint) in map.EndPoints)
                endPoints[node] = addressOf(node, endPoint) is { } address ? new TransportEndPoint(endPoint, address) : endPoint;
            return map with { EndPoints = endPoints };
        }
    }
}
