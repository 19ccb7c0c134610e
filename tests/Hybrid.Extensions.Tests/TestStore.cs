using System.Runtime.InteropServices;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions.Tests;

/// <summary>
/// In-memory store standing in for the node's storage: thread-safe (schedulers on two threads share it),
/// and able to stall inside one call to imitate a BCL call the meters cannot see into.
/// </summary>
internal sealed class TestStore : IExtensionStore, IExtensionStepStore
{
    private readonly Dictionary<(ulong, uint, string), byte[]> _records = new();
    private readonly Lock _lock = new();

    private readonly ThreadLocal<bool> _inStep = new();
    private int _stepsBegun, _stepsEnded, _pauses, _prefetches, _readsOutsideSteps;

    /// <summary>What <see cref="IExtensionStepStore.WriteSequence"/> reports (a real store: its session's last commit sequence).</summary>
    public long WriteSequence { get; set; }

    long IExtensionStepStore.WriteSequence => WriteSequence;

    /// <summary>Step notifications from the schedulers (<see cref="IExtensionStepStore"/>), over all threads.</summary>
    public int StepsBegun => Volatile.Read(ref _stepsBegun);

    public int StepsEnded => Volatile.Read(ref _stepsEnded);

    public int Pauses => Volatile.Read(ref _pauses);

    public int Prefetches => Volatile.Read(ref _prefetches);

    /// <summary>Reads that happened outside a step of the reading thread (0 when invoked through a scheduler).</summary>
    public int ReadsOutsideSteps => Volatile.Read(ref _readsOutsideSteps);

    /// <summary>True between BeginStep and EndStep on the calling thread.</summary>
    public bool InStep => _inStep.Value;

    public void BeginStep()
    {
        Assert.False(_inStep.Value, "BeginStep inside a step");
        _inStep.Value = true;
        Interlocked.Increment(ref _stepsBegun);
    }

    public void PauseStep()
    {
        Assert.True(_inStep.Value, "PauseStep outside a step");
        Interlocked.Increment(ref _pauses);
    }

    public void EndStep()
    {
        Assert.True(_inStep.Value, "EndStep outside a step");
        _inStep.Value = false;
        Interlocked.Increment(ref _stepsEnded);
    }

    public void Prefetch(ulong tenant, uint table, ReadOnlySpan<byte> keys, int keySize) => Interlocked.Increment(ref _prefetches);

    /// <summary>A TryGet of a key equal to this stalls for <see cref="StallFor"/>.</summary>
    public byte[]? StallKey { get; set; }

    public TimeSpan StallFor { get; set; } = TimeSpan.FromMilliseconds(400);

    /// <summary>When positive, the stall is this many iterations of CPU work (<see cref="Spin"/>) instead of a sleep.</summary>
    public long StallSpins { get; set; }

    /// <summary>The sleep stall is a wait of the host's on the extension's behalf (<see cref="Meter.BeginHostWait"/>).</summary>
    public bool StallAsHostWait { get; set; }

    /// <summary>When positive, the stall is this much CPU time of the stalled thread, however long it waits for a CPU.</summary>
    public TimeSpan StallCpu { get; set; }

    /// <summary>The calling thread's time on a CPU so far (<c>/proc/thread-self/schedstat</c>, ns; updated at least every tick).</summary>
    public static long ThreadCpuNanoseconds()
    {
        // Without allocating: a stall that allocated started garbage collections, and a starved thread waiting for one
        // sleeps (the watchdog would count that).
        Span<byte> text = stackalloc byte[128];
        int length;
        using (var file = File.OpenHandle("/proc/thread-self/schedstat"))
        {
            length = RandomAccess.Read(file, text, 0);
        }
        return System.Buffers.Text.Utf8Parser.TryParse(text[..length], out long nanos, out _) ? nanos : throw new InvalidDataException("schedstat");
    }

    /// <summary>A fixed amount of CPU work (what it costs in wall time depends on the CPU the thread gets).</summary>
    public static long Spin(long iterations)
    {
        long acc = 1;
        for (long i = 0; i < iterations; i++)
        {
            acc += i ^ (acc >> 3);
        }
        return acc;
    }

    public bool TryGet(ulong tenant, uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        if (!_inStep.Value)
        {
            Interlocked.Increment(ref _readsOutsideSteps);
        }
        if (StallKey is { } stall && key.SequenceEqual(stall))
        {
            if (StallCpu > TimeSpan.Zero)
            {
                long from = ThreadCpuNanoseconds();
                while (ThreadCpuNanoseconds() - from < StallCpu.Ticks * 100)
                    Spin(20_000);
            }
            else if (StallSpins > 0)
            {
                Spin(StallSpins);
            }
            else if (StallAsHostWait)
            {
                long started = Meter.BeginHostWait(); // as a node's store waits for a record read from disk
                Thread.Sleep(StallFor);
                Meter.EndHostWait(started);
            }
            else
            {
                Thread.Sleep(StallFor);
            }
        }
        lock (_lock)
        {
            var found = _records.TryGetValue((tenant, table, Convert.ToHexString(key)), out var v);
            value = v;
            return found;
        }
    }

    public void Put(ulong tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        lock (_lock)
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_records, (tenant, table, Convert.ToHexString(key)), out _);
            slot = value.ToArray();
        }
    }

    public bool Delete(ulong tenant, uint table, ReadOnlySpan<byte> key)
    {
        lock (_lock)
        {
            return _records.Remove((tenant, table, Convert.ToHexString(key)));
        }
    }
}

/// <summary>Collects results by cookie.</summary>
internal sealed class ResultSink : IExtensionResultSink
{
    public Dictionary<long, (ExtensionStatus Status, byte[] Response, string? Error)> Results { get; } = new();

    public void OnCompleted(long cookie, ExtensionStatus status, ReadOnlySpan<byte> response, string? error)
    {
        lock (Results)
        {
            Results[cookie] = (status, response.ToArray(), error);
        }
    }

    public (ExtensionStatus Status, byte[] Response, string? Error) Get(long cookie)
    {
        lock (Results)
        {
            return Results.TryGetValue(cookie, out var r) ? r : throw new Xunit.Sdk.XunitException($"no result for cookie {cookie}");
        }
    }
}

/// <summary>A host, one store and one scheduler; helpers to install, invoke and drain.</summary>
internal sealed class Harness : IDisposable
{
    private long _nextCookie;

    public Harness(ExtensionHostOptions? options = null, bool watchdog = false, int schedulers = 1)
    {
        // Packing runs only when a test asks (Host.Pack): counts of contexts and modules stay deterministic.
        Host = new ExtensionHost((options ?? new ExtensionHostOptions()) with { PackInBackground = false }, watchdog);
        Schedulers = Enumerable.Range(0, schedulers).Select(_ => Host.CreateScheduler(Store, Sink)).ToArray();
    }

    public ExtensionHost Host { get; }
    public TestStore Store { get; } = new();
    public ResultSink Sink { get; } = new();
    public ExtensionScheduler[] Schedulers { get; }
    public ExtensionScheduler Scheduler => Schedulers[0];

    public void InstallOk(ulong tenant, string name, string source)
    {
        var result = Host.Install(tenant, name, source);
        Assert.True(result.Success, string.Join("\n", result.Errors));
    }

    /// <summary>Invokes on the first scheduler and runs it until the result arrives.</summary>
    public (ExtensionStatus Status, byte[] Response, string? Error) Call(ulong tenant, string name, ReadOnlySpan<byte> args)
    {
        var cookie = Interlocked.Increment(ref _nextCookie);
        Scheduler.Invoke(tenant, name, args, cookie);
        for (var i = 0; i < 1_000_000 && !Sink.Results.ContainsKey(cookie); i++)
        {
            Scheduler.Run();
        }
        return Sink.Get(cookie);
    }

    public long NextCookie() => Interlocked.Increment(ref _nextCookie);

    public void Dispose() => Host.Dispose();
}

internal static class Bytes
{
    public static byte[] Of(params object[] fields)
    {
        var buffer = new List<byte>();
        foreach (var f in fields)
        {
            buffer.AddRange(f switch
            {
                uint u => BitConverter.GetBytes(u),
                int i => BitConverter.GetBytes(i),
                ulong ul => BitConverter.GetBytes(ul),
                long l => BitConverter.GetBytes(l),
                ushort s => BitConverter.GetBytes(s),
                byte[] b => b,
                _ => throw new ArgumentException(f.GetType().Name),
            });
        }
        return [.. buffer];
    }

    public static long Int64(byte[] b, int at = 0) => BitConverter.ToInt64(b, at);
}
