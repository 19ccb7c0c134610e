using System.Buffers.Binary;
using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

/// <summary>Hostile bytes over a real socket: each gets a Rejected reply and a closed connection, and the node keeps serving others.</summary>
public class MalformedInputTests
{
    private static byte[] GoodGet(RawConnection raw) =>
        RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 0, "k"u8, default));

    public static TheoryData<string> Cases => ["bad-crc", "oversized-length", "garbage", "unknown-opcode", "truncated", "short-length", "payload-mismatch", "oversized-key"];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task BadFrame_RejectedAndClosed_OthersKeepServed(string kind)
    {
        await using var node = await TestNode.StartAsync();
        await using var bystander = await node.ConnectAsync();
        await bystander.PutAsync(0, "safe"u8, "value"u8);

        using var raw = RawConnection.OpenDefault(node.EndPoint);
        Status expected;
        switch (kind)
        {
            case "bad-crc":
                {
                    var frame = GoodGet(raw);
                    frame[^1] ^= 0xFF;
                    raw.Send(frame);
                    expected = Status.Malformed;
                    break;
                }
            case "oversized-length":
                {
                    var frame = GoodGet(raw);
                    BinaryPrimitives.WriteInt32LittleEndian(frame, TestNode.Limits.MaxFrameBytes + 1);
                    raw.Send(frame);
                    expected = Status.TooLarge;
                    break;
                }
            case "garbage":
                {
                    var garbage = new byte[200];
                    new Random(11).NextBytes(garbage);
                    BinaryPrimitives.WriteInt32LittleEndian(garbage, 200); // plausible length, nonsense inside
                    raw.Send(garbage);
                    expected = Status.Malformed;
                    break;
                }
            case "unknown-opcode":
                {
                    var frame = RawConnection.Frame(1, raw.SessionId, raw.View, b =>
                    {
                        b.AppendRequest(OpCode.Get, 0, "k"u8, default);
                        b.Array[b.Length - 1 - RequestHeader.Size] = 0x7E; // the opcode byte of the request
                    });
                    raw.Send(frame);
                    expected = Status.Malformed;
                    break;
                }
            case "truncated":
                {
                    var frame = GoodGet(raw);
                    raw.Send(frame.AsSpan(0, frame.Length - 3));
                    raw.ShutdownSend();
                    expected = Status.Malformed;
                    break;
                }
            case "short-length":
                {
                    var frame = GoodGet(raw);
                    BinaryPrimitives.WriteInt32LittleEndian(frame, 8);
                    raw.Send(frame);
                    expected = Status.Malformed;
                    break;
                }
            case "payload-mismatch":
                {
                    // Header says 2 requests, payload holds 1 (CRC is right): truncated inside the frame.
                    raw.Send(RawConnection.Frame(2, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, "k"u8, "v"u8)));
                    expected = Status.Malformed;
                    break;
                }
            default:
                {
                    var key = new byte[TestNode.Limits.MaxKeyBytes + 1];
                    raw.Send(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, key, "v"u8)));
                    expected = Status.TooLarge;
                    break;
                }
        }

        var (header, results) = raw.Receive();
        Assert.Equal(FrameKind.Rejected, header.Kind);
        Assert.Equal(expected, Assert.Single(results).Status);
        Assert.True(raw.IsClosedByPeer());

        // Nothing of the bad batch ran, and everyone else is still served.
        Assert.Equal(Status.NotFound, (await bystander.GetAsync(0, "k"u8)).Status);
        Assert.Equal("value", Encoding.UTF8.GetString((await bystander.GetAsync(0, "safe"u8)).Value!));
        using var fresh = RawConnection.OpenDefault(node.EndPoint);
        fresh.Send(GoodGet(fresh));
        Assert.Equal(Status.NotFound, fresh.Receive().Results[0].Status);
    }

    [Fact]
    public async Task WrongView_RejectedWithCurrentView_ConnectionKept()
    {
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        raw.Send(RawConnection.Frame(1, raw.SessionId, raw.View + 3, b => b.AppendRequest(OpCode.Put, 0, "k"u8, "v"u8), seq: 42));
        var (header, results) = raw.Receive();
        Assert.Equal((FrameKind.Rejected, 42u, raw.View), (header.Kind, header.BatchSeq, header.View));
        Assert.Equal((Status.ViewChanged, raw.View), (results[0].Status, results[0].Version));

        raw.Send(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 0, "k"u8, default)));
        Assert.Equal(Status.NotFound, raw.Receive().Results[0].Status); // the rejected Put never ran
    }

    [Fact]
    public async Task ReservedOpcodes_Unsupported_ConnectionKept()
    {
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        raw.Send(RawConnection.Frame(3, raw.SessionId, raw.View, b =>
        {
            b.AppendRequest(OpCode.Invoke, 0, "ext"u8, default);
            b.AppendRequest(OpCode.MigrationPull, 0, default, default);
            b.AppendRequest(OpCode.Noop, 0, default, default);
        }));
        var results = raw.Receive().Results;
        Assert.Equal([Status.NotFound, Status.Unsupported, Status.Ok], results.Select(r => r.Status));
    }

    [Fact]
    public async Task DataBeforeHello_Unauthorized_AndClosed()
    {
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.Open(node.EndPoint);
        raw.Send(RawConnection.Frame(1, 0, 1, b => b.AppendRequest(OpCode.Get, 0, "k"u8, default)));
        var (header, results) = raw.Receive();
        Assert.Equal((FrameKind.Rejected, Status.Unauthorized), (header.Kind, results[0].Status));
        Assert.True(raw.IsClosedByPeer());
    }

    [Fact]
    public async Task A_frame_over_4_KiB_before_Hello_is_TooLarge_and_closed_without_waiting_for_its_body()
    {
        // Unauthenticated connections could make the node buffer a whole frame each (found by review: 200 of them
        // held 620 MB). Only the length is sent here: the refusal must not wait for the body.
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.Open(node.EndPoint);
        var head = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(head, ProtocolLimits.MaxUnauthenticatedFrameBytes + 1);
        raw.Send(head);
        var (header, results) = raw.Receive();
        Assert.Equal((FrameKind.Rejected, Status.TooLarge), (header.Kind, results[0].Status));
        Assert.True(raw.IsClosedByPeer());

        // Once authenticated, the same size is an ordinary frame.
        using var session = RawConnection.OpenDefault(node.EndPoint);
        session.Send(RawConnection.Frame(1, session.SessionId, session.View, b => b.AppendRequest(OpCode.Put, 0, "k"u8, new byte[6000])));
        Assert.Equal(Status.Ok, session.Receive().Results[0].Status);
    }

    [Fact]
    public async Task A_value_over_the_limit_fails_alone_before_sending_and_the_requests_beside_it_are_served()
    {
        // Found by a probe: 100 concurrent small puts and one 1 MiB + 10 B put on one session: the client put the large
        // one into the shared frame, the node answered the frame TooLarge and closed the connection, and 99 of the
        // small writes failed (49 as TooLarge, 50 with an unknown outcome) though the node ran none of them.
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync(configure: o => o with { Limits = TestNode.Limits });
        var small = Enumerable.Range(0, 100).Select(i => client.PutAsync(0, Encoding.ASCII.GetBytes($"s{i}"), "v"u8).AsTask()).ToList();
        var tooLarge = Assert.Throws<ArgumentException>(() => client.PutAsync(0, "big"u8, new byte[TestNode.Limits.MaxValueBytes + 1]));
        Assert.Contains($"at most {TestNode.Limits.MaxValueBytes} bytes", tooLarge.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => client.PutAsync(0, new byte[TestNode.Limits.MaxKeyBytes + 1], "v"u8));
        // The node counts a multi-get and each of its keys, beside up to MaxBatchOps other requests of its frame.
        int mostKeys = TestNode.Limits.MaxRequestsPerBatch - 1 - new Hybrid.Client.HybridClientOptions().MaxBatchOps;
        Assert.Throws<ArgumentException>(() => client.MultiGetAsync(0, Enumerable.Repeat("k"u8.ToArray(), mostKeys + 1).ToList()));
        Assert.Equal(mostKeys, (await client.MultiGetAsync(0, Enumerable.Repeat("k"u8.ToArray(), mostKeys).ToList())).Length);
        Assert.All(await Task.WhenAll(small), r => Assert.Equal(Status.Ok, r.Status));
        var read = await client.MultiGetAsync(0, Enumerable.Range(0, 100).Select(i => Encoding.ASCII.GetBytes($"s{i}")).ToList());
        Assert.All(read, r => Assert.Equal(Status.Ok, r.Status));
        Assert.Equal(Status.Ok, (await client.PutAsync(0, "big"u8, new byte[TestNode.Limits.MaxValueBytes])).Status);
    }

    [Fact]
    public async Task A_multi_get_whose_reply_passes_the_limit_answers_TooLarge_for_the_keys_past_it()
    {
        // One small request could ask for the same large value thousands of times, and the node built the whole reply
        // (found by review: 1,100 copies of a 1 MiB value stalled the node for 94 s).
        await using var node = await TestNode.StartAsync(limits: TestNode.Limits with { MaxReplyBytes = 64 * 1024 });
        await using var client = await node.ConnectAsync();
        var value = new byte[8 * 1024];
        Assert.Equal(Status.Ok, (await client.PutAsync(0, "big"u8, value)).Status);
        var results = await client.MultiGetAsync(0, Enumerable.Repeat("big"u8.ToArray(), 20).ToList());
        int served = results.TakeWhile(r => r.Status == Status.Ok).Count();
        Assert.InRange(served, 7, 8); // 64 KiB of 8 KiB values
        Assert.All(results.Skip(served), r => Assert.Equal(Status.TooLarge, r.Status));
        // The connection goes on, and the next batch has its own limit.
        Assert.Equal(Status.Ok, (await client.GetAsync(0, "big"u8)).Status);
    }

    [Fact]
    public async Task A_multi_get_of_records_on_disk_past_the_reply_limit_answers_TooLarge_for_the_values_past_it()
    {
        // Values read from disk wait outside the reply until their batch completes, and were kept whatever their size:
        // a MultiGet of cold keys escaped the reply limit (found by review).
        await using var node = await TestNode.StartAsync(limits: TestNode.Limits with { MaxReplyBytes = 64 * 1024 });
        await using var client = await node.ConnectAsync();
        var value = new byte[8 * 1024];
        for (int i = 0; i < 300; i++)
            Assert.Equal(Status.Ok, (await client.PutAsync(0, Encoding.ASCII.GetBytes($"cold{i}"), value)).Status);
        // The first keys written are on disk by now (1 MiB of memory).
        var results = await client.MultiGetAsync(0, Enumerable.Range(0, 40).Select(i => Encoding.ASCII.GetBytes($"cold{i}")).ToList());
        int served = results.Count(r => r.Status == Status.Ok);
        Assert.InRange(served, 1, 9); // about 64 KiB of 8 KiB values
        Assert.All(results, r => Assert.True(r.Status is Status.Ok or Status.TooLarge, r.Status.ToString()));
        Assert.Equal(Status.Ok, (await client.GetAsync(0, "cold0"u8)).Status);
    }

    [Fact]
    public async Task Pipelined_frames_whose_replies_pass_the_limit_are_all_answered_in_order()
    {
        // Past the reply limit a connection stops reading frames until its replies are sent; none may be lost.
        await using var node = await TestNode.StartAsync(limits: TestNode.Limits with { MaxReplyBytes = 64 * 1024 });
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        raw.Send(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, "big"u8, new byte[8 * 1024])));
        Assert.Equal(Status.Ok, raw.Receive().Results[0].Status);
        var frames = new List<byte>();
        for (uint i = 0; i < 40; i++)
            frames.AddRange(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 0, "big"u8, default), seq: 100 + i));
        raw.Send(frames.ToArray());
        for (uint i = 0; i < 40; i++)
        {
            var (header, results) = raw.Receive();
            Assert.Equal((100 + i, Status.Ok, 8 * 1024), (header.BatchSeq, results[0].Status, results[0].Value.Length));
        }
    }

    [Fact]
    public async Task A_connection_that_does_not_authenticate_in_time_is_closed_and_an_authenticated_one_stays()
    {
        // An unauthenticated client could hold a connection (and its buffers) forever (found by review).
        await using var node = await TestNode.StartAsync(configure: o => o with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) });
        using var silent = RawConnection.Open(node.EndPoint);
        using var session = RawConnection.OpenDefault(node.EndPoint);
        await Task.Delay(2500); // the sweep runs about once a second
        Assert.True(silent.IsClosedByPeer());
        session.Send(RawConnection.Frame(1, session.SessionId, session.View, b => b.AppendRequest(OpCode.Get, 0, "k"u8, default)));
        Assert.Equal(Status.NotFound, session.Receive().Results[0].Status);
        Assert.Contains("hybrid_handshake_timeouts_total 1", node.Node.ScrapeMetrics());
    }

    [Fact]
    public async Task A_connection_over_MaxConnections_is_closed_on_accept_and_the_others_are_served()
    {
        await using var node = await TestNode.StartAsync(configure: o => o with { MaxConnections = 2 });
        using var first = RawConnection.OpenDefault(node.EndPoint);
        using var second = RawConnection.OpenDefault(node.EndPoint);
        using var third = RawConnection.Open(node.EndPoint);
        Assert.True(third.IsClosedByPeer());
        Assert.Contains("hybrid_connections_refused_total 1", node.Node.ScrapeMetrics());
        first.Send(RawConnection.Frame(1, first.SessionId, first.View, b => b.AppendRequest(OpCode.Get, 0, "k"u8, default)));
        Assert.Equal(Status.NotFound, first.Receive().Results[0].Status);
    }

    [Fact]
    public async Task PipelinedFrames_InOneSend_AnsweredInOrder()
    {
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        var bytes = new List<byte>();
        for (uint i = 0; i < 5; i++)
            bytes.AddRange(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, "p"u8, Encoding.ASCII.GetBytes($"v{i}")), seq: 100 + i));
        raw.Send(bytes.ToArray());
        ulong lastVersion = 0;
        for (uint i = 0; i < 5; i++)
        {
            var (header, results) = raw.Receive();
            Assert.Equal(100 + i, header.BatchSeq);
            Assert.True(results[0].Version > lastVersion);
            lastVersion = results[0].Version;
        }
    }
}
