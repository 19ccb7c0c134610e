using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Hybrid.Protocol;

/// <summary>
/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78, initial and final value inverted) of frame payloads.
/// On x64 with SSE4.2 it runs three independent <c>crc32</c> streams over 8-byte words (the instruction's
/// latency is 3 cycles, its throughput 1 per cycle) and joins them with precomputed shift tables; elsewhere
/// it falls back to the byte-wise table of <see cref="ComputeScalar"/>, which is also the tests' reference.
/// </summary>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78;

    /// <summary>Bytes per stream in one three-way step; frames shorter than 3 blocks use one stream.</summary>
    private const int Block = 256;

    private static readonly uint[] s_table = BuildTable();
    private static readonly uint[] s_shiftBlock = BuildShiftTable(Block);
    private static readonly uint[] s_shiftTwoBlocks = BuildShiftTable(2 * Block);

    /// <summary>True when the SSE4.2 path is used.</summary>
    public static bool IsHardwareAccelerated => Sse42.X64.IsSupported;

    /// <summary>CRC32C of <paramref name="data"/>; uses SSE4.2 when available.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) =>
        ~(Sse42.X64.IsSupported ? UpdateSse42(0xFFFFFFFF, data) : UpdateScalar(0xFFFFFFFF, data));

    /// <summary>CRC32C computed one byte at a time with a table: the reference the fast path must equal.</summary>
    public static uint ComputeScalar(ReadOnlySpan<byte> data) => ~UpdateScalar(0xFFFFFFFF, data);

    /// <summary>CRC32C with the single-stream SSE4.2 loop (no interleaving); exposed for benchmarks and tests.</summary>
    public static uint ComputeSse42SingleStream(ReadOnlySpan<byte> data)
    {
        if (!Sse42.X64.IsSupported)
            return ComputeScalar(data);
        ulong crc = 0xFFFFFFFF;
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        for (; i + 8 <= n; i += 8)
            crc = Sse42.X64.Crc32(crc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        return ~Tail((uint)crc, data[i..]);
    }

    private static uint UpdateScalar(uint crc, ReadOnlySpan<byte> data)
    {
        var table = s_table;
        foreach (byte b in data)
            crc = table[(byte)(crc ^ b)] ^ (crc >> 8);
        return crc;
    }

    private static uint UpdateSse42(uint crc, ReadOnlySpan<byte> data)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        ulong c = crc;
        while (n - i >= 3 * Block)
        {
            ulong c0 = c, c1 = 0, c2 = 0;
            ref byte b0 = ref Unsafe.Add(ref p, i);
            for (int j = 0; j < Block; j += 8)
            {
                c0 = Sse42.X64.Crc32(c0, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b0, j)));
                c1 = Sse42.X64.Crc32(c1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b0, j + Block)));
                c2 = Sse42.X64.Crc32(c2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref b0, j + 2 * Block)));
            }
            // Register linearity: crc(c, A|B|C) = shift(crc(c,A), |B|+|C|) ^ shift(crc(0,B), |C|) ^ crc(0,C).
            c = Shift(s_shiftTwoBlocks, (uint)c0) ^ Shift(s_shiftBlock, (uint)c1) ^ (uint)c2;
            i += 3 * Block;
        }
        for (; i + 8 <= n; i += 8)
            c = Sse42.X64.Crc32(c, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        return Tail((uint)c, data[i..]);
    }

    private static uint Tail(uint crc, ReadOnlySpan<byte> rest)
    {
        if (rest.Length >= 4)
        {
            crc = Sse42.Crc32(crc, BinaryPrimitives.ReadUInt32LittleEndian(rest));
            rest = rest[4..];
        }
        foreach (byte b in rest)
            crc = Sse42.Crc32(crc, b);
        return crc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Shift(uint[] table, uint crc) =>
        table[(byte)crc] ^ table[256 + (byte)(crc >> 8)] ^ table[512 + (byte)(crc >> 16)] ^ table[768 + (crc >> 24)];

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            table[i] = c;
        }
        return table;
    }

    /// <summary>Table of the linear map "append <paramref name="zeroBytes"/> zero bytes to the register", one 256-entry part per register byte.</summary>
    private static uint[] BuildShiftTable(int zeroBytes)
    {
        var crcTable = BuildTable();
        var shift = new uint[1024];
        for (int part = 0; part < 4; part++)
        {
            for (uint b = 0; b < 256; b++)
            {
                uint c = b << (8 * part);
                for (int z = 0; z < zeroBytes; z++)
                    c = crcTable[(byte)c] ^ (c >> 8);
                shift[part * 256 + (int)b] = c;
            }
        }
        return shift;
    }
}
