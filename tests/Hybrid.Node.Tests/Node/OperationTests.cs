using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Node;

public class OperationTests
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task PutGetDeleteCondPut_OverRealSocket_EveryStatus()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();

        Assert.Equal(Status.NotFound, (await client.GetAsync(1, B("k"))).Status);
        var put = await client.PutAsync(1, B("k"), B("v1"));
        Assert.Equal(Status.Ok, put.Status);
        Assert.True(put.Version > 0);

        var get = await client.GetAsync(1, B("k"));
        Assert.Equal((Status.Ok, put.Version, "v1"), (get.Status, get.Version, Encoding.UTF8.GetString(get.Value!)));

        var mismatch = await client.CondPutAsync(1, B("k"), B("v2"), put.Version + 100);
        Assert.Equal((Status.VersionMismatch, put.Version), (mismatch.Status, mismatch.Version));
        var cond = await client.CondPutAsync(1, B("k"), B("v2"), put.Version);
        Assert.Equal(Status.Ok, cond.Status);
        Assert.True(cond.Version > put.Version);
        Assert.Equal(Status.VersionMismatch, (await client.CondPutAsync(1, B("new"), B("x"), 5)).Status);
        Assert.Equal(Status.Ok, (await client.CondPutAsync(1, B("new"), B("x"), 0)).Status);

        Assert.Equal("v2", Encoding.UTF8.GetString((await client.GetAsync(1, B("k"))).Value!));
        Assert.Equal(Status.NotFound, (await client.GetAsync(2, B("k"))).Status); // tables are separate

        Assert.Equal(Status.Ok, (await client.DeleteAsync(1, B("k"))).Status);
        Assert.Equal(Status.NotFound, (await client.DeleteAsync(1, B("k"))).Status);
        Assert.Equal(Status.NotFound, (await client.GetAsync(1, B("k"))).Status);

        await client.NoopAsync();
    }

    [Fact]
    public async Task MultiGet_MixedFoundAndMissing_ResultsInKeyOrder()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        await client.PutAsync(3, B("a"), B("1"));
        await client.PutAsync(3, B("c"), B("3"));
        var results = await client.MultiGetAsync(3, [B("a"), B("b"), B("c")]);
        Assert.Equal([Status.Ok, Status.NotFound, Status.Ok], results.Select(r => r.Status));
        Assert.Equal("1", Encoding.UTF8.GetString(results[0].Value!));
        Assert.Equal("3", Encoding.UTF8.GetString(results[2].Value!));
    }

    [Fact]
    public async Task MultiGet_OfPackedFixedSizeKeys_ResultsInKeyOrder_AndARaggedListIsRefusedBeforeSending()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        await client.PutAsync(3, B("k01"), B("1"));
        await client.PutAsync(3, B("k03"), B("3"));
        var results = await client.MultiGetAsync(3, B("k01k02k03"), keySize: 3);
        Assert.Equal([Status.Ok, Status.NotFound, Status.Ok], results.Select(r => r.Status));
        Assert.Equal("1", Encoding.UTF8.GetString(results[0].Value!));
        Assert.Equal("3", Encoding.UTF8.GetString(results[2].Value!));
        Assert.Throws<ArgumentException>(() => client.MultiGetAsync(3, B("k01k0"), keySize: 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => client.MultiGetAsync(3, B("k01"), keySize: 0));
    }

    [Fact]
    public async Task ManyConcurrentRequests_AutoBatched_AllAnswered()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync(configure: o => o with { MaxBatchOps = 32, MaxInFlightBatches = 2 });
        var writes = Enumerable.Range(0, 2000).Select(i => client.PutAsync(0, B($"key{i}"), B($"value{i}")).AsTask()).ToArray();
        Assert.All(await Task.WhenAll(writes), w => Assert.Equal(Status.Ok, w.Status));
        var reads = await Task.WhenAll(Enumerable.Range(0, 2000).Select(i => client.GetAsync(0, B($"key{i}")).AsTask()));
        for (int i = 0; i < reads.Length; i++)
            Assert.Equal($"value{i}", Encoding.UTF8.GetString(reads[i].Value!));
    }

    [Fact]
    public async Task ExplicitBatch_RunsInOrder()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        var batch = new HybridBatch().Put(0, B("x"), B("1")).Get(0, B("x")).Delete(0, B("x")).Get(0, B("x")).Noop();
        var results = await client.ExecuteAsync(batch);
        Assert.Equal([Status.Ok, Status.Ok, Status.Ok, Status.NotFound, Status.Ok], results.Select(r => r.Status));
        Assert.Equal("1", Encoding.UTF8.GetString(results[1].Value!));
    }

    [Fact]
    public async Task Batch_PrefetchesTheKeysOfItsSingleKeyRequests_AndGetsTheSameResults()
    {
        CountingStore? counting = null;
        await using var node = await TestNode.StartAsync(wrapStore: st => counting = new CountingStore(st));
        await using var client = await node.ConnectAsync();
        var batch = new HybridBatch();
        for (int i = 0; i < 20; i++)
            batch.Put(0, B($"p{i}"), B($"v{i}"));
        for (int i = 0; i < 20; i++)
            batch.Get(0, B($"p{i}")).Noop();
        batch.Delete(0, B("p0")).Get(0, B("p0"));
        long before = counting!.Prefetches;
        var results = await client.ExecuteAsync(batch);
        Assert.Equal(20 + 20 + 2, counting.Prefetches - before); // puts, gets, the delete and the last get; no noop
        Assert.All(results.Take(20), r => Assert.Equal(Status.Ok, r.Status));
        for (int i = 0; i < 20; i++)
            Assert.Equal($"v{i}", Encoding.UTF8.GetString(results[20 + (2 * i)].Value!));
        Assert.Equal(Status.NotFound, results[^1].Status);
    }

    [Fact]
    public async Task ViewChange_ClientResendsWithNewView_RequestSucceeds()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        await client.PutAsync(0, B("v"), B("before"));
        ulong before = client.View;
        node.Node.View.Advance(before + 5);
        // The cut is asynchronous: wait until every worker has refreshed into the new view.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!node.Node.View.AllWorkersAtLeast(before + 5) && DateTime.UtcNow < deadline)
            await Task.Delay(1);
        Assert.True(node.Node.View.AllWorkersAtLeast(before + 5));
        var get = await client.GetAsync(0, B("v"));
        Assert.Equal(Status.Ok, get.Status);
        Assert.Equal(before + 5, client.View);
        Assert.Contains("status=\"viewchanged\"", node.Node.ScrapeMetrics());
    }

    [Fact]
    public async Task Metrics_StayOnLoopback_WhenTheNodeListensOnEveryAddress_UnlessToldWhere()
    {
        // The metrics name every tenant with its traffic and have no authentication: a node bound to 0.0.0.0 served
        // them to anyone who could reach it.
        var outside = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == System.Net.NetworkInformation.OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(a));
        if (outside is null)
        {
            Console.WriteLine("skipped: this machine has no non-loopback IPv4 address to try the metrics port from");
            return;
        }
        foreach (System.Net.IPAddress? metricsBind in new[] { null, System.Net.IPAddress.Any })
        {
            await using var node = await TestNode.StartAsync(configure: o => o with { BindAddress = System.Net.IPAddress.Any, MetricsBindAddress = metricsBind });
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            Assert.Contains("hybrid_memory_bytes", await http.GetStringAsync($"http://127.0.0.1:{node.Node.MetricsPort}/metrics"));
            Task<string> fromOutside = http.GetStringAsync($"http://{outside}:{node.Node.MetricsPort}/metrics");
            if (metricsBind is null)
                await Assert.ThrowsAsync<HttpRequestException>(() => fromOutside);
            else
                Assert.Contains("hybrid_memory_bytes", await fromOutside);
        }
    }

    [Fact]
    public async Task Metrics_ScrapedOverHttp_CountOpsByTenantAndOp()
    {
        await using var node = await TestNode.StartAsync();
        await using var client = await node.ConnectAsync();
        for (int i = 0; i < 5; i++)
            await client.PutAsync(0, B($"m{i}"), B("v"));
        await client.GetAsync(0, B("m1"));
        using var http = new HttpClient();
        string text = await http.GetStringAsync($"http://127.0.0.1:{node.Node.MetricsPort}/metrics");
        Assert.Contains("hybrid_ops_total{tenant=\"default\",op=\"put\"} 5", text);
        Assert.Contains("hybrid_ops_total{tenant=\"default\",op=\"get\"} 1", text);
        Assert.Contains("hybrid_batch_duration_seconds_bucket{le=\"+Inf\"}", text);
        Assert.Contains("hybrid_memory_bytes", text);
        Assert.Contains("hybrid_log_bytes", text);
        Assert.Matches(@"hybrid_process_gc_collections_total\{generation=""2""\} \d+\n", text);
        Assert.Matches(@"hybrid_process_gc_pause_seconds_total [0-9.E+-]+\n", text);
        Assert.Matches(@"hybrid_process_allocated_bytes_total [1-9]\d*\n", text);
    }
}
