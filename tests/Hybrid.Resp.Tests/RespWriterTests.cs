using System.Text;
using Hybrid.Node.Resp;
using Hybrid.Protocol;

namespace Hybrid.Resp.Tests;

public sealed class RespWriterTests
{
    private static string Text(RespWriter w) => Encoding.UTF8.GetString(w.Target.Written);

    [Fact]
    public void Writes_Resp2Shapes()
    {
        var w = new RespWriter(new FrameBuffer(8));
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
    public void AnErrorFromText_StaysOneLine_AndIsCut()
    {
        // An extension threw "line1\r\n:42\r\n+INJECTED": its FCALL error ended early, and the client read ":42" and
        // "+INJECTED" as the replies of its next two commands (found by an exploratory run).
        var w = new RespWriter(new FrameBuffer(8));
        w.WriteError("ERR extension failed: line1\r\n:42\r\n+INJECTED");
        Assert.Equal("-ERR extension failed: line1  :42  +INJECTED\r\n", Text(w));
        var long_ = new RespWriter(new FrameBuffer(8));
        long_.WriteError("ERR " + new string('x', 1 << 20));
        Assert.Equal(1 + RespWriter.MaxErrorChars + 3 + 2, long_.Length);
        Assert.EndsWith("xxx...\r\n", Text(long_));
    }

    [Fact]
    public void Writes_Resp3Shapes()
    {
        var w = new RespWriter(new FrameBuffer()) { Protocol = 3 };
        w.WriteNull();
        w.WriteMapHeader(2);
        w.WriteSetHeader(1);
        w.WriteVerbatim("a");
        Assert.Equal("_\r\n%2\r\n~1\r\n=5\r\ntxt:a\r\n", Text(w));
    }

    [Fact]
    public void Grows_PastTheInitialBufferAndKeepsEarlierBytes()
    {
        var w = new RespWriter(new FrameBuffer(16));
        var big = new byte[100_000];
        Array.Fill(big, (byte)'x');
        w.WriteOk();
        w.WriteBulk(big);
        Assert.Equal(5 + 9 + 100_000 + 2, w.Length);
        Assert.StartsWith("+OK\r\n$100000\r\nxxx", Text(w));
    }

    [Fact]
    public void BeginBulkValue_CapturesAValueWrittenInPiecesAcrossGrowth()
    {
        var w = new RespWriter(new FrameBuffer(32));
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
