using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The first exchange on every peer connection (docs/protocol.md §11.1): both sides prove they hold the cluster's peer
/// key and speak the same peer protocol version before any <see cref="PeerOp"/> is served. The peer port can drop a
/// range, start migrations and hand out every record of a range, so nothing on it answers a stranger.
/// </summary>
/// <remarks>
/// <list type="number">
/// <item>server → client: status <see cref="PeerFrame.Hello"/>, <c>u16 version, 32-byte nonce S</c>;</item>
/// <item>client → server: op <see cref="PeerOp.Authenticate"/>, <c>u16 version, 32-byte nonce C,
/// HMAC-SHA256(key, "hybrid-peer client" ‖ S ‖ C)</c>;</item>
/// <item>server → client: <see cref="PeerFrame.Ok"/> with <c>HMAC-SHA256(key, "hybrid-peer server" ‖ S ‖ C)</c>, or
/// <see cref="PeerFrame.Failed"/> with the reason, after which the server closes the connection.</item>
/// </list>
/// Fresh nonces on both sides mean a recorded exchange replays on neither. The client checks the server's proof too, so
/// a process squatting on a node's port cannot feed a migration target records. The key never crosses the wire. The
/// server reads the client's frame with a small size limit and a deadline, so a stranger costs it little.
/// </remarks>
public static class PeerHandshake
{
    /// <summary>The peer protocol version this build speaks; a change to any <see cref="PeerOp"/>'s payload bumps it.</summary>
    public const ushort Version = 1;

    /// <summary>Length of the cluster's peer key.</summary>
    public const int KeyBytes = 32;

    private const int NonceBytes = 32;
    private const int MacBytes = 32;
    private static readonly byte[] s_client = Encoding.ASCII.GetBytes("hybrid-peer client");
    private static readonly byte[] s_server = Encoding.ASCII.GetBytes("hybrid-peer server");

    /// <summary>How long the server waits for the client's proof.</summary>
    public static TimeSpan Deadline { get; } = TimeSpan.FromSeconds(5);

    /// <summary>Throws unless <paramref name="key"/> can be a peer key.</summary>
    public static void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyBytes)
            throw new ArgumentException($"a peer key is {KeyBytes} bytes, not {key.Length}", nameof(key));
    }

    /// <summary>
    /// Server side, on a freshly accepted connection: true when the client proved the key (it has the server's proof);
    /// false when it did not (it was told why, unless it went away) and the caller closes the connection.
    /// </summary>
    public static bool Accept(Socket socket, ReadOnlySpan<byte> key, PeerMessage frame, out string? refusal)
    {
        Span<byte> nonces = stackalloc byte[2 * NonceBytes];
        RandomNumberGenerator.Fill(nonces[..NonceBytes]);
        frame.Begin(PeerFrame.Hello).U16(Version).Bytes(nonces[..NonceBytes]).Send(socket);
        int timeout = socket.ReceiveTimeout;
        socket.ReceiveTimeout = (int)Deadline.TotalMilliseconds;
        try
        {
            if (!frame.Receive(socket, maxPayload: 2 + NonceBytes + MacBytes))
            {
                refusal = "closed before it authenticated";
                return false;
            }
        }
        finally
        {
            socket.ReceiveTimeout = timeout;
        }
        refusal = Check(frame, key, nonces);
        if (refusal is not null)
        {
            frame.Begin(PeerFrame.Failed).Bytes(Encoding.UTF8.GetBytes(refusal)).Send(socket);
            return false;
        }
        Span<byte> proof = stackalloc byte[MacBytes];
        Mac(key, s_server, nonces, proof);
        frame.Begin(PeerFrame.Ok).Bytes(proof).Send(socket);
        return true;
    }

    private static string? Check(PeerMessage frame, ReadOnlySpan<byte> key, Span<byte> nonces)
    {
        if ((PeerOp)frame.Code != PeerOp.Authenticate)
            return $"peer authentication failed: the first frame was op 0x{frame.Code:x2}, not Authenticate";
        ReadOnlySpan<byte> payload = frame.Payload;
        if (payload.Length < 2)
            return "peer authentication failed: a short Authenticate frame";
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(payload);
        if (version != Version)
            return $"peer protocol version {version} is not this node's ({Version}): run the same HybridKV build on every node";
        if (payload.Length != 2 + NonceBytes + MacBytes)
            return "peer authentication failed: a malformed Authenticate frame";
        payload.Slice(2, NonceBytes).CopyTo(nonces[NonceBytes..]);
        Span<byte> expected = stackalloc byte[MacBytes];
        Mac(key, s_client, nonces, expected);
        return CryptographicOperations.FixedTimeEquals(expected, payload.Slice(2 + NonceBytes, MacBytes))
            ? null
            : "peer authentication failed: wrong cluster peer key";
    }

    /// <summary>
    /// Client side, on a freshly connected socket: returns once both sides proved the key; throws
    /// <see cref="PeerException"/> when the server refused this side or failed its own proof, or spoke another version.
    /// </summary>
    public static async ValueTask ConnectAsync(Socket socket, ReadOnlyMemory<byte> key, PeerMessage frame, CancellationToken cancellationToken)
    {
        byte[] nonces = new byte[2 * NonceBytes];
        await frame.ReceiveAsync(socket, cancellationToken).ConfigureAwait(false);
        if (frame.Code != PeerFrame.Hello || frame.Payload.Length != 2 + NonceBytes)
            throw new PeerException($"peer authentication failed: {socket.RemoteEndPoint} did not greet as a HybridKV peer port");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(frame.Payload);
        if (version != Version)
            throw new PeerException($"peer protocol version {version} at {socket.RemoteEndPoint} is not this node's ({Version}): run the same HybridKV build on every node");
        frame.Payload.Slice(2, NonceBytes).CopyTo(nonces);
        RandomNumberGenerator.Fill(nonces.AsSpan(NonceBytes));
        byte[] proof = new byte[MacBytes];
        Mac(key.Span, s_client, nonces, proof);
        await frame.Begin((byte)PeerOp.Authenticate).U16(Version).Bytes(nonces.AsSpan(NonceBytes)).Bytes(proof).SendAsync(socket, cancellationToken).ConfigureAwait(false);
        await frame.ReceiveAsync(socket, cancellationToken).ConfigureAwait(false);
        frame.ThrowIfFailed();
        Mac(key.Span, s_server, nonces, proof);
        if (!CryptographicOperations.FixedTimeEquals(proof, frame.Payload))
            throw new PeerException($"peer authentication failed: {socket.RemoteEndPoint} does not hold the cluster's peer key");
    }

    private static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> label, ReadOnlySpan<byte> nonces, Span<byte> into)
    {
        Span<byte> message = stackalloc byte[32 + (2 * NonceBytes)];
        label.CopyTo(message);
        nonces.CopyTo(message[label.Length..]);
        HMACSHA256.HashData(key, message[..(label.Length + nonces.Length)], into);
    }
}
