using System.Buffers;
using System.Text;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

public sealed class PendingTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FasterKvStore _store;
    private readonly IKvSession _s;
    private readonly List<string> _keys = Enumerable.Range(0, 1500).Select(i => $"cold:{i}").ToList();

    public PendingTests()
    {
        _store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory, memoryBudget: 16384));
        _s = _store.NewSession();
        foreach (var k in _keys)
            _s.PutNow(k, "value-of-" + k + new string('.', 80));
    }

    public void Dispose()
    {
        _s.Dispose();
        _store.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Get_ColdRecord_GoesPendingAndCompletesThroughSink()
    {
        var output = new ArrayBufferWriter<byte>();
        var result = _s.Get(1, 1, B(_keys[0]), output, 1234);
        Assert.Equal(StoreStatus.Pending, result.Status);
        Assert.Equal(0, output.WrittenCount);
        Assert.Equal(1, _s.PendingCount);
        var sink = new CollectingSink();
        int handed = 0;
        while (_s.PendingCount > 0)
        {
            handed += _s.CompletePending(sink);   // non-blocking polls, as a worker does
            Thread.Yield();
        }
        Assert.Equal(1, handed);
        var (r, v) = sink.Results[1234];
        Assert.Equal(StoreStatus.Ok, r.Status);
        Assert.Equal(1UL, r.Version);
        Assert.Equal("value-of-" + _keys[0] + new string('.', 80), Encoding.UTF8.GetString(v));
    }

    [Fact]
    public void ManyColdReads_AllComplete_WithTheirContexts()
    {
        var output = new ArrayBufferWriter<byte>();
        int pending = 0;
        for (int i = 0; i < 100; i++)
        {
            output.ResetWrittenCount();
            if (_s.Get(1, 1, B(_keys[i]), output, (ulong)i).IsPending)
                pending++;
        }
        Assert.True(pending > 50, $"only {pending} reads went to disk");
        var sink = new CollectingSink();
        while (_s.PendingCount > 0)
            _s.CompletePending(sink, wait: true);
        Assert.Equal(pending, sink.Results.Count);
        foreach (var (ctx, (r, v)) in sink.Results)
            Assert.Equal("value-of-" + _keys[(int)ctx] + new string('.', 80), Encoding.UTF8.GetString(v));
    }

    [Fact]
    public void Writes_OnColdRecords_CompleteWithCorrectVersions()
    {
        var inc = _s.Put(1, 1, B(_keys[1]), B("41"), 1);
        var app = _s.Append(1, 1, B(_keys[2]), B("!"), 2);
        var del = _s.Delete(1, 1, B(_keys[3]), 3);
        var cas = _s.PutIfVersion(1, 1, B(_keys[4]), B("cas"), 1, 4);
        var pulled = _s.ApplyPulled(1, 1, B(_keys[5]), B("pulled"), 1, 5);
        Assert.All(new[] { inc, app, del, cas, pulled }, r => Assert.Equal(StoreStatus.Pending, r.Status));
        var sink = new CollectingSink();
        while (_s.PendingCount > 0)
            _s.CompletePending(sink, wait: true);
        Assert.Equal((StoreStatus.Ok, 2UL), (sink.Results[1].Result.Status, sink.Results[1].Result.Version));
        Assert.Equal(StoreStatus.Ok, sink.Results[2].Result.Status);
        Assert.Equal(StoreStatus.Ok, sink.Results[3].Result.Status);
        Assert.Equal((StoreStatus.Ok, 2UL), (sink.Results[4].Result.Status, sink.Results[4].Result.Version));
        Assert.Equal(StoreStatus.Stale, sink.Results[5].Result.Status);

        Assert.Equal(42, _s.Now(x => x.Increment(1, 1, B(_keys[1]), 1, 9)).Number);
        Assert.EndsWith(".!", _s.GetNow(_keys[2]).Value);
        Assert.Equal(StoreStatus.NotFound, _s.GetNow(_keys[3]).Result.Status);
        Assert.Equal("cas", _s.GetNow(_keys[4]).Value);
    }

    [Fact]
    public void MultiGet_MixOfHotAndCold()
    {
        var sink = new CollectingSink();
        ReadOnlyMemory<byte>[] keys = [B(_keys[^1]), B(_keys[0]), B("absent")];
        int pending = _s.MultiGet(1, 1, keys, 10, sink);
        Assert.Equal(1, pending);
        while (_s.PendingCount > 0)
            _s.CompletePending(sink, wait: true);
        Assert.Equal(3, sink.Results.Count);
        Assert.StartsWith("value-of-" + _keys[0], Encoding.UTF8.GetString(sink.Results[11].Value));
        Assert.Equal(StoreStatus.NotFound, sink.Results[12].Result.Status);
    }

    private sealed class ChainingSink(IKvSession session) : ICompletionSink
    {
        public readonly Dictionary<ulong, string> Values = [];
        public readonly ArrayBufferWriter<byte> Own = new();

        public void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value)
        {
            Values[context] = Encoding.UTF8.GetString(value);
            if (context == 1)
            {
                // A follow-up read started from inside the sink writes to its own output (or completes later).
                Own.ResetWrittenCount();
                var next = session.Get(1, 1, B("hot"), Own, 2);
                if (!next.IsPending)
                    Values[2] = Encoding.UTF8.GetString(Own.WrittenSpan);
            }
        }
    }

    [Fact]
    public void Sink_MayStartOperations()
    {
        _s.PutNow("hot", "hot-value");
        var sink = new ChainingSink(_s);
        Assert.True(_s.Get(1, 1, B(_keys[0]), new ArrayBufferWriter<byte>(), 1).IsPending);
        while (_s.PendingCount > 0)
            _s.CompletePending(sink, wait: true);
        Assert.StartsWith("value-of-" + _keys[0], sink.Values[1]);
        Assert.Equal("hot-value", sink.Values[2]);
    }
}
