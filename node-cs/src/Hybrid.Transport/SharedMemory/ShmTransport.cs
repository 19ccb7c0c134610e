using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Net.Sockets;
using System.Text;

namespace Hybrid.Transport.SharedMemory;

/// <summary>
/// Shared memory between processes on one host. The address is the path of a Unix socket the listener binds
/// (e.g. <c>/tmp/hybrid-7100.sock</c>). To dial, the client creates and maps a file in <c>/dev/shm</c>, sends
/// its path over the socket, waits for a one-byte acknowledgement once the server has mapped it, then unlinks
/// the file: from then on only the two mappings keep it, so nothing is left behind when either side dies.
/// </summary>
internal sealed class ShmTransport(TransportOptions options) : ITransport
{
    private static int s_counter;

    public string Name => "shm";

    public ITransportListener Listen(string address)
    {
        if (File.Exists(address))
            File.Delete(address);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(address));
            socket.Listen(512);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new TransportException(TransportError.InvalidAddress, $"cannot listen on {address}: {e.SocketErrorCode}", e);
        }
        return new ShmListener(socket, address, options);
    }

    public async ValueTask<ITransportConnection> ConnectAsync(string address, CancellationToken cancellationToken = default)
    {
        string dir = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string path = Path.Combine(dir, $"hybrid-shm-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}-{Random.Shared.Next():x8}");
        long bytes = ShmConnection.FileBytes(options.ShmRingBytes);
        MemoryMappedFile? file = null;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        try
        {
            var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite);
            stream.SetLength(bytes);
            file = MemoryMappedFile.CreateFromFile(stream, null, bytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            WriteFileHeader(file, options.ShmRingBytes);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(address), timeout.Token).ConfigureAwait(false);
            byte[] name = Encoding.UTF8.GetBytes(path);
            byte[] hello = new byte[2 + name.Length];
            BinaryPrimitives.WriteUInt16LittleEndian(hello, (ushort)name.Length);
            name.CopyTo(hello, 2);
            await socket.SendAsync(hello, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            await ReceiveExactlyAsync(socket, new byte[1], timeout.Token).ConfigureAwait(false);
            return new ShmConnection(file, socket, options.ShmRingBytes, isClient: true, options.MaxMessageBytes, address);
        }
        catch (Exception e) when (e is SocketException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            socket.Dispose();
            file?.Dispose();
            throw new TransportException(TransportError.ConnectFailed, $"cannot connect to {address}: {e.Message}", e);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static void WriteFileHeader(MemoryMappedFile file, int ringBytes)
    {
        using var header = file.CreateViewAccessor(0, 16);
        header.Write(0, ShmConnection.Magic);
        header.Write(8, ringBytes);
    }

    internal static async ValueTask ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
                throw new IOException("peer closed during the handshake");
            buffer = buffer[n..];
        }
    }

    public void Dispose()
    {
    }

    private sealed class ShmListener(Socket socket, string address, TransportOptions options) : ITransportListener
    {
        public string Address => address;

        public async ValueTask<ITransportConnection> AcceptAsync(CancellationToken cancellationToken = default)
        {
            while (true)
            {
                Socket client;
                try
                {
                    client = await socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    throw new TransportException(TransportError.Closed, "listener closed", e);
                }
                var connection = await TryHandshakeAsync(client, cancellationToken).ConfigureAwait(false);
                if (connection is not null)
                    return connection;
            }
        }

        /// <summary>Maps the file the client names; a client that misbehaves is dropped and the listener goes on.</summary>
        private async ValueTask<ITransportConnection?> TryHandshakeAsync(Socket client, CancellationToken cancellationToken)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(options.ConnectTimeout);
            MemoryMappedFile? file = null;
            try
            {
                byte[] length = new byte[2];
                await ReceiveExactlyAsync(client, length, timeout.Token).ConfigureAwait(false);
                byte[] name = new byte[BinaryPrimitives.ReadUInt16LittleEndian(length)];
                await ReceiveExactlyAsync(client, name, timeout.Token).ConfigureAwait(false);
                string path = Encoding.UTF8.GetString(name);
                long bytes = ShmConnection.FileBytes(options.ShmRingBytes);
                if (new FileInfo(path).Length != bytes)
                    throw new IOException($"{path} is not {bytes} bytes: ring sizes differ between client and server");
                file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, bytes, MemoryMappedFileAccess.ReadWrite);
                using (var header = file.CreateViewAccessor(0, 16))
                {
                    if (header.ReadUInt64(0) != ShmConnection.Magic || header.ReadInt32(8) != options.ShmRingBytes)
                        throw new IOException($"{path} is not a hybrid shared-memory connection");
                }
                await client.SendAsync(new byte[] { 1 }, SocketFlags.None, timeout.Token).ConfigureAwait(false);
                return new ShmConnection(file, client, options.ShmRingBytes, isClient: false, options.MaxMessageBytes, $"shm:{path}");
            }
            catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                file?.Dispose();
                client.Dispose();
                return null;
            }
        }

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            if (File.Exists(address))
                File.Delete(address);
            return ValueTask.CompletedTask;
        }
    }
}
