namespace Hybrid.Transport;

/// <summary>
/// A way to carry opaque byte messages between a node and its clients: TCP, a shared-memory ring between two
/// processes on one host, or DPDK raw frames. The node listens, the client dials; both then exchange whole
/// messages (one protocol frame = one message) without knowing which transport carries them.
/// </summary>
/// <remarks>
/// Contract every implementation keeps (docs/transport.md):
/// <list type="bullet">
/// <item>Messages are delivered whole, in order, at most once, or the connection fails with a
/// <see cref="TransportException"/>; a message is never split, merged or reordered.</item>
/// <item>Request/reply: the dialing side sends requests; the accepting side answers each request with exactly
/// one message, in order. Datagram transports (DPDK) rely on this for retransmission and de-duplication.</item>
/// <item>One thread may send while another receives on the same connection; two concurrent senders (or two
/// concurrent receivers) are not allowed.</item>
/// </list>
/// </remarks>
public interface ITransport : IDisposable
{
    /// <summary>Short name for logs and benchmarks: <c>tcp</c>, <c>shm</c>, <c>dpdk</c>.</summary>
    string Name { get; }

    /// <summary>Starts accepting connections at <paramref name="address"/> (format per transport, see docs/transport.md).</summary>
    /// <exception cref="TransportException">The address is malformed or taken.</exception>
    ITransportListener Listen(string address);

    /// <summary>Opens a session to a listener at <paramref name="address"/>.</summary>
    /// <exception cref="TransportException"><see cref="TransportError.ConnectFailed"/> when nobody answers in time.</exception>
    ValueTask<ITransportConnection> ConnectAsync(string address, CancellationToken cancellationToken = default);
}

/// <summary>The server side: hands out one <see cref="ITransportConnection"/> per client session.</summary>
public interface ITransportListener : IAsyncDisposable
{
    /// <summary>The address clients dial (with the port or file name actually bound).</summary>
    string Address { get; }

    /// <summary>Waits for the next client session.</summary>
    /// <exception cref="TransportException"><see cref="TransportError.Closed"/> once the listener is disposed.</exception>
    ValueTask<ITransportConnection> AcceptAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// One session between two peers. Disposing it says goodbye to the peer (the peer's receive then fails with
/// <see cref="TransportError.Closed"/>); a peer that vanishes without goodbye surfaces as
/// <see cref="TransportError.ConnectionLost"/> or <see cref="TransportError.PeerTimeout"/>.
/// </summary>
public interface ITransportConnection : IAsyncDisposable, IDisposable
{
    /// <summary>Who is on the other side, for logs.</summary>
    string RemoteAddress { get; }

    /// <summary>
    /// Sends one message of at most <see cref="TransportOptions.MaxMessageBytes"/> bytes. The bytes are copied
    /// (or written to the wire) before the returned task completes, so the caller may reuse its buffer then.
    /// </summary>
    /// <exception cref="TransportException">Too large, closed, or the peer is gone.</exception>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default);

    /// <summary>Waits for the next message. The caller owns the result and must dispose it exactly once.</summary>
    /// <exception cref="TransportException"><see cref="TransportError.Closed"/> after the peer's goodbye; other errors when it is gone.</exception>
    ValueTask<TransportMessage> ReceiveAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Non-blocking poll for a worker that multiplexes many connections: returns true and a message if one has
    /// arrived whole, false otherwise.
    /// </summary>
    /// <exception cref="TransportException">As <see cref="ReceiveAsync"/>.</exception>
    bool TryReceive(out TransportMessage message);
}
