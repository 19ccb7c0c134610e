using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// Vectorised aggregates over record bytes (System.Numerics.Vector, which uses AVX2/SSE on x64).
/// Each has a scalar twin in the tests; both must agree on every input.
/// </summary>
public static class Aggregate
{
    /// <summary>Sums 64-bit integers (wrapping on overflow).</summary>
    public static long Sum(ReadOnlySpan<long> values)
    {
        var acc = Vector<long>.Zero;
        var i = 0;
        for (; i + Vector<long>.Count <= values.Length; i += Vector<long>.Count)
        {
            acc += new Vector<long>(values[i..]);
        }
        var sum = Vector.Sum(acc);
        for (; i < values.Length; i++)
        {
            sum += values[i];
        }
        return sum;
    }

    /// <summary>Sums the little-endian int64s packed in <paramref name="bytes"/> (a trailing partial one is ignored).</summary>
    public static long SumInt64(ReadOnlySpan<byte> bytes)
    {
        var whole = bytes[..(bytes.Length & ~7)];
        if (BitConverter.IsLittleEndian)
        {
            return Sum(MemoryMarshal.Cast<byte, long>(whole));
        }
        long sum = 0;
        for (var i = 0; i < whole.Length; i += 8)
        {
            sum += BinaryPrimitives.ReadInt64LittleEndian(whole[i..]);
        }
        return sum;
    }

    /// <summary>Sums the little-endian int32s packed in <paramref name="bytes"/> into an int64 (no overflow below 2^32 values).</summary>
    public static long SumInt32(ReadOnlySpan<byte> bytes)
    {
        var whole = bytes[..(bytes.Length & ~3)];
        long sum = 0;
        var i = 0;
        if (BitConverter.IsLittleEndian)
        {
            var ints = MemoryMarshal.Cast<byte, int>(whole);
            var acc = Vector<long>.Zero;
            for (; i + Vector<int>.Count <= ints.Length; i += Vector<int>.Count)
            {
                Vector.Widen(new Vector<int>(ints[i..]), out var lo, out var hi);
                acc += lo + hi;
            }
            sum = Vector.Sum(acc);
            i *= 4;
        }
        for (; i < whole.Length; i += 4)
        {
            sum += BinaryPrimitives.ReadInt32LittleEndian(whole[i..]);
        }
        return sum;
    }

    /// <summary>
    /// Sums the little-endian int64 field at <paramref name="offset"/> of fixed-size records packed in
    /// <paramref name="records"/> (<paramref name="stride"/> bytes each); a trailing partial record is ignored.
    /// </summary>
    public static long SumInt64Field(ReadOnlySpan<byte> records, int stride, int offset)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, offset + 8);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        // Strided fields: four independent accumulators keep the loads in flight; a gather buys nothing here.
        long s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        var count = records.Length / stride;
        var i = 0;
        for (; i + 4 <= count; i += 4)
        {
            var at = (i * stride) + offset;
            s0 += BinaryPrimitives.ReadInt64LittleEndian(records[at..]);
            s1 += BinaryPrimitives.ReadInt64LittleEndian(records[(at + stride)..]);
            s2 += BinaryPrimitives.ReadInt64LittleEndian(records[(at + (2 * stride))..]);
            s3 += BinaryPrimitives.ReadInt64LittleEndian(records[(at + (3 * stride))..]);
        }
        for (; i < count; i++)
        {
            s0 += BinaryPrimitives.ReadInt64LittleEndian(records[((i * stride) + offset)..]);
        }
        return s0 + s1 + s2 + s3;
    }
}
