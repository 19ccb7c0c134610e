using System.Diagnostics;
using System.Globalization;

namespace Hybrid.Transport.Datagram;

/// <summary>
/// An <see cref="ITransport"/> made of the datagram RPC over a frame link. Addresses are service numbers
/// (<c>"7100"</c>): the link is point-to-point, so there is no host part.
/// </summary>
internal class DatagramTransport(IFrameLink link, TransportOptions options, string name) : ITransport
{
    private readonly DatagramEngine _engine = new(link, options);

    public string Name => name;

    /// <summary>The engine, for counters in tests and benchmarks.</summary>
    internal DatagramEngine Engine => _engine;

    public ITransportListener Listen(string address) => new DatagramListener(_engine, ParseService(address));

    public async ValueTask<ITransportConnection> ConnectAsync(string address, CancellationToken cancellationToken = default)
    {
        ushort service = ParseService(address);
        DatagramSession session;
        lock (_engine.Gate)
        {
            if (_engine.IsDisposed)
                throw new TransportException(TransportError.Closed, "transport disposed");
            long now = Stopwatch.GetTimestamp();
            session = new DatagramSession(_engine, (ulong)Random.Shared.NextInt64(1, long.MaxValue), service, isClient: true, DatagramEngine.AnyPeer, now);
            _engine.Add(session);
            session.SendHello(now);
            _engine.Flush();
        }
        await session.WaitOpenAsync(cancellationToken).ConfigureAwait(false);
        return session;
    }

    private static ushort ParseService(string address) =>
        ushort.TryParse(address, NumberStyles.None, CultureInfo.InvariantCulture, out ushort service)
            ? service
            : throw new TransportException(TransportError.InvalidAddress, $"'{address}' is not a service number 0..65535");

    public void Dispose()
    {
        _engine.Dispose();
        GC.SuppressFinalize(this);
    }
}
