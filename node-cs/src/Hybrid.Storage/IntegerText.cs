using System.Buffers.Text;

namespace Hybrid.Storage;

/// <summary>
/// Redis-compatible ASCII decimal integers (Redis's <c>string2ll</c>): optional '-', no '+', no spaces, no leading
/// zeros, no "-0", fits in i64. Stored values that INCR counts and every integer argument of a RESP command.
/// </summary>
public static class IntegerText
{
    public const int MaxDigits = 20;

    public static bool TryParse(ReadOnlySpan<byte> text, out long value)
    {
        value = 0;
        if (text.IsEmpty || text.Length > MaxDigits)
            return false;
        bool negative = text[0] == (byte)'-';
        ReadOnlySpan<byte> digits = negative ? text[1..] : text;
        if (digits.IsEmpty || (digits[0] == (byte)'0' && (digits.Length > 1 || negative)))
            return false;
        ulong magnitude = 0;
        foreach (byte b in digits)
        {
            uint d = (uint)(b - '0');
            if (d > 9 || magnitude > (ulong.MaxValue - d) / 10)
                return false;
            magnitude = magnitude * 10 + d;
        }
        if (negative)
        {
            if (magnitude > (ulong)long.MaxValue + 1)
                return false;
            value = (long)(0 - magnitude);
        }
        else
        {
            if (magnitude > long.MaxValue)
                return false;
            value = (long)magnitude;
        }
        return true;
    }

    public static int Length(long value)
    {
        Span<byte> tmp = stackalloc byte[MaxDigits];
        Utf8Formatter.TryFormat(value, tmp, out int written);
        return written;
    }

    public static int Format(long value, Span<byte> dst)
    {
        Utf8Formatter.TryFormat(value, dst, out int written);
        return written;
    }
}
