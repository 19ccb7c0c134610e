using System.Buffers;

namespace Hybrid.Transport;

/// <summary>
/// A received message in a buffer rented from <see cref="ArrayPool{T}.Shared"/>. Dispose it exactly once, when
/// the bytes are no longer needed; copies of this struct share the buffer, so only one copy may be disposed.
/// </summary>
public readonly struct TransportMessage : IDisposable
{
    private readonly byte[]? _buffer;

    internal TransportMessage(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    /// <summary>Bytes in the message.</summary>
    public int Length { get; }

    /// <summary>The message bytes.</summary>
    public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, Length);

    /// <summary>The message bytes as memory (valid until <see cref="Dispose"/>).</summary>
    public ReadOnlyMemory<byte> Memory => _buffer.AsMemory(0, Length);

    /// <summary>
    /// Bytes kept readable past every message: vectorised parsers (the node's batch key hashing) may read a few
    /// bytes beyond the last byte of a message, so they must stay inside the buffer.
    /// </summary>
    public const int Slack = 8;

    /// <summary>Rents a buffer of at least <paramref name="length"/> + <see cref="Slack"/> bytes for a message being received.</summary>
    internal static byte[] Rent(int length) => ArrayPool<byte>.Shared.Rent(Math.Max(length, 0) + Slack);

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        if (_buffer is not null)
            ArrayPool<byte>.Shared.Return(_buffer);
    }
}
