using System.Text;
using Hybrid.Client;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Tests.Node;

/// <summary>
/// Per-batch slot admission (the model's <c>Execute</c>/<c>Reject</c> guards): a worker runs a batch only when it is
/// stamped with the worker's view and every key's slot is owned in that view; otherwise nothing of it runs.
/// </summary>
public class SlotAdmissionTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>The first key "prefix{i}" whose slot is inside (or outside) 0..8191.</summary>
    private static byte[] KeyIn(string prefix, bool lowHalf)
    {
        for (int i = 0; ; i++)
        {
            byte[] key = B(prefix + i);
            if (Slot.Of(key) < 8192 == lowHalf)
                return key;
        }
    }

    private static async Task AdvanceAndWaitAsync(TestNode node, ulong view, OwnedSlots owned)
    {
        node.Node.View.Advance(view, owned);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!node.Node.View.AllWorkersAtLeast(view) && DateTime.UtcNow < deadline)
            await Task.Delay(1);
        Assert.True(node.Node.View.AllWorkersAtLeast(view));
    }

    [Fact]
    public async Task A_batch_with_a_key_outside_the_views_slots_is_refused_whole_and_runs_nothing()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        byte[] mine = KeyIn("mine", lowHalf: true), theirs = KeyIn("theirs", lowHalf: false);
        await client.PutAsync(0, mine, B("before"));
        await AdvanceAndWaitAsync(node, client.View + 1, OwnedSlots.Of([(0, 8191)]));

        // Owned key: the session follows ViewChanged and the write runs in the new view.
        Assert.Equal(Status.Ok, (await client.PutAsync(0, mine, B("owned"))).Status);
        // A key of a slot not owned in the view: NotOwner, in the same view (no resend can fix it).
        var refused = await Assert.ThrowsAsync<HybridProtocolException>(async () => await client.PutAsync(0, theirs, B("x")));
        Assert.Equal(Status.NotOwner, refused.Status);
        // Mixed batch: refused as a whole, so the owned key's write did not run either.
        var mixed = new HybridBatch().Put(0, mine, B("mixed")).Put(0, theirs, B("mixed"));
        var whole = await Assert.ThrowsAsync<HybridProtocolException>(async () => await client.ExecuteAsync(mixed));
        Assert.Equal(Status.NotOwner, whole.Status);
        Assert.Equal("owned", Encoding.UTF8.GetString((await client.GetAsync(0, mine)).Value!));
        // MultiGet keys count too.
        var multi = await Assert.ThrowsAsync<HybridProtocolException>(async () => await client.MultiGetAsync(0, [mine, theirs]));
        Assert.Equal(Status.NotOwner, multi.Status);
        Assert.Contains("status=\"notowner\"", node.Node.ScrapeMetrics());

        // The next view owns every slot again: the same write now runs.
        await AdvanceAndWaitAsync(node, client.View + 1, OwnedSlots.All);
        Assert.Equal(Status.Ok, (await client.PutAsync(0, theirs, B("later"))).Status);
        Assert.Equal("later", Encoding.UTF8.GetString((await client.GetAsync(0, theirs)).Value!));
    }

    [Fact]
    public async Task A_session_that_does_not_resend_adopts_the_nodes_view_from_the_rejection_and_keeps_its_connection()
    {
        // As ClusterClient's sessions (MaxResends = 0): the ViewChanged reaches the caller, and the session's next
        // batch carries the node's new view, on the same connection (no reconnect to learn it).
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync(configure: o => o with { MaxResends = 0 });
        byte[] key = B("adopt");
        ulong before = client.View;
        ulong session = client.SessionId;
        await AdvanceAndWaitAsync(node, before + 1, OwnedSlots.All);

        var refused = await Assert.ThrowsAsync<HybridProtocolException>(async () => await client.PutAsync(0, key, B("x")));
        Assert.Equal(Status.ViewChanged, refused.Status);
        Assert.Equal(before + 1, client.View);
        Assert.Equal(Status.Ok, (await client.PutAsync(0, key, B("y"))).Status);
        Assert.Equal(session, client.SessionId);
    }

    [Fact]
    public async Task Hash_tags_decide_the_slot_and_a_view_owning_nothing_refuses_every_keyed_batch()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        int slot = Slot.Of(B("user1"));
        await AdvanceAndWaitAsync(node, client.View + 1, OwnedSlots.Of([(slot, slot)]));
        Assert.Equal(Status.Ok, (await client.PutAsync(0, B("{user1}.name"), B("n"))).Status);
        Assert.Equal(Status.Ok, (await client.PutAsync(0, B("x{user1}y"), B("n"))).Status);
        await client.NoopAsync(); // no key: always admitted

        await AdvanceAndWaitAsync(node, client.View + 1, OwnedSlots.None);
        var refused = await Assert.ThrowsAsync<HybridProtocolException>(async () => await client.GetAsync(0, B("{user1}.name")));
        Assert.Equal(Status.NotOwner, refused.Status);
        await client.NoopAsync();
    }

    [Fact]
    public void OwnedSlots_rejects_ranges_outside_the_slot_space()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => OwnedSlots.Of([(0, Slot.Count)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => OwnedSlots.Of([(5, 4)]));
        var some = OwnedSlots.Of([(0, 0), (16383, 16383)]);
        Assert.True(some.Contains(0) && some.Contains(16383) && !some.Contains(1) && !some.IsAll);
        Assert.Equal("0,16383", some.ToString());
    }
}
