using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Hybrid.Storage;

/// <summary>
/// Byte layouts of what the store keeps in FASTER. Key: [tenant u32][table u32][user key]. Value:
/// [meta u64][data], meta = version | TombstoneBit. A delete keeps a value with the tombstone bit so the version
/// survives (a pulled older record cannot resurrect the key). Versions stay below 2^63.
/// </summary>
internal static class RecordLayout
{
    public const int KeyPrefixBytes = 8;
    public const int MetaBytes = 8;
    public const ulong TombstoneBit = 1UL << 63;

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
    public static ulong VersionOf(ulong meta) => meta & ~TombstoneBit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsTombstone(ulong meta) => (meta & TombstoneBit) != 0;

    /// <summary>Accounting size of a stored record: 0 for a tombstone.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long LiveSize(int storedKeyLength, ReadOnlySpan<byte> storedValue)
        => IsTombstone(Meta(storedValue)) ? 0 : storedKeyLength - KeyPrefixBytes + storedValue.Length - MetaBytes + AccountingOverhead;

    /// <summary>Slot of a stored key (its user part).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int SlotOf(ReadOnlySpan<byte> storedKey) => Slot.Of(storedKey[KeyPrefixBytes..]);
}
