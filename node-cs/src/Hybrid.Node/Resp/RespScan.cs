namespace Hybrid.Node.Resp;

/// <summary>
/// A forgiving look at a pipelined RESP command ahead of the parser (<see cref="RespParser"/> remains the judge of
/// what is valid): only its name, its first argument and its length, for prefetching. Never throws, never reads
/// outside the input.
/// </summary>
public static class RespScan
{
    /// <summary>Longest bulk length the scan follows (a larger argument stops the lookahead; the parser handles it).</summary>
    private const int MaxBulk = 1 << 20;

    /// <summary>
    /// True when a complete multibulk command (<c>*N</c> of <c>$len</c> bulks) starts at <paramref name="at"/>:
    /// <paramref name="name"/> is its first bulk, <paramref name="key"/> its second (empty when N is 1) and
    /// <paramref name="next"/> where the following command starts.
    /// </summary>
    public static bool TryCommand(ReadOnlySpan<byte> input, int at, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> key, out int next)
    {
        name = key = default;
        next = 0;
        if (at < 0 || at >= input.Length || input[at] != (byte)'*' || !TryNumber(input, at + 1, out int count, out int pos) || count < 1 || count > 1024)
            return false;
        (int Start, int Length) first = default, second = default;
        for (int i = 0; i < count; i++)
        {
            if (pos >= input.Length || input[pos] != (byte)'$' || !TryNumber(input, pos + 1, out int length, out int data) || length > MaxBulk)
                return false;
            long end = (long)data + length + 2;
            if (end > input.Length)
                return false;
            if (i == 0)
                first = (data, length);
            else if (i == 1)
                second = (data, length);
            pos = (int)end;
        }
        name = input.Slice(first.Start, first.Length);
        key = input.Slice(second.Start, second.Length);
        next = pos;
        return true;
    }

    /// <summary>A decimal number ending in CRLF at <paramref name="at"/>; <paramref name="after"/> is past the CRLF.</summary>
    private static bool TryNumber(ReadOnlySpan<byte> input, int at, out int value, out int after)
    {
        value = 0;
        after = 0;
        int i = at;
        for (; i < input.Length && i - at < 9; i++)
        {
            byte c = input[i];
            if (c == (byte)'\r')
                break;
            if (c < (byte)'0' || c > (byte)'9')
                return false;
            value = (value * 10) + (c - '0');
        }
        if (i == at || i + 1 >= input.Length || input[i] != (byte)'\r' || input[i + 1] != (byte)'\n')
            return false;
        after = i + 2;
        return true;
    }
}
