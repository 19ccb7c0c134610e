using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Hybrid.Storage;

/// <summary>The read-modify-write operations; every write goes through FASTER RMW so it can see the old version.</summary>
internal enum OpKind : byte
{
    Put = 1,
    PutIfVersion = 2,
    PutIfAbsent = 3,
    PutIfExists = 4,
    Delete = 5,
    Increment = 6,
    Append = 7,
    ApplyPulled = 8,

    /// <summary>Recovery: install (meta, data) from the operation log if newer; not logged again.</summary>
    Replay = 9,
}

/// <summary>
/// Input of an RMW, carried as a SpanByte payload [op u8][pad 7][arg i64][data] so FASTER copies it when the
/// operation goes pending (a pointer to the caller's span would dangle). arg: expected version, delta, or
/// pulled version/meta depending on the op.
/// </summary>
internal static class StoreInput
{
    public const int HeaderBytes = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteHeader(Span<byte> dst, OpKind op, long arg)
    {
        dst[0] = (byte)op;
        BinaryPrimitives.WriteInt64LittleEndian(dst[8..], arg);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static OpKind Op(ReadOnlySpan<byte> input) => (OpKind)input[0];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long Arg(ReadOnlySpan<byte> input) => BinaryPrimitives.ReadInt64LittleEndian(input[8..]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ReadOnlySpan<byte> Data(ReadOnlySpan<byte> input) => input[HeaderBytes..];
}
