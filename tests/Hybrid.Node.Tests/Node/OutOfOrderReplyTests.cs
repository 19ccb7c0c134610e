using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

/// <summary>
/// A session that asked for out-of-order replies at Hello gets each batch's reply as soon as it is complete: a batch
/// parked on a disk read holds back neither the replies of the batches behind it nor the reading of new requests.
/// Completions are held (<see cref="CountingStore.HoldCompletions"/>) so the cold read stays pending as long as the test
/// needs, on the node's own socket loop (the default where libhyb_transport is built, as in CI).
/// </summary>
public class OutOfOrderReplyTests
{
    private static byte[] B(string s) => PipelinedBatchTests.B(s);

    private static byte[] Get(RawConnection raw, uint seq, string key) => PipelinedBatchTests.Get(raw, seq, key);

    private static async Task PutHotAsync(TestNode node)
    {
        await using var client = await node.ConnectAsync();
        Assert.Equal(Status.Ok, (await client.PutAsync(0, B("hot"), B("hot value"))).Status);
    }

    [Fact]
    public async Task A_complete_batch_is_answered_before_a_parked_one_and_requests_sent_meanwhile_run()
    {
        var (node, counting) = await PipelinedBatchTests.ColdNodeAsync();
        await using var _ = node;
        await PutHotAsync(node);
        using var raw = RawConnection.OpenDefault(node.EndPoint, HelloOptions.OutOfOrderReplies);
        counting.HoldCompletions = true;
        long pendingBefore = counting.PendingOperations;
        raw.Send([.. Get(raw, 1, "cold0"), .. Get(raw, 2, "hot")]);

        var second = raw.Receive();
        Assert.Equal(2u, second.Header.BatchSeq);
        Assert.Equal("hot value", System.Text.Encoding.UTF8.GetString(second.Results[0].Value));
        Assert.True(counting.PendingOperations > pendingBefore, "the cold read did not go pending: nothing was parked");
        // Sent only now, while the first batch still waits: the node reads and answers it.
        raw.Send(Get(raw, 3, "hot"));
        var third = raw.Receive();
        Assert.Equal(3u, third.Header.BatchSeq);
        Assert.Equal(Status.Ok, third.Results[0].Status);

        counting.HoldCompletions = false;
        var first = raw.Receive();
        Assert.Equal(1u, first.Header.BatchSeq);
        Assert.Equal(0, BitConverter.ToInt32(first.Results[0].Value));
    }

    [Fact]
    public async Task Without_the_option_replies_keep_request_order_behind_a_parked_batch()
    {
        var (node, counting) = await PipelinedBatchTests.ColdNodeAsync();
        await using var _ = node;
        await PutHotAsync(node);
        using var raw = RawConnection.OpenDefault(node.EndPoint);
        counting.HoldCompletions = true;
        raw.Send([.. Get(raw, 1, "cold0"), .. Get(raw, 2, "hot")]);
        await Task.Delay(100); // time for the node to run both frames (the second's reply is held behind the first)
        counting.HoldCompletions = false;
        Assert.Equal([1u, 2u], new[] { raw.Receive().Header.BatchSeq, raw.Receive().Header.BatchSeq });
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Each_key_keeps_its_order_in_either_mode(bool outOfOrder)
    {
        // GET (to disk), PUT, GET of one cold key in one send: the PUT and the second GET touch a key the first frame's read
        // is still pending on, so they wait for it instead of overtaking it; each sees the state its order implies.
        var (node, _) = await PipelinedBatchTests.ColdNodeAsync();
        await using var __ = node;
        using var raw = RawConnection.OpenDefault(node.EndPoint, outOfOrder ? HelloOptions.OutOfOrderReplies : null);
        for (int round = 0; round < 20; round++)
        {
            string key = $"cold{10 + round}";
            raw.Send([
                .. Get(raw, 1, key),
                .. RawConnection.Frame(1, raw.SessionId, raw.View, b => b.AppendRequest(OpCode.Put, 0, B(key), B("new")), 2),
                .. Get(raw, 3, key)]);
            var replies = new[] { raw.Receive(), raw.Receive(), raw.Receive() }.OrderBy(r => r.Header.BatchSeq).ToArray();
            Assert.Equal(10 + round, BitConverter.ToInt32(replies[0].Results[0].Value)); // not the PUT that came after it
            Assert.Equal(Status.Ok, replies[1].Results[0].Status);
            Assert.Equal("new", System.Text.Encoding.UTF8.GetString(replies[2].Results[0].Value)); // not the old value
        }
    }

    [Fact]
    public async Task The_end_of_input_while_a_batch_is_parked_closes_only_after_its_reply()
    {
        var (node, counting) = await PipelinedBatchTests.ColdNodeAsync();
        await using var _ = node;
        using var raw = RawConnection.OpenDefault(node.EndPoint, HelloOptions.OutOfOrderReplies);
        counting.HoldCompletions = true;
        raw.Send(Get(raw, 1, "cold1"));
        raw.ShutdownSend();
        await Task.Delay(100); // time for the node to see the end of input while the read is held
        counting.HoldCompletions = false;
        var reply = raw.Receive();
        Assert.Equal((1u, 1), (reply.Header.BatchSeq, BitConverter.ToInt32(reply.Results[0].Value)));
        Assert.True(raw.IsClosedByPeer(), "the connection stayed open after the end of input");
    }

    [Fact]
    public async Task A_peer_that_goes_away_while_its_batch_is_parked_costs_no_one_else_anything()
    {
        var (node, counting) = await PipelinedBatchTests.ColdNodeAsync();
        await using var _ = node;
        await using var bystander = await node.ConnectAsync();
        for (int i = 0; i < 3; i++)
        {
            using (var raw = RawConnection.OpenDefault(node.EndPoint, HelloOptions.OutOfOrderReplies))
            {
                counting.HoldCompletions = true;
                raw.Send(Get(raw, 1, $"cold{2 + i}"));
                await Task.Delay(50);
            }
            await Task.Delay(50); // the node sees the reset while the read is held
            counting.HoldCompletions = false;
            Assert.Equal(2 + i, BitConverter.ToInt32((await bystander.GetAsync(0, B($"cold{2 + i}"))).Value!));
        }
        // The abandoned connections' park slots and buffers went when their reads finished: new sessions still park fine.
        using var again = RawConnection.OpenDefault(node.EndPoint, HelloOptions.OutOfOrderReplies);
        again.Send(Get(again, 9, "cold8"));
        Assert.Equal(8, BitConverter.ToInt32(again.Receive().Results[0].Value));
    }

    [Fact]
    public async Task The_client_completes_a_later_batch_while_an_earlier_one_waits()
    {
        var (node, counting) = await PipelinedBatchTests.ColdNodeAsync();
        await using var _ = node;
        await PutHotAsync(node);
        await using var client = await node.ConnectAsync();
        counting.HoldCompletions = true;
        var slow = client.ExecuteAsync(new HybridBatch().Get(0, B("cold3"))).AsTask();
        var fast = await client.ExecuteAsync(new HybridBatch().Get(0, B("hot")));
        Assert.Equal("hot value", System.Text.Encoding.UTF8.GetString(fast[0].Value!));
        Assert.False(slow.IsCompleted, "the cold read finished although completions were held");
        counting.HoldCompletions = false;
        Assert.Equal(3, BitConverter.ToInt32((await slow)[0].Value!));
    }

    [Fact]
    public async Task A_hello_with_an_unknown_option_is_malformed_and_closes()
    {
        await using var node = await TestNode.StartAsync();
        using var raw = RawConnection.Open(node.EndPoint);
        raw.Send(RawConnection.Frame(1, 0, 0, b => b.AppendRequest(OpCode.Hello, 0, "default"u8, [0x80])));
        var reply = raw.Receive();
        Assert.Equal(Status.Malformed, reply.Results[0].Status);
        Assert.True(raw.IsClosedByPeer());
    }
}
