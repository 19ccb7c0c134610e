using System.Buffers.Text;

namespace Hybrid.Cli.Bench;

/// <summary>Benchmark keys: "user" + the record number in 12 zero-padded digits (16 bytes), written in place.</summary>
internal static class KeyFormat
{
    /// <summary>Bytes per key.</summary>
    public const int Length = 16;

    private const int Digits = 12;

    /// <summary>Writes key number <paramref name="index"/> (0 ≤ index &lt; 10^12) into the first 16 bytes of <paramref name="destination"/>.</summary>
    public static void Write(long index, Span<byte> destination)
    {
        "user"u8.CopyTo(destination);
        if (!Utf8Formatter.TryFormat(index, destination.Slice(4, Digits), out int written, new System.Buffers.StandardFormat('D', Digits)) || written != Digits)
            throw new ArgumentOutOfRangeException(nameof(index), "key numbers have at most 12 digits");
    }
}
