using System.Buffers.Binary;

namespace Hybrid.Protocol;

/// <summary>
/// The fixed 12-byte part of one request (little-endian):
/// 0 u8 Op · 1 u8 Flags (0) · 2 u16 Table · 4 u16 KeyLength · 6 u16 reserved (0) · 8 u32 ValueLength,
/// then an u64 expected version for CondPut only, then the key bytes, then the value bytes.
/// </summary>
public static class RequestHeader
{
    /// <summary>Bytes before the optional expected version.</summary>
    public const int Size = 12;

    /// <summary>Bytes one request takes on the wire.</summary>
    public static int EncodedLength(OpCode op, int keyLength, int valueLength) =>
        Size + (OpCodes.HasExpectedVersion(op) ? 8 : 0) + keyLength + valueLength;

    /// <summary>Writes one request; returns the bytes written. The caller sized <paramref name="destination"/>.</summary>
    public static int Write(Span<byte> destination, OpCode op, ushort table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion = 0)
    {
        destination[0] = (byte)op;
        destination[1] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], table);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], checked((ushort)key.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], value.Length);
        int at = Size;
        if (OpCodes.HasExpectedVersion(op))
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination[at..], expectedVersion);
            at += 8;
        }
        key.CopyTo(destination[at..]);
        at += key.Length;
        value.CopyTo(destination[at..]);
        return at + value.Length;
    }
}

/// <summary>
/// The fixed 16-byte part of one result (little-endian):
/// 0 u8 Status · 1 u8 Flags (0) · 2 u16 reserved · 4 u32 ValueLength · 8 u64 Version, then the value bytes.
/// MultiGet packs one such result per key inside its own result's value.
/// </summary>
public static class ResultHeader
{
    /// <summary>Bytes before the value.</summary>
    public const int Size = 16;

    /// <summary>Writes a result header; the caller writes the value bytes right after it.</summary>
    public static void Write(Span<byte> destination, Status status, int valueLength, ulong version)
    {
        destination[0] = (byte)status;
        destination[1] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], valueLength);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], version);
    }
}
