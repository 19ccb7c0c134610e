using System.Diagnostics;
using System.Runtime.CompilerServices;
using HdrHistogram;
using Hybrid.Client;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Cli.Bench;

/// <summary>
/// Drives a node with YCSB-style load over the native protocol: <see cref="BenchOptions.Sessions"/> connections, each
/// with <see cref="BenchOptions.Pipeline"/> loops that send explicit batches of <see cref="BenchOptions.Batch"/>
/// requests. Each loop owns its random generator, key scratch buffer and latency histogram (merged at the end), so
/// loops share nothing but the insert counter. Keys are written into the scratch buffer and values are slices of
/// one pre-generated buffer: the loop itself allocates nothing per request.
/// </summary>
internal sealed class BenchRunner
{
    private const long HighestLatencyNanos = 60L * 1_000_000_000;
    private readonly BenchOptions _options;
    private readonly byte[] _values;
    private readonly ZipfGenerator _zipf;
    private long _records;
    private volatile bool _recording;
    private volatile bool _stop;

    /// <summary>A runner for <paramref name="options"/> (validated here).</summary>
    public BenchRunner(BenchOptions options)
    {
        options.Validate();
        _options = options;
        _zipf = new ZipfGenerator(options.Keys, options.Theta);
        _values = new byte[options.ValueSize + 256];
        var random = new FastRandom(options.Seed);
        for (int i = 0; i < _values.Length; i++)
            _values[i] = (byte)('a' + random.NextLong(26));
        _records = options.Keys;
    }

    /// <summary>Progress callback: (phase, fraction done 0..1, operations per second over the last report).</summary>
    public Action<string, double, double>? Progress { get; init; }

    /// <summary>Connects, loads the records if asked, then runs each workload; one result per workload.</summary>
    public async Task<IReadOnlyList<BenchResult>> RunAsync(CancellationToken cancellationToken = default)
    {
        var spec = _options.Transport is { } text ? TransportSpec.Parse(text, server: false) : null;
        // One transport per process (a process hosts one DPDK port), shared by every session, disposed after them.
        using var transport = spec is null ? null : TransportFactory.Create(spec.Options);
        var clientOptions = new HybridClientOptions
        {
            EndPoint = _options.EndPoint,
            Transport = transport,
            TransportAddress = spec?.Address,
            Tenant = _options.Tenant,
            Secret = _options.Secret,
            MaxBatchOps = _options.Batch,
            MaxBatchBytes = 1 << 20,
            MaxInFlightBatches = _options.Pipeline,
            InlineCompletions = true,
            Timeout = TimeSpan.FromSeconds(30),
        };
        var sessions = new HybridSession[_options.Sessions];
        try
        {
            for (int i = 0; i < sessions.Length; i++)
                sessions[i] = await HybridSession.ConnectAsync(clientOptions, cancellationToken).ConfigureAwait(false);
            if (_options.Load)
                await LoadAsync(sessions).ConfigureAwait(false);
            var results = new List<BenchResult>();
            foreach (var workload in _options.Workloads)
                results.Add(await RunWorkloadAsync(sessions, workload, cancellationToken).ConfigureAwait(false));
            return results;
        }
        finally
        {
            foreach (var session in sessions)
            {
                if (session is not null)
                    await session.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task LoadAsync(HybridSession[] sessions)
    {
        long next = 0;
        long total = _options.Keys;
        var loops = new Task[sessions.Length * _options.Pipeline];
        var started = Stopwatch.StartNew();
        for (int i = 0; i < loops.Length; i++)
        {
            var session = sessions[i % sessions.Length];
            loops[i] = Task.Run(async () =>
            {
                var keys = new byte[_options.Batch * KeyFormat.Length];
                while (true)
                {
                    long first = Interlocked.Add(ref next, _options.Batch) - _options.Batch;
                    if (first >= total)
                        return;
                    int count = (int)Math.Min(_options.Batch, total - first);
                    var batch = new HybridBatch();
                    for (int j = 0; j < count; j++)
                        batch.Put(_options.Table, KeyAt(keys, j, first + j), ValueAt(first + j));
                    foreach (var result in await session.ExecuteAsync(batch).ConfigureAwait(false))
                    {
                        if (result.Status != Status.Ok)
                            throw new InvalidOperationException($"load: a Put answered {result.Status}");
                    }
                }
            });
        }
        var all = Task.WhenAll(loops);
        while (!all.IsCompleted)
        {
            await Task.WhenAny(all, Task.Delay(250)).ConfigureAwait(false);
            long done = Math.Min(Volatile.Read(ref next), total);
            Progress?.Invoke("load", (double)done / total, done / Math.Max(started.Elapsed.TotalSeconds, 1e-3));
        }
        await all.ConfigureAwait(false);
    }

    private async Task<BenchResult> RunWorkloadAsync(HybridSession[] sessions, Workload workload, CancellationToken cancellationToken)
    {
        _recording = false;
        _stop = false;
        var loops = new Loop[sessions.Length * _options.Pipeline];
        var tasks = new Task[loops.Length];
        for (int i = 0; i < loops.Length; i++)
        {
            loops[i] = new Loop(this, sessions[i % sessions.Length], workload, _options.Seed + (ulong)i + 1);
            var loop = loops[i];
            tasks[i] = Task.Run(loop.RunAsync, CancellationToken.None);
        }
        var name = $"{workload.Name} ({(workload.Latest ? "latest" : Describe(_options.Distribution))})";
        await PhaseAsync(name + " warm-up", _options.Warmup, loops, cancellationToken).ConfigureAwait(false);
        _recording = true;
        var window = Stopwatch.StartNew();
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: false);
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        await PhaseAsync(name, _options.Duration, loops, cancellationToken).ConfigureAwait(false);
        _stop = true;
        double seconds = window.Elapsed.TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: false) - allocatedBefore;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        await Task.WhenAll(tasks).ConfigureAwait(false);
        var merged = new LongHistogram(HighestLatencyNanos, 3);
        long ops = 0, errors = 0;
        foreach (var loop in loops)
        {
            merged.Add(loop.Latency);
            ops += loop.Ops;
            errors += loop.Errors;
        }
        return new BenchResult(workload.Name, workload.Latest ? "latest" : Describe(_options.Distribution), _options.Keys, _options.ValueSize,
            _options.Sessions, _options.Batch, _options.Pipeline, seconds, ops, errors,
            Micros(merged, 50), Micros(merged, 99), Micros(merged, 99.9), merged.GetMaxValue() / 1000.0)
        {
            ClientBytesPerOp = ops > 0 ? (double)allocated / ops : 0,
            ClientCpuMicrosPerOp = ops > 0 ? cpu.TotalMicroseconds / ops : 0,
        };
    }

    private async Task PhaseAsync(string name, TimeSpan length, Loop[] loops, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        long last = Completed(loops);
        var lastAt = clock.Elapsed;
        while (clock.Elapsed < length && !cancellationToken.IsCancellationRequested)
        {
            var wait = length - clock.Elapsed;
            await Task.Delay(wait < TimeSpan.FromMilliseconds(250) ? wait : TimeSpan.FromMilliseconds(250), CancellationToken.None).ConfigureAwait(false);
            long now = Completed(loops);
            var at = clock.Elapsed;
            Progress?.Invoke(name, Math.Min(1, at / length), (now - last) / Math.Max((at - lastAt).TotalSeconds, 1e-3));
            last = now;
            lastAt = at;
        }
        foreach (var loop in loops)
        {
            if (loop.Failure is { } failure)
                throw new InvalidOperationException($"a load loop failed: {failure.Message}", failure);
        }
    }

    private static long Completed(Loop[] loops)
    {
        long sum = 0;
        foreach (var loop in loops)
            sum += Volatile.Read(ref loop.Issued);
        return sum;
    }

    private static double Micros(LongHistogram histogram, double percentile) =>
        histogram.TotalCount == 0 ? 0 : histogram.GetValueAtPercentile(percentile) / 1000.0;

    private static string Describe(KeyDistribution distribution) => distribution == KeyDistribution.Zipf ? "zipf" : "uniform";

    private ReadOnlyMemory<byte> ValueAt(long index) => _values.AsMemory((int)(index & 0xFF), _options.ValueSize);

    private static ReadOnlyMemory<byte> KeyAt(byte[] scratch, int slot, long index)
    {
        var memory = scratch.AsMemory(slot * KeyFormat.Length, KeyFormat.Length);
        KeyFormat.Write(index, memory.Span);
        return memory;
    }

    /// <summary>One loop: a sequence of batches on one session, one in flight at a time.</summary>
    private sealed class Loop(BenchRunner runner, HybridSession session, Workload workload, ulong seed)
    {
        private readonly BenchOptions _options = runner._options;
        private readonly byte[] _keys = new byte[runner._options.Batch * KeyFormat.Length];
        private readonly int[] _rmwSlots = new int[runner._options.Batch];
        private readonly ScanKeys _scanKeys = new();
        private readonly ValueTask<GetResult[]>[] _scans = new ValueTask<GetResult[]>[runner._options.Batch];
        // Reused every batch: with these the loop and the session allocate nothing per request or per batch.
        private readonly HybridBatch _batch = new();
        private readonly HybridBatch _writes = new();
        private readonly HybridBatchResults _results = new();
        private FastRandom _random = new(seed);

        /// <summary>Operations completed so far (warm-up included): the progress display reads it.</summary>
        public long Issued;

        public LongHistogram Latency { get; } = new(HighestLatencyNanos, 3);

        /// <summary>Operations completed in the measured window.</summary>
        public long Ops { get; private set; }

        /// <summary>Requests that answered neither Ok nor NotFound, or failed.</summary>
        public long Errors { get; private set; }

        public Exception? Failure { get; private set; }

        public async Task RunAsync()
        {
            try
            {
                while (!runner._stop)
                    await OneBatchAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                Failure = e;
            }
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        private async ValueTask OneBatchAsync()
        {
            var batch = _batch.Clear();
            int rmw = 0, scans = 0;
            for (int i = 0; i < _options.Batch; i++)
            {
                switch (workload.Choose(_random.NextDouble()))
                {
                    case OpKind.Read:
                        batch.Get(_options.Table, KeyAt(_keys, i, NextKey()));
                        break;
                    case OpKind.Update:
                        long update = NextKey();
                        batch.Put(_options.Table, KeyAt(_keys, i, update), runner.ValueAt(update + (long)_random.NextLong(256)));
                        break;
                    case OpKind.Insert:
                        long insert = Interlocked.Increment(ref runner._records) - 1;
                        batch.Put(_options.Table, KeyAt(_keys, i, insert), runner.ValueAt(insert));
                        break;
                    case OpKind.ReadModifyWrite:
                        batch.Get(_options.Table, KeyAt(_keys, i, NextKey()));
                        _rmwSlots[rmw++] = i;
                        break;
                    case OpKind.Scan:
                        _scanKeys.Fill(NextKey(), 1 + (int)_random.NextLong(Workload.MaxScanLength), Volatile.Read(ref runner._records));
                        _scans[scans++] = session.MultiGetAsync(_options.Table, _scanKeys);
                        break;
                    default:
                        batch.Noop();
                        break;
                }
            }
            long start = Stopwatch.GetTimestamp();
            // ExecuteAsync forces the open frame out, so the MultiGets queued above leave in the same frame.
            await session.ExecuteAsync(batch, _results).ConfigureAwait(false);
            long errors = CountErrors(_results);
            for (int i = 0; i < scans; i++)
            {
                foreach (var r in await _scans[i].ConfigureAwait(false))
                    errors += r.Status is Status.Ok or Status.NotFound ? 0 : 1;
            }
            long end = Stopwatch.GetTimestamp();
            long rmwEnd = end;
            if (rmw > 0)
            {
                // Modify: the value written differs from the one read (another slice of the value buffer).
                var writes = _writes.Clear();
                for (int i = 0; i < rmw; i++)
                {
                    int slot = _rmwSlots[i];
                    writes.Put(_options.Table, _keys.AsMemory(slot * KeyFormat.Length, KeyFormat.Length), runner.ValueAt(slot + (long)_random.NextLong(256)));
                }
                await session.ExecuteAsync(writes, _results).ConfigureAwait(false);
                errors += CountErrors(_results);
                rmwEnd = Stopwatch.GetTimestamp();
            }
            Interlocked.Add(ref Issued, _options.Batch);
            if (runner._recording && !runner._stop)
            {
                int plain = _options.Batch - rmw;
                if (plain > 0)
                    Latency.RecordValueWithCount(Nanos(end - start), plain);
                if (rmw > 0)
                    Latency.RecordValueWithCount(Nanos(rmwEnd - start), rmw);
                Ops += _options.Batch;
                Errors += errors;
            }
        }

        private long NextKey()
        {
            if (workload.Latest)
            {
                long newest = Volatile.Read(ref runner._records) - 1;
                return Math.Max(0, newest - runner._zipf.Next(ref _random));
            }
            return _options.Distribution == KeyDistribution.Zipf
                ? runner._zipf.NextScrambled(ref _random)
                : _random.NextLong(_options.Keys);
        }

        private static long CountErrors(HybridBatchResults results)
        {
            long errors = 0;
            for (int i = 0; i < results.Count; i++)
                errors += results.StatusAt(i) is Status.Ok or Status.NotFound ? 0 : 1;
            return errors;
        }

        private static long Nanos(long ticks) =>
            Math.Min(HighestLatencyNanos, (long)(ticks * (1_000_000_000.0 / Stopwatch.Frequency)));
    }

    /// <summary>The keys of one "scan": consecutive key numbers in reused buffers (MultiGetAsync copies them at once).</summary>
    private sealed class ScanKeys : IReadOnlyList<byte[]>
    {
        private readonly byte[][] _keys = Enumerable.Range(0, Workload.MaxScanLength).Select(_ => new byte[KeyFormat.Length]).ToArray();

        public int Count { get; private set; }

        public byte[] this[int index] => _keys[index];

        public void Fill(long first, int length, long records)
        {
            Count = (int)Math.Max(1, Math.Min(length, records - first));
            for (int i = 0; i < Count; i++)
                KeyFormat.Write(first + i, _keys[i]);
        }

        public IEnumerator<byte[]> GetEnumerator()
        {
            for (int i = 0; i < Count; i++)
                yield return _keys[i];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
