using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Protocol;

public class CodecTests
{
    private static readonly ProtocolLimits s_limits = ProtocolLimits.Default;

    [Fact]
    public void RequestFrame_RoundTrips_EveryField()
    {
        using var buffer = new FrameBuffer(64);
        int start = buffer.BeginFrame();
        buffer.AppendRequest(OpCode.Put, 3, "k1"u8, "value-1"u8);
        buffer.AppendRequest(OpCode.CondPut, 4, "k2"u8, "v2"u8, expectedVersion: 99);
        buffer.AppendRequest(OpCode.Get, 3, "k1"u8, default);
        buffer.EndFrame(start, FrameKind.Request, 3, batchSeq: 17, sessionId: 5, view: 8);

        Assert.Equal(Status.Ok, FrameHeader.TryRead(buffer.Written, s_limits.MaxFrameBytes, out var header));
        Assert.Equal(buffer.Length, header.Length);
        Assert.Equal((17u, 5ul, 8ul, (ushort)3, FrameKind.Request), (header.BatchSeq, header.SessionId, header.View, header.Count, header.Kind));
        Assert.True(header.CheckCrc(buffer.Written));

        var reader = new RequestReader(buffer.Written[FrameHeader.Size..], header.Count, s_limits);
        Assert.Equal(Status.Ok, reader.TryRead(out var put));
        Assert.Equal((OpCode.Put, (ushort)3, "k1", "value-1"), (put.Op, put.Table, Encoding.ASCII.GetString(put.Key), Encoding.ASCII.GetString(put.Value)));
        Assert.Equal(Status.Ok, reader.TryRead(out var cond));
        Assert.Equal((OpCode.CondPut, 99ul, "k2"), (cond.Op, cond.ExpectedVersion, Encoding.ASCII.GetString(cond.Key)));
        Assert.Equal(Status.Ok, reader.TryRead(out var get));
        Assert.Equal(0, get.Value.Length);
        Assert.True(reader.AtEnd);
    }

    [Fact]
    public void FrameHeader_CorruptedPayload_FailsCrc()
    {
        using var buffer = new FrameBuffer(64);
        int start = buffer.BeginFrame();
        buffer.AppendRequest(OpCode.Get, 0, "abc"u8, default);
        buffer.EndFrame(start, FrameKind.Request, 1, 1, 0, 0);
        var bytes = buffer.Written.ToArray();
        bytes[^1] ^= 1;
        Assert.Equal(Status.Ok, FrameHeader.TryRead(bytes, s_limits.MaxFrameBytes, out var header));
        Assert.False(header.CheckCrc(bytes));
    }

    [Theory]
    [InlineData(4, 0)] // version 0
    [InlineData(4, 2)] // version 2
    [InlineData(5, 0)] // kind 0
    [InlineData(5, 9)] // unknown kind
    public void FrameHeader_BadVersionOrKind_Malformed(int index, byte value)
    {
        var header = new byte[FrameHeader.Size];
        new FrameHeader(FrameHeader.Size, FrameKind.Request, 0, 0, 0, 0, 0).Write(header);
        Assert.Equal(Status.Ok, FrameHeader.TryRead(header, s_limits.MaxFrameBytes, out _));
        header[index] = value;
        Assert.Equal(Status.Malformed, FrameHeader.TryRead(header, s_limits.MaxFrameBytes, out _));
    }

    [Fact]
    public void FrameHeader_LengthAboveLimit_TooLarge_BelowHeader_Malformed()
    {
        var header = new byte[FrameHeader.Size];
        new FrameHeader(s_limits.MaxFrameBytes + 1, FrameKind.Request, 0, 0, 0, 0, 0).Write(header);
        Assert.Equal(Status.TooLarge, FrameHeader.TryRead(header, s_limits.MaxFrameBytes, out _));
        new FrameHeader(FrameHeader.Size - 1, FrameKind.Request, 0, 0, 0, 0, 0).Write(header);
        Assert.Equal(Status.Malformed, FrameHeader.TryRead(header, s_limits.MaxFrameBytes, out _));
    }

    [Fact]
    public void RequestReader_TruncatedOrUnknown_Malformed_AndOversizedKey_TooLarge()
    {
        var payload = new byte[RequestHeader.EncodedLength(OpCode.Put, 3, 4)];
        RequestHeader.Write(payload, OpCode.Put, 0, "abc"u8, "wxyz"u8);

        var truncated = new RequestReader(payload.AsSpan(0, payload.Length - 1), 1, s_limits);
        Assert.Equal(Status.Malformed, truncated.TryRead(out _));

        var unknown = (byte[])payload.Clone();
        unknown[0] = 0x7F;
        var unknownReader = new RequestReader(unknown, 1, s_limits);
        Assert.Equal(Status.Malformed, unknownReader.TryRead(out _));

        var tooMany = new RequestReader(payload, 2, s_limits);
        Assert.Equal(Status.Ok, tooMany.TryRead(out _));
        Assert.Equal(Status.Malformed, tooMany.TryRead(out _));

        var small = s_limits with { MaxKeyBytes = 2, MaxValueBytes = 3 };
        var keyReader = new RequestReader(payload, 1, small);
        Assert.Equal(Status.TooLarge, keyReader.TryRead(out _));
    }

    [Fact]
    public void ResultReader_ReadsResultsAndPackedKeys()
    {
        using var buffer = new FrameBuffer(64);
        buffer.AppendResult(Status.Ok, 7, "hello"u8);
        buffer.AppendResult(Status.NotFound, 0, default);
        var reader = new ResultReader(buffer.Written);
        Assert.True(reader.TryRead(out var first));
        Assert.Equal((Status.Ok, 7ul, "hello"), (first.Status, first.Version, Encoding.ASCII.GetString(first.Value)));
        Assert.True(reader.TryRead(out var second));
        Assert.Equal(Status.NotFound, second.Status);
        Assert.True(reader.AtEnd);
        Assert.False(reader.TryRead(out _));

        var packed = new byte[PackedKeyReader.EncodedLength(2) + PackedKeyReader.EncodedLength(1)];
        int at = PackedKeyReader.Write(packed, "ab"u8);
        PackedKeyReader.Write(packed.AsSpan(at), "c"u8);
        var keys = new PackedKeyReader(packed);
        Assert.Equal(Status.Ok, keys.TryRead(16, out var k1));
        Assert.Equal(Status.Ok, keys.TryRead(16, out var k2));
        Assert.Equal(("ab", "c"), (Encoding.ASCII.GetString(k1), Encoding.ASCII.GetString(k2)));
        Assert.True(keys.AtEnd);
    }

    [Fact]
    public void AuthProof_VerifiesOnlyTheRightSecretAndChallenge()
    {
        var secret = "s3cret"u8.ToArray();
        var challenge = new byte[AuthProof.Size];
        AuthProof.NewChallenge(challenge);
        var proof = new byte[AuthProof.Size];
        AuthProof.Compute(secret, challenge, proof);
        Assert.True(AuthProof.Verify(secret, challenge, proof));
        Assert.False(AuthProof.Verify("other"u8, challenge, proof));
        challenge[0] ^= 1;
        Assert.False(AuthProof.Verify(secret, challenge, proof));
    }
}
