using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

/// <summary>
/// <see cref="ClusterClient"/> while a range is handed over: its requests wait for a map that routes them somewhere
/// new (one thread re-reads the map while any waits) and go there as soon as it does; the re-reading stops with them.
/// </summary>
public class ClusterClientRouteTests
{
    /// <summary>A map source whose answer the test switches; counts the reads.</summary>
    private sealed class SwitchableSource(ClusterRouting first) : IClusterRoutingSource
    {
        private ClusterRouting _current = first;
        private int _loads;

        public ClusterRouting Current
        {
            get => Volatile.Read(ref _current);
            set => Volatile.Write(ref _current, value);
        }

        public int Loads => Volatile.Read(ref _loads);

        public Task<ClusterRouting> LoadAsync(CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _loads);
            return Task.FromResult(Current);
        }
    }

    /// <summary>One range of every slot, owned by node "a" (view 1); <paramref name="served"/>: "a" owns it in view 1.</summary>
    private static ClusterRouting Map(EndPoint endPoint, bool served) => new(
        new Dictionary<string, (int First, int Last)> { ["r"] = (0, 16383) },
        new Dictionary<string, string> { ["r"] = "a" },
        new Dictionary<string, int> { ["a"] = 1 },
        new Dictionary<string, IReadOnlyList<IReadOnlySet<string>>> { ["a"] = [served ? new HashSet<string> { "r" } : new HashSet<string>()] },
        new Dictionary<string, EndPoint> { ["a"] = endPoint });

    [Fact]
    public async Task A_request_the_node_answers_Retry_did_not_run_the_session_shows_it_and_the_cluster_client_sends_it_again()
    {
        // The node answers Retry for a key of a range moving to it whose pull failed (StoreStatus.Unavailable); it
        // answered InternalError before, which no client retries.
        CountingStore? counting = null;
        await using var node = await TestNode.StartAsync(wrapStore: s => counting = new CountingStore(s));
        counting!.UnavailableKey = "moving"u8.ToArray();

        await using (HybridSession session = await node.ConnectAsync())
        {
            counting.UnavailableAnswers = 2;
            GetResult[] results = await session.ExecuteAsync(new HybridBatch().Put(0, "moving"u8.ToArray(), "v0"u8.ToArray())
                .Put(0, "still"u8.ToArray(), "here"u8.ToArray()).Get(0, "moving"u8.ToArray()));
            Assert.Equal([Status.Retry, Status.Ok, Status.Retry], results.Select(r => r.Status));
            Assert.Equal(Status.NotFound, (await session.GetAsync(0, "moving"u8)).Status); // the put did not run
        }

        var source = new SwitchableSource(Map(node.EndPoint, served: true));
        await using ClusterClient client = await ClusterClient.ConnectAsync(source);
        counting.UnavailableAnswers = 3;
        Assert.Equal(Status.Ok, (await client.PutAsync(0, "moving"u8.ToArray(), "v1"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(20))).Status);
        counting.UnavailableAnswers = 3;
        GetResult read = await client.GetAsync(0, "moving"u8.ToArray()).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal((Status.Ok, "v1"), (read.Status, Encoding.UTF8.GetString(read.Value!)));
        Assert.Equal(-1, counting.UnavailableAnswers); // every refusal was answered, then the request ran
    }

    [Fact]
    public async Task Requests_of_a_range_in_handover_wait_for_the_map_to_route_them_then_all_go_and_the_map_polling_stops()
    {
        await using var node = await TestNode.StartAsync();
        var source = new SwitchableSource(Map(node.EndPoint, served: false));
        await using ClusterClient client = await ClusterClient.ConnectAsync(source);

        // The map names "a" as the owner, but "a" does not own the range in its view: the handover's middle.
        Task<WriteResult>[] writes = [.. Enumerable.Range(0, 32).Select(i => client.PutAsync(0, Encoding.UTF8.GetBytes("k" + i), Encoding.UTF8.GetBytes("v" + i)))];
        await Task.Delay(300);
        Assert.All(writes, w => Assert.False(w.IsCompleted, "a request went out before the map routed it"));
        Assert.True(source.Loads >= 2, $"the map was read {source.Loads} times while requests waited for a route");

        source.Current = Map(node.EndPoint, served: true);
        WriteResult[] done = await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.All(done, r => Assert.Equal(Status.Ok, r.Status));
        Assert.Equal("v7", Encoding.UTF8.GetString((await client.GetAsync(0, Encoding.UTF8.GetBytes("k7"))).Value!));

        // Nobody waits any more: the polling thread ends and the map is not read again.
        await Task.Delay(100);
        int settled = source.Loads;
        await Task.Delay(300);
        Assert.Equal(settled, source.Loads);
    }
}
