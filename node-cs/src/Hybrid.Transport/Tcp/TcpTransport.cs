using System.Net;
using System.Net.Sockets;

namespace Hybrid.Transport.Tcp;

/// <summary>
/// Kernel TCP: each message travels as a 4-byte little-endian length and its bytes. Addresses are
/// <c>host:port</c> (port 0 to listen on any free port).
/// </summary>
internal sealed class TcpTransport(TransportOptions options) : ITransport
{
    public string Name => "tcp";

    public ITransportListener Listen(string address)
    {
        var endpoint = Parse(address);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(endpoint);
            socket.Listen(512);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new TransportException(TransportError.InvalidAddress, $"cannot listen on {address}: {e.SocketErrorCode}", e);
        }
        return new TcpListener(socket, options);
    }

    public async ValueTask<ITransportConnection> ConnectAsync(string address, CancellationToken cancellationToken = default)
    {
        var endpoint = Parse(address);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            socket.Dispose();
            throw new TransportException(TransportError.ConnectFailed, $"cannot connect to {address}: {e.Message}", e);
        }
        return new TcpConnection(socket, options.MaxMessageBytes);
    }

    public void Dispose()
    {
    }

    private static IPEndPoint Parse(string address)
    {
        if (IPEndPoint.TryParse(address, out var ip))
            return ip;
        int colon = address.LastIndexOf(':');
        if (colon > 0 && int.TryParse(address.AsSpan(colon + 1), out int port) && address[..colon] == "localhost")
            return new IPEndPoint(IPAddress.Loopback, port);
        throw new TransportException(TransportError.InvalidAddress, $"'{address}' is not host:port");
    }

    private sealed class TcpListener(Socket socket, TransportOptions options) : ITransportListener
    {
        public string Address => socket.LocalEndPoint?.ToString() ?? "";

        public async ValueTask<ITransportConnection> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                var client = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
                return new TcpConnection(client, options.MaxMessageBytes);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw new TransportException(TransportError.Closed, "listener closed", e);
            }
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
