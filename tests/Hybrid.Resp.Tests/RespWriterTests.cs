using System.Text;
using Hybrid.Node.Resp;

namespace Hybrid.Resp.Tests;

public sealed class RespWriterTests
{
    private static string Text(RespWriter w) => Encoding.UTF8.GetString(w.WrittenSpan);

    [Fact]
    public void Writes_Resp2Shapes()
    {
        using var w = new RespWriter(8);
        w.WriteOk();
        w.WriteInteger(-42);
        w.WriteBulk("héllo"u8);
        w.WriteNull();
        w.WriteArrayHeader(2);
        w.WriteMapHeader(2);
        w.WriteError("ERR bad"u8);
        w.WriteBulkInteger(1234567890123);
        Assert.Equal("+OK\r\n:-42\r\n$6\r\nhéllo\r\n$-1\r\n*2\r\n*4\r\n-ERR bad\r\n$13\r\n1234567890123\r\n", Text(w));
    }

    [Fact]
    public void Writes_Resp3Shapes()
    {
        using var w = new RespWriter { Protocol = 3 };
        w.WriteNull();
        w.WriteMapHeader(2);
        w.WriteSetHeader(1);
        w.WriteVerbatim("a");
        Assert.Equal("_\r\n%2\r\n~1\r\n=5\r\ntxt:a\r\n", Text(w));
    }

    [Fact]
    public void WriteBulkHeaderAndReserve_LeavesRoomForTheValue()
    {
        using var w = new RespWriter(4);
        "abc"u8.CopyTo(w.WriteBulkHeaderAndReserve(3));
        Assert.Equal("$3\r\nabc\r\n", Text(w));
    }

    [Fact]
    public void Grows_PastTheInitialBufferAndKeepsEarlierBytes()
    {
        using var w = new RespWriter(16);
        var big = new byte[100_000];
        Array.Fill(big, (byte)'x');
        w.WriteOk();
        w.WriteBulk(big);
        Assert.Equal(5 + 9 + 100_000 + 2, w.Length);
        Assert.StartsWith("+OK\r\n$100000\r\nxxx", Text(w));
        w.Clear();
        Assert.Equal(0, w.Length);
    }

    [Fact]
    public void BeginBulkValue_CapturesAValueWrittenInPiecesAcrossGrowth()
    {
        using var w = new RespWriter(32);
        w.WriteOk();
        var value = Enumerable.Range(0, 50_000).Select(i => (byte)('a' + (i % 26))).ToArray();
        System.Buffers.BuffersExtensions.Write(w.BeginBulkValue(), value);
        w.EndBulkValue();
        w.BeginBulkValue();
        w.CancelBulkValue();
        w.WriteInteger(7);
        Assert.Equal("+OK\r\n$50000\r\n" + Encoding.ASCII.GetString(value) + "\r\n:7\r\n", Text(w));
    }
}
