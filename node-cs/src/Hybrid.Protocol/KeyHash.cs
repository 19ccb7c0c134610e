using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hybrid.Protocol;

/// <summary>
/// The node's 64-bit key hash, defined over 32-bit lanes so that eight keys can be hashed at once with AVX2
/// (gathering one 4-byte word of each key per step). Two independent 32-bit streams (a Murmur3-style one and an
/// xxHash32-style one) form the high and low halves. Not cryptographic. <see cref="Hash64"/> is the scalar
/// reference; <see cref="HashBatch"/> must give the same values for every key.
/// </summary>
/// <remarks>
/// Keys are given as (offset, length) pairs into one buffer — the received frame — so no key is copied. The
/// vector path reads whole 4-byte words: a key's last word may read up to 3 bytes past the key, so a group of
/// eight keys is vectorised only when every such word lies inside the buffer; otherwise it is hashed scalar.
/// </remarks>
public static class KeyHash
{
    private const uint C1 = 0xcc9e2d51, C2 = 0x1b873593, C3 = 0xe6546b64;
    private const uint P1 = 0x9E3779B1, P2 = 0x85EBCA77;
    private const uint SeedA = 0x9747b28c, SeedB = 0x2545F491;

    /// <summary>True when <see cref="HashBatch"/> runs eight keys per step.</summary>
    public static bool IsHardwareAccelerated => Avx2.IsSupported;

    /// <summary>The scalar reference hash of one key.</summary>
    public static ulong Hash64(ReadOnlySpan<byte> key)
    {
        uint a = SeedA, b = SeedB;
        int i = 0;
        for (; i + 4 <= key.Length; i += 4)
            Round(ref a, ref b, BinaryPrimitives.ReadUInt32LittleEndian(key[i..]));
        if (i < key.Length)
        {
            uint w = 0;
            for (int j = key.Length - 1; j >= i; j--)
                w = (w << 8) | key[j];
            Round(ref a, ref b, w);
        }
        return Finish(a, b, (uint)key.Length);
    }

    /// <summary>Hashes keys one at a time with <see cref="Hash64"/>.</summary>
    public static void HashBatchScalar(ReadOnlySpan<byte> buffer, ReadOnlySpan<int> offsets, ReadOnlySpan<int> lengths, Span<ulong> hashes)
    {
        for (int k = 0; k < offsets.Length; k++)
            hashes[k] = Hash64(buffer.Slice(offsets[k], lengths[k]));
    }

    /// <summary>Hashes every key (offset, length) of <paramref name="buffer"/> into <paramref name="hashes"/>, eight per step with AVX2.</summary>
    public static unsafe void HashBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<int> offsets, ReadOnlySpan<int> lengths, Span<ulong> hashes)
    {
        if (offsets.Length != lengths.Length || hashes.Length < offsets.Length)
            throw new ArgumentException("offsets, lengths and hashes must have matching lengths");
        int k = 0;
        if (Avx2.IsSupported)
        {
            fixed (byte* basePtr = buffer)
            fixed (int* offPtr = offsets)
            fixed (int* lenPtr = lengths)
            fixed (ulong* outPtr = hashes)
            {
                for (; k + 8 <= offsets.Length; k += 8)
                {
                    if (!GroupFits(buffer.Length, offsets.Slice(k, 8), lengths.Slice(k, 8)))
                    {
                        HashBatchScalar(buffer, offsets.Slice(k, 8), lengths.Slice(k, 8), hashes.Slice(k, 8));
                        continue;
                    }
                    HashEight(basePtr, Avx.LoadVector256(offPtr + k), Avx.LoadVector256(lenPtr + k), outPtr + k);
                }
            }
        }
        HashBatchScalar(buffer, offsets[k..], lengths[k..], hashes[k..]);
    }

    private static bool GroupFits(int bufferLength, ReadOnlySpan<int> offsets, ReadOnlySpan<int> lengths)
    {
        for (int i = 0; i < 8; i++)
        {
            long end = (long)offsets[i] + ((lengths[i] + 3) & ~3);
            if (offsets[i] < 0 || lengths[i] < 0 || end > bufferLength)
                return false;
        }
        return true;
    }

    private static unsafe void HashEight(byte* basePtr, Vector256<int> offsets, Vector256<int> lengths, ulong* output)
    {
        var a = Vector256.Create(SeedA);
        var b = Vector256.Create(SeedB);
        var len = lengths.AsUInt32();
        int maxLength = 0;
        for (int i = 0; i < 8; i++)
            maxLength = Math.Max(maxLength, lengths.GetElement(i));
        var thirtyTwo = Vector256.Create(32);
        for (int at = 0; at < maxLength; at += 4)
        {
            var remaining = lengths - Vector256.Create(at);
            var active = Avx2.CompareGreaterThan(remaining, Vector256<int>.Zero);
            var word = Avx2.GatherMaskVector256(Vector256<int>.Zero, (int*)basePtr, offsets + Vector256.Create(at), active, 1).AsUInt32();
            // Keep only the key's bytes of a partial last word: shift count 32 - 8*remaining, floored at 0.
            var drop = Avx2.Max(thirtyTwo - Avx2.ShiftLeftLogical(remaining, 3), Vector256<int>.Zero).AsUInt32();
            word &= Avx2.ShiftRightLogicalVariable(Vector256<uint>.AllBitsSet, drop);
            var na = a;
            var nb = b;
            RoundVector(ref na, ref nb, word);
            a = Avx2.BlendVariable(a.AsByte(), na.AsByte(), active.AsByte()).AsUInt32();
            b = Avx2.BlendVariable(b.AsByte(), nb.AsByte(), active.AsByte()).AsUInt32();
        }
        FinishVector(ref a, ref b, len);
        // Interleave (low = b, high = a) into ulongs; AVX2 unpack works per 128-bit half, so fix the order.
        var lo = Avx2.UnpackLow(b, a).AsUInt64();
        var hi = Avx2.UnpackHigh(b, a).AsUInt64();
        Avx.Store(output, Avx2.Permute2x128(lo, hi, 0x20));
        Avx.Store(output + 4, Avx2.Permute2x128(lo, hi, 0x31));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(ref uint a, ref uint b, uint w)
    {
        uint k = BitOperations.RotateLeft(w * C1, 15) * C2;
        a = BitOperations.RotateLeft(a ^ k, 13) * 5 + C3;
        b = BitOperations.RotateLeft(b + w * P2, 13) * P1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RoundVector(ref Vector256<uint> a, ref Vector256<uint> b, Vector256<uint> w)
    {
        var k = RotateLeft(w * Vector256.Create(C1), 15) * Vector256.Create(C2);
        a = RotateLeft(a ^ k, 13) * Vector256.Create(5u) + Vector256.Create(C3);
        b = RotateLeft(b + w * Vector256.Create(P2), 13) * Vector256.Create(P1);
    }

    private static ulong Finish(uint a, uint b, uint length)
    {
        a = Mix(a ^ length);
        b = Mix(b ^ length ^ BitOperations.RotateLeft(a, 16));
        return ((ulong)a << 32) | b;
    }

    private static void FinishVector(ref Vector256<uint> a, ref Vector256<uint> b, Vector256<uint> length)
    {
        a = MixVector(a ^ length);
        b = MixVector(b ^ length ^ RotateLeft(a, 16));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mix(uint h)
    {
        h ^= h >> 16;
        h *= 0x85ebca6b;
        h ^= h >> 13;
        h *= 0xc2b2ae35;
        return h ^ (h >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> MixVector(Vector256<uint> h)
    {
        h ^= Vector256.ShiftRightLogical(h, 16);
        h *= Vector256.Create(0x85ebca6bu);
        h ^= Vector256.ShiftRightLogical(h, 13);
        h *= Vector256.Create(0xc2b2ae35u);
        return h ^ Vector256.ShiftRightLogical(h, 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RotateLeft(Vector256<uint> x, byte count) =>
        Vector256.ShiftLeft(x, count) | Vector256.ShiftRightLogical(x, 32 - count);
}
