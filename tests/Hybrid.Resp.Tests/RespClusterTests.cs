using Hybrid.Node.Resp;
using Hybrid.Storage;

namespace Hybrid.Resp.Tests;

public sealed class RespClusterTests
{
    // "foo" hashes to slot 12182 and "bar" to 5061 (Redis Cluster's own examples).
    [Fact]
    public void KeyOfAnotherNodesSlot_GetsMovedAndIsNotExecuted()
    {
        var store = new FakeKvStore();
        using var h = new RespHarness(store, slots: new PartialSlotMap(0, 8191));
        Assert.Equal(12182, Slot.Of("foo"u8));
        Assert.Equal("-MOVED 12182 10.0.0.2:7001\r\n", h.Command("SET", "foo", "v"));
        Assert.Equal(0, store.Count);
        Assert.Equal("+OK\r\n", h.Command("SET", "bar", "v"));
        Assert.Equal("-MOVED 12182 10.0.0.2:7001\r\n", h.Command("GET", "foo"));
        Assert.Equal("-MOVED 12182 10.0.0.2:7001\r\n", h.Command("INCR", "foo"));
    }

    [Fact]
    public void MultiKeyCommands_NeedOneSlot()
    {
        using var h = new RespHarness(slots: new PartialSlotMap(0, 16000));
        Assert.Equal("-CROSSSLOT Keys in request don't hash to the same slot\r\n", h.Command("MSET", "foo", "1", "bar", "2"));
        Assert.Equal("+OK\r\n", h.Command("MSET", "{user1}.a", "1", "{user1}.b", "2"));
        Assert.Equal("*2\r\n$1\r\n1\r\n$1\r\n2\r\n", h.Command("MGET", "{user1}.a", "{user1}.b"));
    }

    [Fact]
    public void ClusterCommands_DescribeTheSlotMap()
    {
        using var h = new RespHarness(slots: new PartialSlotMap(0, 8191));
        Assert.Equal(":12182\r\n", h.Command("CLUSTER", "KEYSLOT", "foo"));
        var slots = h.Command("CLUSTER", "SLOTS");
        Assert.StartsWith("*2\r\n*3\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:6380\r\n", slots);
        Assert.Contains("*3\r\n:8192\r\n:16383\r\n*4\r\n$8\r\n10.0.0.2\r\n:7001\r\n", slots);
        Assert.StartsWith("*2\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:8191\r\n$5\r\nnodes\r\n", h.Command("CLUSTER", "SHARDS"));
        Assert.Contains("cluster_slots_assigned:16384", h.Command("CLUSTER", "INFO"));
    }

    [Fact]
    public void SingleNode_OwnsEverySlotAndRefusesClusterTopologyQueries()
    {
        using var h = new RespHarness();
        Assert.Equal("+OK\r\n", h.Command("SET", "foo", "v"));
        Assert.Equal(":12182\r\n", h.Command("CLUSTER", "KEYSLOT", "foo"));
        Assert.Equal("-ERR This instance has cluster support disabled\r\n", h.Command("CLUSTER", "SLOTS"));
    }

    [Fact]
    public async Task TwoNodes_RedisCliFollowsMoved_AndAnOwnershipChangeRedirectsAtOnce()
    {
        string idA = new('a', 40), idB = new('b', 40);
        var mapA = new ClusterSlotMap(idA, []);
        var mapB = new ClusterSlotMap(idB, []);
        await using var a = await RespTestNode.StartAsync(slots: mapA);
        await using var b = await RespTestNode.StartAsync(slots: mapB);
        RespSlotRange[] Split(int boundary) =>
        [
            new(0, boundary - 1, "127.0.0.1", a.Port, idA),
            new(boundary, Slot.Count - 1, "127.0.0.1", b.Port, idB),
        ];
        mapA.Update(Split(8192));
        mapB.Update(Split(8192));

        // "foo" is slot 12182 (B's), "bar" slot 5061 (A's). redis-cli -c follows the MOVED from A to B.
        Assert.Equal("OK", RedisTools.Cli(a.Port, "-c", "SET", "foo", "on-b"));
        Assert.Equal("on-b", RedisTools.Cli(b.Port, "GET", "foo"));
        Assert.Equal($"MOVED 12182 127.0.0.1:{b.Port}", RedisTools.Cli(a.Port, "GET", "foo"));
        Assert.Equal("OK", RedisTools.Cli(b.Port, "-c", "SET", "bar", "on-a"));
        Assert.Equal("on-a", RedisTools.Cli(a.Port, "GET", "bar"));
        var slotsReply = RedisTools.Cli(a.Port, "CLUSTER", "SLOTS").Split('\n');
        Assert.Contains(b.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), slotsReply);
        Assert.Contains(idB, slotsReply);

        // Ownership of 8192-16383 moves to A (the cluster layer updates both maps): B now redirects foo's slot to A.
        mapA.Update([new(0, Slot.Count - 1, "127.0.0.1", a.Port, idA)]);
        mapB.Update([new(0, Slot.Count - 1, "127.0.0.1", a.Port, idA)]);
        Assert.Equal($"MOVED 12182 127.0.0.1:{a.Port}", RedisTools.Cli(b.Port, "GET", "foo"));
        Assert.Equal("OK", RedisTools.Cli(b.Port, "-c", "SET", "foo", "on-a-now"));
        Assert.Equal("on-a-now", RedisTools.Cli(a.Port, "GET", "foo"));
    }

    [Fact]
    public void InACluster_TheWorkersViewDecides_AndTheMapOnlySaysWhereToGo()
    {
        var store = new FakeKvStore();
        string id = new('e', 40);
        var map = new ClusterSlotMap(id, [new(8192, Slot.Count - 1, "10.0.0.9", 7009, new string('f', 40))]);
        using var h = new RespHarness(store, slots: map);
        // The view owns 0..8191: "bar" (5061) runs; "foo" (12182) is not owned and the map names its owner.
        h.Session.OwnedSlots = Hybrid.Node.Hosting.OwnedSlots.Of([(0, 8191)]);
        Assert.Equal("+OK\r\n", h.Command("SET", "bar", "v"));
        Assert.Equal("-MOVED 12182 10.0.0.9:7009\r\n", h.Command("SET", "foo", "v"));
        // A view that no longer owns 0..8191, while the map does not name another owner yet: TRYAGAIN, nothing runs.
        h.Session.OwnedSlots = Hybrid.Node.Hosting.OwnedSlots.None;
        Assert.Equal("-TRYAGAIN slot 5061 is moving between nodes, retry shortly\r\n", h.Command("GET", "bar"));
        Assert.Equal("-TRYAGAIN slot 5061 is moving between nodes, retry shortly\r\n", h.Command("MSET", "bar", "1", "{bar}x", "2"));
        Assert.Equal(1, store.Count);
        // The view owns foo's slot before the map caught up (a target that just adopted a range): it runs here.
        h.Session.OwnedSlots = Hybrid.Node.Hosting.OwnedSlots.Of([(12182, 12182)]);
        Assert.Equal("+OK\r\n", h.Command("SET", "foo", "v"));
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public void ClusterSlotMap_RejectsOverlapsAndOutOfRangeSlots()
    {
        var id = new string('c', 40);
        var map = new ClusterSlotMap(id, [new(0, 100, "h", 1, id)]);
        Assert.Null(map.RedirectFor(50));
        Assert.Throws<ArgumentException>(() => map.Update([new(0, 100, "h", 1, id), new(100, 200, "g", 2, new string('d', 40))]));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Update([new(0, Slot.Count, "h", 1, id)]));
        Assert.Null(map.RedirectFor(50)); // a refused update leaves the map as it was
    }
}
