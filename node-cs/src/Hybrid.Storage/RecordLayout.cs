using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Hybrid.Storage;

/// <summary>
/// Byte layouts of what the store keeps in FASTER. Key: [tenant u32][table u32][user key]. Value:
/// [meta u64][data], meta = version | TombstoneBit | PinnedBit. A delete keeps a value with the tombstone bit so the
/// version survives (a pulled older record cannot resurrect the key). Versions stay below 2^62.
/// </summary>
internal static class RecordLayout
{
    public const int KeyPrefixBytes = 8;
    public const int MetaBytes = 8;
    public const ulong TombstoneBit = 1UL << 63;

    /// <summary>
    /// Set in a record's meta (in memory, under FASTER's shared record lock) once a reader handed its value out in place
    /// (<see cref="IKvSession.GetInPlace"/>): the record is never updated in place again (a write makes a new record
    /// instead), so the bytes under that reader's span do not change. Not part of the version; harmless on disk.
    /// </summary>
    public const ulong PinnedBit = 1UL << 62;

    /// <summary>The meta bits that are not the version.</summary>
    public const ulong FlagBits = TombstoneBit | PinnedBit;

    /// <summary>Versions, floors and pulled versions are below this.</summary>
    public const ulong VersionLimit = PinnedBit;

    /// <summary>Approximate bytes a live record costs in the tenant accounting besides key and value bytes.</summary>
    public const int AccountingOverhead = 32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteKeyPrefix(Span<byte> dst, uint tenant, uint table)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(dst, tenant);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[4..], table);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Tenant(ReadOnlySpan<byte> storedKey) => BinaryPrimitives.ReadUInt32LittleEndian(storedKey);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Table(ReadOnlySpan<byte> storedKey) => BinaryPrimitives.ReadUInt32LittleEndian(storedKey[4..]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Meta(ReadOnlySpan<byte> storedValue) => BinaryPrimitives.ReadUInt64LittleEndian(storedValue);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteMeta(Span<byte> storedValue, ulong meta) => BinaryPrimitives.WriteUInt64LittleEndian(storedValue, meta);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong VersionOf(ulong meta) => meta & ~FlagBits;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsTombstone(ulong meta) => (meta & TombstoneBit) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsPinned(ulong meta) => (meta & PinnedBit) != 0;

    /// <summary>Sets <see cref="PinnedBit"/> in a stored value's meta: one byte store (the flags share the top byte).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Pin(Span<byte> storedValue) => storedValue[MetaBytes - 1] |= (byte)(PinnedBit >> 56);

    /// <summary>Accounting size of a stored record: 0 for a tombstone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long LiveSize(int storedKeyLength, ReadOnlySpan<byte> storedValue)
        => IsTombstone(Meta(storedValue)) ? 0 : storedKeyLength - KeyPrefixBytes + storedValue.Length - MetaBytes + AccountingOverhead;

    /// <summary>Slot of a stored key (its user part).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int SlotOf(ReadOnlySpan<byte> storedKey) => Slot.Of(storedKey[KeyPrefixBytes..]);
}
