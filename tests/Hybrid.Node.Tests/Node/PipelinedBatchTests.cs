using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Node;

/// <summary>
/// Batches received behind a batch parked on a disk read run before it completes (their misses go out together), yet
/// replies keep request order, each key's operations keep theirs, and a bad frame behind them is answered after them.
/// </summary>
public class PipelinedBatchTests
{
    internal static async Task<(TestNode Node, CountingStore Store)> ColdNodeAsync()
    {
        CountingStore? counting = null;
        var node = await TestNode.StartAsync(DurabilityMode.Memory, memoryBudget: 64 * 1024, wrapStore: s => counting = new CountingStore(s));
        await using var client = await node.ConnectAsync();
        var value = new byte[1000];
        for (int i = 0; i < 600; i += 50)
        {
            var batch = new Hybrid.Client.HybridBatch();
            for (int j = i; j < i + 50; j++)
            {
                BitConverter.TryWriteBytes(value, j);
                batch.Put(0, B($"cold{j}"), value.ToArray());
            }
            Assert.All(await client.ExecuteAsync(batch), r => Assert.Equal(Status.Ok, r.Status));
        }
        return (node, counting!);
    }

    internal static byte[] B(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    internal static byte[] Get(RawConnection raw, uint seq, string key) =>
        RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Get, 0, B(key), default), seq);

    [Fact]
    public async Task Frames_behind_a_parked_batch_run_before_it_completes_and_replies_keep_request_and_key_order()
    {
        var (node, counting) = await ColdNodeAsync();
        await using var _ = node;
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        // One send: the early keys are long evicted from the 64 KiB log, so every GET of them goes to disk.
        var frames = new List<byte>();
        frames.AddRange(Get(raw, 1, "cold0"));
        frames.AddRange(Get(raw, 2, "cold1"));
        frames.AddRange(RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, B("cold2"), B("new")), 3));
        frames.AddRange(Get(raw, 4, "cold2"));
        frames.AddRange(Get(raw, 5, "cold3"));
        raw.Send(frames.ToArray());

        var replies = Enumerable.Range(0, 5).Select(_ => raw.Receive()).ToList();
        Assert.Equal([1u, 2u, 3u, 4u, 5u], replies.Select(r => r.Header.BatchSeq));
        Assert.All(replies, r => Assert.Equal(FrameKind.Reply, r.Header.Kind));
        Assert.Equal(0, BitConverter.ToInt32(replies[0].Results[0].Value));
        Assert.Equal(1, BitConverter.ToInt32(replies[1].Results[0].Value));
        Assert.Equal(Status.Ok, replies[2].Results[0].Status);
        Assert.Equal("new", System.Text.Encoding.UTF8.GetString(replies[3].Results[0].Value)); // after the PUT before it
        Assert.Equal(3, BitConverter.ToInt32(replies[4].Results[0].Value));
        // The second frame's disk read was issued while the first one's was still pending: the frames behind the
        // parked batch ran instead of waiting for it.
        Assert.True(counting.MaxPendingAtOnce >= 2, $"at most {counting.MaxPendingAtOnce} read pending at once: the batches ran one after another");
    }

    [Fact]
    public async Task Two_reads_of_one_pending_key_run_together_since_neither_changes_what_the_other_sees()
    {
        var (node, counting) = await ColdNodeAsync();
        await using var __ = node;
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        raw.Send([.. Get(raw, 1, "cold40"), .. Get(raw, 2, "cold40")]);
        var first = raw.Receive();
        var second = raw.Receive();
        Assert.Equal((1u, 2u), (first.Header.BatchSeq, second.Header.BatchSeq));
        Assert.Equal(40, BitConverter.ToInt32(first.Results[0].Value));
        Assert.Equal(40, BitConverter.ToInt32(second.Results[0].Value));
        Assert.True(counting.MaxPendingAtOnce >= 2, $"at most {counting.MaxPendingAtOnce} read pending at once: the second read waited for the first");
    }

    [Fact]
    public async Task A_bad_frame_behind_parked_batches_is_answered_after_them_then_the_connection_closes()
    {
        var (node, counting) = await ColdNodeAsync();
        await using var _ = node;
        await using var bystander = await node.ConnectAsync();
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        var bad = Get(raw, 3, "cold5");
        bad[^1] ^= 0xFF; // wrong CRC
        raw.Send([.. Get(raw, 1, "cold0"), .. Get(raw, 2, "cold1"), .. bad, .. Get(raw, 4, "cold6")]);

        var first = raw.Receive();
        var second = raw.Receive();
        var rejected = raw.Receive();
        Assert.Equal((FrameKind.Reply, 1u), (first.Header.Kind, first.Header.BatchSeq));
        Assert.Equal(0, BitConverter.ToInt32(first.Results[0].Value));
        Assert.Equal((FrameKind.Reply, 2u), (second.Header.Kind, second.Header.BatchSeq));
        Assert.Equal(1, BitConverter.ToInt32(second.Results[0].Value));
        Assert.Equal(FrameKind.Rejected, rejected.Header.Kind);
        Assert.Equal(Status.Malformed, rejected.Results[0].Status);
        Assert.True(raw.IsClosedByPeer(), "the connection stayed open after a bad frame");
        Assert.True(counting.PendingOperations >= 2, "the reads did not go to disk: the test did not exercise parked batches");
        Assert.Equal(7, BitConverter.ToInt32((await bystander.GetAsync(0, B("cold7"))).Value!)); // everyone else is served
    }
}
