using System.Buffers.Binary;

namespace Hybrid.Protocol;

/// <summary>
/// The 32-byte header every frame starts with (little-endian). <see cref="Length"/> counts the whole frame,
/// header included, so a reader needs only the first 4 bytes to know how much to receive.
/// </summary>
/// <remarks>
/// Layout: 0 u32 Length · 4 u8 Version · 5 u8 Kind · 6 u16 Count · 8 u32 Crc (CRC32C of bytes 32..Length) ·
/// 12 u32 BatchSeq (echoed in the reply) · 16 u64 SessionId · 24 u64 View.
/// </remarks>
public readonly record struct FrameHeader(int Length, FrameKind Kind, ushort Count, uint Crc, uint BatchSeq, ulong SessionId, ulong View)
{
    /// <summary>Bytes in the header.</summary>
    public const int Size = 32;

    /// <summary>The only protocol version this code speaks.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>Payload bytes (frame minus header).</summary>
    public int PayloadLength => Length - Size;

    /// <summary>Writes the header into the first 32 bytes of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        var d = destination[..Size];
        BinaryPrimitives.WriteInt32LittleEndian(d, Length);
        d[4] = CurrentVersion;
        d[5] = (byte)Kind;
        BinaryPrimitives.WriteUInt16LittleEndian(d[6..], Count);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], Crc);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], BatchSeq);
        BinaryPrimitives.WriteUInt64LittleEndian(d[16..], SessionId);
        BinaryPrimitives.WriteUInt64LittleEndian(d[24..], View);
    }

    /// <summary>Reads the frame length from the first 4 bytes (the caller has at least 4).</summary>
    public static int PeekLength(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadInt32LittleEndian(source);

    /// <summary>
    /// Reads and checks a header: version, kind and length bounds. The CRC is checked separately
    /// (<see cref="CheckCrc"/>) once the whole frame has arrived.
    /// </summary>
    /// <returns><see cref="Status.Ok"/>, <see cref="Status.Malformed"/> or <see cref="Status.TooLarge"/>.</returns>
    public static Status TryRead(ReadOnlySpan<byte> source, int maxFrameBytes, out FrameHeader header)
    {
        header = default;
        if (source.Length < Size)
            return Status.Malformed;
        int length = BinaryPrimitives.ReadInt32LittleEndian(source);
        if (source[4] != CurrentVersion)
            return Status.Malformed;
        byte kind = source[5];
        if (kind is < (byte)FrameKind.Request or > (byte)FrameKind.Rejected)
            return Status.Malformed;
        if (length < Size)
            return Status.Malformed;
        if (length > maxFrameBytes)
            return Status.TooLarge;
        header = new FrameHeader(
            length,
            (FrameKind)kind,
            BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[12..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(source[24..]));
        return Status.Ok;
    }

    /// <summary>True when the payload's CRC32C equals the header's.</summary>
    public bool CheckCrc(ReadOnlySpan<byte> frame) => Crc32C.Compute(frame[Size..Length]) == Crc;
}
