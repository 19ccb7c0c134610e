using System.Text;
using Hybrid.Node.Resp;

namespace Hybrid.Resp.Tests;

public sealed class RespParserTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string[] ArgsOf(RespParser parser, ReadOnlySpan<byte> command)
    {
        var args = parser.Args(command);
        var result = new string[args.Count];
        for (var i = 0; i < args.Count; i++)
        {
            result[i] = Encoding.UTF8.GetString(args[i]);
        }
        return result;
    }

    [Fact]
    public void TryParse_MultiBulk_ReturnsArgumentsAndConsumedLength()
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");

        Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out var consumed));
        Assert.Equal(input.Length, consumed);
        Assert.Equal(["SET", "key", "value"], ArgsOf(parser, input));
    }

    [Fact]
    public void TryParse_BinaryValueWithCrlfInside_KeepsItWhole()
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B("*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n");

        Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out _));
        Assert.Equal(["ECHO", "a\r\nb"], ArgsOf(parser, input));
    }

    [Fact]
    public void TryParse_Pipeline_ParsesEachCommandInTurn()
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n");
        var names = new List<string>();
        var start = 0;
        while (start < input.Length)
        {
            var slice = input.AsSpan(start);
            Assert.Equal(RespParseStatus.Complete, parser.TryParse(slice, out var consumed));
            names.Add(string.Join(' ', ArgsOf(parser, slice)));
            start += consumed;
        }
        Assert.Equal(["PING", "GET k", "PING"], names);
    }

    [Fact]
    public void TryParse_EverySplitPoint_CompletesOnlyWhenWholeAndAgrees()
    {
        var whole = B("*3\r\n$3\r\nSET\r\n$10\r\nkey:000001\r\n$12\r\nhello\r\nworld\r\n");
        for (var split = 0; split < whole.Length; split++)
        {
            var parser = new RespParser(RespLimits.Default);
            // The first receive holds only `split` bytes; the second one the rest, after compaction.
            Assert.Equal(RespParseStatus.Incomplete, parser.TryParse(whole.AsSpan(0, split), out _));
            var moved = new byte[whole.Length + 7];
            whole.CopyTo(moved, 7);
            var again = moved.AsSpan(7);
            Assert.Equal(RespParseStatus.Complete, parser.TryParse(again, out var consumed));
            Assert.Equal(whole.Length, consumed);
            Assert.Equal(["SET", "key:000001", "hello\r\nworld"], ArgsOf(parser, again));
        }
    }

    [Fact]
    public void TryParse_ByteAtATime_CompletesAtTheLastByte()
    {
        var whole = B("*2\r\n$3\r\nGET\r\n$3\r\nabc\r\n");
        var parser = new RespParser(RespLimits.Default);
        for (var n = 1; n < whole.Length; n++)
        {
            Assert.Equal(RespParseStatus.Incomplete, parser.TryParse(whole.AsSpan(0, n), out _));
        }
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(whole, out var consumed));
        Assert.Equal(whole.Length, consumed);
        Assert.Equal(["GET", "abc"], ArgsOf(parser, whole));
    }

    [Fact]
    public void TryParse_Inline_SplitsOnSpacesAndHonoursQuotes()
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B("set  k \"hello world\" 'x'\r\n");

        Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out var consumed));
        Assert.Equal(input.Length, consumed);
        Assert.Equal(["set", "k", "hello world", "x"], ArgsOf(parser, input));
    }

    [Theory]
    // Redis's sdssplitargs: escapes in double quotes, only \' in single quotes, a quote may open mid-argument.
    [InlineData("SET k \"a b\\r\\n\"\r\n", new[] { "SET", "k", "a b\r\n" })]
    [InlineData("SET k \"\\x41\\x00\\x7a\"\r\n", new[] { "SET", "k", "A\0z" })]
    [InlineData("ECHO \"a\\\"b\"\r\n", new[] { "ECHO", "a\"b" })]
    [InlineData("ECHO 'a\\'b'\r\n", new[] { "ECHO", "a'b" })]
    [InlineData("ECHO 'a\\nb'\r\n", new[] { "ECHO", "a\\nb" })]
    [InlineData("ECHO \"\\t\\b\\a\\q\\xZZ\"\r\n", new[] { "ECHO", "\t\b\aqxZZ" })]
    [InlineData("ECHO a\"b c\" d\n", new[] { "ECHO", "ab c", "d" })]
    [InlineData("ECHO \"\" ''\r\n", new[] { "ECHO", "", "" })]
    public void TryParse_Inline_UnescapesAsRedisDoes_AndLeavesTheInputAsItWas(string line, string[] expected)
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B(line);
        var copy = input.ToArray();
        for (var round = 0; round < 2; round++) // a parked command is parsed again from the same bytes
        {
            Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out var consumed));
            Assert.Equal(input.Length, consumed);
            Assert.Equal(expected, ArgsOf(parser, input));
            Assert.Equal(copy, input);
        }
        // A multibulk command after it reads its own bytes again.
        var bulk = B("*2\r\n$4\r\nECHO\r\n$1\r\nz\r\n");
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(bulk, out _));
        Assert.Equal(["ECHO", "z"], ArgsOf(parser, bulk));
    }

    [Fact]
    public void TryParse_InlineWithBareNewline_IsAccepted()
    {
        var parser = new RespParser(RespLimits.Default);
        var input = B("PING\n");
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out var consumed));
        Assert.Equal(5, consumed);
        Assert.Equal(["PING"], ArgsOf(parser, input));
    }

    [Fact]
    public void TryParse_BlankLineAndEmptyMultiBulk_CompleteWithNoArguments()
    {
        var parser = new RespParser(RespLimits.Default);
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(B("\r\n"), out var c1));
        Assert.Equal(2, c1);
        Assert.Equal(0, parser.ArgCount);
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(B("*0\r\n"), out var c2));
        Assert.Equal(4, c2);
        Assert.Equal(0, parser.ArgCount);
    }

    [Fact]
    public void TryParse_InlineWithoutNewline_IsIncomplete()
    {
        var parser = new RespParser(RespLimits.Default);
        Assert.Equal(RespParseStatus.Incomplete, parser.TryParse(B("GET ke"), out _));
    }

    [Theory]
    [InlineData("*2\r\n$3\r\nGET\r\n$600\r\n", "Protocol error: invalid bulk length")]
    [InlineData("*2\r\n$3\r\nGET\r\n$-5\r\n", "Protocol error: invalid bulk length")]
    [InlineData("*9\r\n", "Protocol error: invalid multibulk length")]
    [InlineData("*x\r\n", "Protocol error: invalid multibulk length")]
    [InlineData("*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'")]
    [InlineData("*1\r\n$4\r\nPINGxx", "Protocol error: bulk string not terminated by CRLF")]
    [InlineData("*1\r\n$12345678901234567890123\r\n", "Protocol error: invalid bulk length")]
    [InlineData("set k \"abc\r\n", "Protocol error: unbalanced quotes in request")]
    [InlineData("set k \"abc\\\"\r\n", "Protocol error: unbalanced quotes in request")]
    [InlineData("set k \"abc\"d\r\n", "Protocol error: unbalanced quotes in request")]
    [InlineData("set k 'abc\r\n", "Protocol error: unbalanced quotes in request")]
    public void TryParse_ViolationOrLimit_ReportsProtocolError(string input, string error)
    {
        var parser = new RespParser(new RespLimits(MaxBulkLength: 512, MaxArgs: 8, MaxInlineLength: 64));
        Assert.Equal(RespParseStatus.ProtocolError, parser.TryParse(B(input), out _));
        Assert.Equal(error, parser.Error);
    }

    [Fact]
    public void TryParse_InlineLongerThanLimit_ReportsProtocolErrorEvenWithoutNewline()
    {
        var parser = new RespParser(new RespLimits(MaxInlineLength: 64));
        Assert.Equal(RespParseStatus.ProtocolError, parser.TryParse(B(new string('a', 100)), out _));
        Assert.Equal("Protocol error: too big inline request", parser.Error);
    }

    [Fact]
    public void TryParse_ManyArguments_GrowsTheTables()
    {
        var sb = new StringBuilder("*2001\r\n$4\r\nMSET\r\n");
        for (var i = 0; i < 1000; i++)
        {
            sb.Append($"$1\r\nk\r\n$3\r\n{i % 1000:000}\r\n");
        }
        var input = B(sb.ToString());
        var parser = new RespParser(RespLimits.Default);
        Assert.Equal(RespParseStatus.Complete, parser.TryParse(input, out var consumed));
        Assert.Equal(input.Length, consumed);
        Assert.Equal(2001, parser.ArgCount);
        Assert.Equal("999", Encoding.UTF8.GetString(parser.Args(input)[2000]));
    }
}
