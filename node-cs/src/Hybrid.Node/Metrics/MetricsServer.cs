using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Hybrid.Node.Metrics;

/// <summary>
/// A minimal HTTP/1.1 server for the admin port: <c>GET /metrics</c> answers the Prometheus text exposition, anything
/// else 404; one request per connection. Kept off the workers (it runs on the thread pool) and off the request path.
/// </summary>
internal sealed class MetricsServer : IDisposable
{
    private readonly Socket _listener;
    private readonly Func<string> _scrape;

    private MetricsServer(Socket listener, Func<string> scrape)
    {
        _listener = listener;
        _scrape = scrape;
    }

    /// <summary>The bound port.</summary>
    internal int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    internal static MetricsServer Start(IPEndPoint endpoint, Func<string> scrape, CancellationToken stopping)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        socket.Bind(endpoint);
        socket.Listen(16);
        var server = new MetricsServer(socket, scrape);
        _ = server.AcceptLoop(stopping);
        return server;
    }

    private async Task AcceptLoop(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (stopping.IsCancellationRequested)
                    return;
                continue;
            }
            _ = Serve(client, stopping);
        }
    }

    private async Task Serve(Socket client, CancellationToken stopping)
    {
        using (client)
        {
            try
            {
                var buffer = new byte[8192];
                int length = 0;
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                while (length < buffer.Length)
                {
                    int n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                    if (n == 0)
                        break;
                    length += n;
                    if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0)
                        break;
                }
                string requestLine = Encoding.ASCII.GetString(buffer, 0, length).Split("\r\n")[0];
                bool isMetrics = requestLine.StartsWith("GET /metrics ", StringComparison.Ordinal) || requestLine == "GET /metrics";
                string body = isMetrics ? _scrape() : "not found\n";
                string head = isMetrics
                    ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    : "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n";
                var bodyBytes = Encoding.UTF8.GetBytes(body);
                var headBytes = Encoding.ASCII.GetBytes(head + $"Content-Length: {bodyBytes.Length}\r\nConnection: close\r\n\r\n");
                await client.SendAsync(headBytes, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                await client.SendAsync(bodyBytes, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // A scraper that went away or stalled: nothing to do.
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
