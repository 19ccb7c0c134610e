using System.Runtime.CompilerServices;

namespace Hybrid.Node.Resp;

/// <summary>Outcome of one <see cref="RespParser.TryParse"/> call.</summary>
public enum RespParseStatus
{
    /// <summary>One whole command was parsed; its arguments are in <see cref="RespParser.Args"/>.</summary>
    Complete,

    /// <summary>The input holds only part of a command: receive more and call again with the same start.</summary>
    Incomplete,

    /// <summary>The input breaks the protocol or a limit; reply <see cref="RespParser.Error"/> and close.</summary>
    ProtocolError,
}

/// <summary>Limits a RESP connection enforces on requests (Redis defaults where Redis has one).</summary>
/// <param name="MaxBulkLength">Largest bulk string accepted (Redis <c>proto-max-bulk-len</c>).</param>
/// <param name="MaxArgs">Largest argument count of one command (Redis allows 1024*1024).</param>
/// <param name="MaxInlineLength">Longest inline (telnet-style) command line.</param>
/// <param name="MaxReplyBytes">
/// Largest reply of one command (a larger one is refused with an error), and the replies a pipeline may pile up before
/// the connection stops reading commands until they are sent.
/// </param>
public sealed record RespLimits(int MaxBulkLength = 512 * 1024 * 1024, int MaxArgs = 1024 * 1024, int MaxInlineLength = 64 * 1024, int MaxReplyBytes = 64 << 20)
{
    /// <summary>The limits used when nothing else is configured.</summary>
    public static readonly RespLimits Default = new();

    /// <summary>
    /// What a connection may send before it authenticated (as Redis 7 does: 10 arguments, 16 KiB bulks), so that
    /// unauthenticated clients cannot make the node buffer megabytes each.
    /// </summary>
    public static readonly RespLimits Unauthenticated = new(MaxBulkLength: 16 * 1024, MaxArgs: 10, MaxInlineLength: 16 * 1024);
}

/// <summary>
/// Parses RESP requests (multibulk arrays of bulk strings, and inline commands) straight from a
/// receive buffer. Arguments are recorded as (offset, length) pairs into that buffer, so parsing
/// allocates nothing per request; the argument tables grow only when a command has more
/// arguments than any before it on this connection.
/// </summary>
/// <remarks>
/// One parser per connection; not thread-safe. When a command is split across receives the
/// parser keeps how far it got (relative to the command's first byte), so the caller must pass
/// the same command start again, with more bytes after it; it may move the bytes (compact the
/// buffer) in between, because every recorded position is relative to the command's start.
/// </remarks>
public sealed class RespParser
{
    private const int MaxHeaderDigits = 20;

    private int[] _argOffsets = new int[16];
    private int[] _argLengths = new int[16];
    private int _argCount;

    // The last command was inline: its arguments, unescaped, are in _inline (grown once per connection as needed).
    private bool _inlineArgs;
    private byte[] _inline = [];

    // Resume state of a multibulk command split across receives (relative to the command start).
    private int _expectedArgs = -1;
    private int _resumePosition;

    /// <summary>Creates a parser that enforces <paramref name="limits"/>.</summary>
    public RespParser(RespLimits limits) => Limits = limits;

    /// <summary>The limits enforced from the next command on (the session switches them once it authenticated).</summary>
    public RespLimits Limits { get; set; }

    /// <summary>The protocol error text (without the leading '-') after <see cref="RespParseStatus.ProtocolError"/>.</summary>
    public string Error { get; private set; } = "";

    /// <summary>Number of arguments of the last complete command (the command name included).</summary>
    public int ArgCount => _argCount;

    /// <summary>
    /// The arguments of the last complete command as slices of <paramref name="command"/>, which must
    /// be the same span (starting at the command's first byte) that was passed to <see cref="TryParse"/>.
    /// </summary>
    public RespArgs Args(ReadOnlySpan<byte> command) => new(_inlineArgs ? _inline : command, _argOffsets, _argLengths, _argCount);

    /// <summary>
    /// Tries to parse one command at the start of <paramref name="input"/>. On
    /// <see cref="RespParseStatus.Complete"/>, <paramref name="consumed"/> is the command's length
    /// in bytes. An empty command (a blank inline line, or <c>*0</c>) completes with zero arguments:
    /// the caller skips it.
    /// </summary>
    public RespParseStatus TryParse(ReadOnlySpan<byte> input, out int consumed)
    {
        consumed = 0;
        if (input.IsEmpty)
        {
            return RespParseStatus.Incomplete;
        }
        return input[0] == (byte)'*' ? ParseMultiBulk(input, out consumed) : ParseInline(input, out consumed);
    }

    private RespParseStatus ParseMultiBulk(ReadOnlySpan<byte> input, out int consumed)
    {
        consumed = 0;
        _inlineArgs = false;
        int pos;
        if (_expectedArgs < 0)
        {
            var header = ReadHeaderNumber(input, 1, out var count, out pos);
            if (header != RespParseStatus.Complete)
            {
                return header == RespParseStatus.ProtocolError ? Fail("Protocol error: invalid multibulk length") : header;
            }
            if (count > Limits.MaxArgs)
            {
                return Fail("Protocol error: invalid multibulk length");
            }
            if (count <= 0)
            {
                _argCount = 0;
                consumed = pos;
                return RespParseStatus.Complete;
            }
            _expectedArgs = (int)count;
            _argCount = 0;
            EnsureArgCapacity(Math.Min(_expectedArgs, 1024));
        }
        else
        {
            pos = _resumePosition;
        }

        while (_argCount < _expectedArgs)
        {
            if (pos >= input.Length)
            {
                return Suspend(pos);
            }
            if (input[pos] != (byte)'$')
            {
                return Fail($"Protocol error: expected '$', got '{(char)input[pos]}'");
            }
            var header = ReadHeaderNumber(input, pos + 1, out var length, out var dataStart);
            if (header == RespParseStatus.Incomplete)
            {
                return Suspend(pos);
            }
            if (header == RespParseStatus.ProtocolError || length < 0 || length > Limits.MaxBulkLength)
            {
                return Fail("Protocol error: invalid bulk length");
            }
            var end = (long)dataStart + length + 2;
            if (end > input.Length)
            {
                return Suspend(pos);
            }
            if (input[dataStart + (int)length] != (byte)'\r' || input[dataStart + (int)length + 1] != (byte)'\n')
            {
                return Fail("Protocol error: bulk string not terminated by CRLF");
            }
            AddArg(dataStart, (int)length);
            pos = (int)end;
        }

        _expectedArgs = -1;
        _resumePosition = 0;
        consumed = pos;
        return RespParseStatus.Complete;
    }

    private RespParseStatus Suspend(int position)
    {
        _resumePosition = position;
        return RespParseStatus.Incomplete;
    }

    /// <summary>
    /// Reads a decimal integer (optionally negative) that starts at <paramref name="start"/> and ends
    /// with CRLF. <paramref name="next"/> is the position after the CRLF.
    /// </summary>
    private static RespParseStatus ReadHeaderNumber(ReadOnlySpan<byte> input, int start, out long value, out int next)
    {
        value = 0;
        next = 0;
        var i = start;
        var negative = false;
        if (i < input.Length && input[i] == (byte)'-')
        {
            negative = true;
            i++;
        }
        var digitsStart = i;
        while (i < input.Length)
        {
            var c = input[i];
            if (c == (byte)'\r')
            {
                if (i + 1 >= input.Length)
                {
                    return RespParseStatus.Incomplete;
                }
                if (input[i + 1] != (byte)'\n' || i == digitsStart)
                {
                    return RespParseStatus.ProtocolError;
                }
                value = negative ? -value : value;
                next = i + 2;
                return RespParseStatus.Complete;
            }
            if (c < (byte)'0' || c > (byte)'9' || i - digitsStart >= MaxHeaderDigits - 2)
            {
                return RespParseStatus.ProtocolError;
            }
            value = (value * 10) + (c - '0');
            i++;
        }
        return RespParseStatus.Incomplete;
    }

    /// <summary>
    /// An inline (telnet-style) command line, split as Redis's <c>sdssplitargs</c> does: arguments separated by
    /// spaces; double quotes take the escapes <c>\xHH \n \r \t \b \a</c> and <c>\</c> before any other character;
    /// single quotes take only <c>\'</c>; a quote may open in the middle of an argument, and a closing quote must be
    /// followed by a space or the end of the line. The arguments are copied to <see cref="_inline"/> (escapes make them
    /// differ from the input, which stays as it was: a parked multi-key command is parsed again from it).
    /// </summary>
    private RespParseStatus ParseInline(ReadOnlySpan<byte> input, out int consumed)
    {
        consumed = 0;
        var newline = input.IndexOf((byte)'\n');
        if (newline < 0)
        {
            return input.Length > Limits.MaxInlineLength ? Fail("Protocol error: too big inline request") : RespParseStatus.Incomplete;
        }
        if (newline > Limits.MaxInlineLength)
        {
            return Fail("Protocol error: too big inline request");
        }
        var lineEnd = newline > 0 && input[newline - 1] == (byte)'\r' ? newline - 1 : newline;
        if (_inline.Length < lineEnd)
        {
            _inline = new byte[Math.Max(lineEnd, Math.Min(2 * _inline.Length, Limits.MaxInlineLength))];
        }
        _argCount = 0;
        _inlineArgs = true;
        var i = 0;
        var written = 0;
        while (true)
        {
            while (i < lineEnd && IsInlineSpace(input[i]))
            {
                i++;
            }
            if (i >= lineEnd)
            {
                break;
            }
            if (_argCount >= Limits.MaxArgs)
            {
                return Fail("Protocol error: invalid multibulk length");
            }
            var start = written;
            byte quote = 0;
            while (true)
            {
                if (i >= lineEnd)
                {
                    if (quote != 0)
                    {
                        return Fail("Protocol error: unbalanced quotes in request");
                    }
                    break;
                }
                var c = input[i];
                if (quote == 0)
                {
                    if (IsInlineSpace(c))
                    {
                        break;
                    }
                    if (c is (byte)'"' or (byte)'\'')
                    {
                        quote = c;
                    }
                    else
                    {
                        _inline[written++] = c;
                    }
                    i++;
                }
                else if (c == quote)
                {
                    // The closing quote ends the argument: a space or the end of the line must follow.
                    i++;
                    if (i < lineEnd && !IsInlineSpace(input[i]))
                    {
                        return Fail("Protocol error: unbalanced quotes in request");
                    }
                    break;
                }
                else if (c == (byte)'\\' && i + 1 < lineEnd && quote == (byte)'"')
                {
                    if (input[i + 1] == (byte)'x' && i + 3 < lineEnd && IsHex(input[i + 2]) && IsHex(input[i + 3]))
                    {
                        _inline[written++] = (byte)((HexValue(input[i + 2]) << 4) | HexValue(input[i + 3]));
                        i += 4;
                    }
                    else
                    {
                        _inline[written++] = input[i + 1] switch
                        {
                            (byte)'n' => (byte)'\n',
                            (byte)'r' => (byte)'\r',
                            (byte)'t' => (byte)'\t',
                            (byte)'b' => (byte)'\b',
                            (byte)'a' => (byte)'\a',
                            var other => other,
                        };
                        i += 2;
                    }
                }
                else if (c == (byte)'\\' && i + 1 < lineEnd && quote == (byte)'\'' && input[i + 1] == (byte)'\'')
                {
                    _inline[written++] = (byte)'\'';
                    i += 2;
                }
                else
                {
                    _inline[written++] = c;
                    i++;
                }
            }
            AddArg(start, written - start);
        }
        consumed = newline + 1;
        return RespParseStatus.Complete;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsInlineSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n' or (byte)'\v' or (byte)'\f';

    private static bool IsHex(byte c) => char.IsAsciiHexDigit((char)c);

    private static int HexValue(byte c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AddArg(int offset, int length)
    {
        if (_argCount == _argOffsets.Length)
        {
            EnsureArgCapacity(_argCount * 2);
        }
        _argOffsets[_argCount] = offset;
        _argLengths[_argCount] = length;
        _argCount++;
    }

    private void EnsureArgCapacity(int capacity)
    {
        if (capacity > _argOffsets.Length)
        {
            Array.Resize(ref _argOffsets, capacity);
            Array.Resize(ref _argLengths, capacity);
        }
    }

    private RespParseStatus Fail(string error)
    {
        Error = error;
        _expectedArgs = -1;
        _resumePosition = 0;
        _argCount = 0;
        return RespParseStatus.ProtocolError;
    }
}

/// <summary>The arguments of one parsed command: zero-copy slices of the receive buffer.</summary>
/// <remarks>Valid only until the receive buffer is reused (the next receive or compaction).</remarks>
public readonly ref struct RespArgs
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly int[] _offsets;
    private readonly int[] _lengths;

    internal RespArgs(ReadOnlySpan<byte> buffer, int[] offsets, int[] lengths, int count)
    {
        _buffer = buffer;
        _offsets = offsets;
        _lengths = lengths;
        Count = count;
    }

    /// <summary>Number of arguments, the command name included.</summary>
    public int Count { get; }

    /// <summary>Argument <paramref name="index"/> (0 is the command name).</summary>
    public ReadOnlySpan<byte> this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer.Slice(_offsets[index], _lengths[index]);
    }
}
