namespace Hybrid.Transport;

/// <summary>Why a transport operation failed. Every implementation maps its own failures onto these.</summary>
public enum TransportError
{
    /// <summary>The peer said goodbye, or this side was disposed: no more messages will come.</summary>
    Closed = 1,

    /// <summary>The peer vanished without goodbye (reset, killed process, broken ring).</summary>
    ConnectionLost = 2,

    /// <summary>The peer stopped answering within the configured timeout (datagram transports).</summary>
    PeerTimeout = 3,

    /// <summary>Nobody accepted the session in time, or the address is unreachable.</summary>
    ConnectFailed = 4,

    /// <summary>A message is larger than <see cref="TransportOptions.MaxMessageBytes"/>.</summary>
    MessageTooLarge = 5,

    /// <summary>The peer sent bytes that break the transport's framing; the connection is dropped.</summary>
    ProtocolViolation = 6,

    /// <summary>The address cannot be parsed or bound.</summary>
    InvalidAddress = 7,

    /// <summary>The native library or the DPDK environment is missing or refused to start (see the message).</summary>
    Unavailable = 8,

    /// <summary>The call breaks the request/reply contract (e.g. a server reply with no request pending).</summary>
    InvalidOperation = 9,
}

/// <summary>A transport failure with a machine-readable <see cref="Error"/>.</summary>
public sealed class TransportException : Exception
{
    /// <summary>Creates an exception for <paramref name="error"/>.</summary>
    public TransportException(TransportError error, string message, Exception? inner = null)
        : base($"{error}: {message}", inner) => Error = error;

    /// <summary>What went wrong.</summary>
    public TransportError Error { get; }
}
