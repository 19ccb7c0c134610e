using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

public sealed class RecoveryTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void WriteSample(IKvStore store)
    {
        using var s = store.NewSession();
        for (int i = 0; i < 200; i++)
            s.PutNow($"k{i}", $"v{i}");
        s.PutNow("k0", "v0-again");                    // version 2
        s.Delete(1, 1, B("k1"), 0);                    // tombstone version 2
        s.Increment(1, 1, B("counter"), 41, 0);
        s.Append(1, 1, B("log"), B("ab"), 0);
        s.Append(1, 1, B("log"), B("cd"), 0);
        store.RaiseVersionFloor(1000);
        s.PutNow("after-floor", "x", tenant: 2);       // version 1001
    }

    private static void AssertSample(IKvStore store)
    {
        using var s = store.NewSession();
        for (int i = 2; i < 200; i++)
            Assert.Equal($"v{i}", s.GetNow($"k{i}").Value);
        var (k0, v0) = s.GetNow("k0");
        Assert.Equal(("v0-again", 2UL), (v0, k0.Version));
        Assert.Equal(StoreStatus.NotFound, s.GetNow("k1").Result.Status);
        Assert.Equal(StoreStatus.Stale, s.ApplyPulled(1, 1, B("k1"), B("old"), 1, 0).Status); // tombstone kept its version
        Assert.Equal("41", s.GetNow("counter").Value);
        Assert.Equal("abcd", s.GetNow("log").Value);
        Assert.Equal(1001UL, s.GetNow("after-floor", tenant: 2).Result.Version);
        Assert.True(store.MaxVersion >= 1001);
        Assert.Equal(1002UL, s.PutNow("new-after-recovery", "y").Version);     // the floor survived
        Assert.True(store.TenantBytes(2) > 0);
        Assert.True(store.TenantBytes(1) > 200 * 3);
        // Live records, recounted at open: k0..k199 but k1, counter, log, new-after-recovery (and the crash test's
        // "last"); after-floor.
        long last = s.GetNow("last").Result.Status == StoreStatus.Ok ? 1 : 0;
        Assert.Equal((202L + last, 1L), (store.TenantRecords(1), store.TenantRecords(2)));
    }

    [Fact]
    public void MemoryMode_RestartsEmpty()
    {
        using (var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory)))
            WriteSample(store);
        using var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Memory));
        using var s = reopened.NewSession();
        Assert.Equal(StoreStatus.NotFound, s.GetNow("k5").Result.Status);
        Assert.Equal(0UL, reopened.MaxVersion);
        Assert.Equal(0, reopened.TenantBytes(1));
    }

    [Fact]
    public void A_damaged_store_is_refused_at_open_and_left_as_it_was()
    {
        // Found by a probe: each of these opened an empty (or torn) store without a word, and the first one then purged
        // the checkpoint that held the data.
        using (var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync)))
            WriteSample(store);
        string meta = Path.Combine(_dir.Path, "checkpoint.json");
        string segment = Path.Combine(_dir.Path, "hlog", "data.log.0");
        byte[] metaBytes = File.ReadAllBytes(meta), segmentBytes = File.ReadAllBytes(segment);

        var memory = Assert.Throws<InvalidOperationException>(() => FasterKvStore.Open(_dir.Options(DurabilityMode.Memory)));
        Assert.Contains("holds a durable store", memory.Message, StringComparison.Ordinal);

        File.Delete(meta);
        Assert.Contains("checkpoint.json is missing", Refused().Message, StringComparison.Ordinal);
        File.WriteAllText(meta, "{\"Token\":");
        Assert.Contains("checkpoint.json is damaged", Refused().Message, StringComparison.Ordinal);
        File.WriteAllBytes(meta, metaBytes);

        File.WriteAllBytes(segment, segmentBytes[..(segmentBytes.Length / 2)]);
        Assert.Contains("data.log.0 is " + (segmentBytes.Length / 2) + " bytes, cut short", Refused().Message, StringComparison.Ordinal);
        File.Delete(segment);
        Assert.Contains("data.log.0 is missing or empty", Refused().Message, StringComparison.Ordinal);
        File.WriteAllBytes(segment, segmentBytes);

        // Nothing was lost on the way: every refusal left the files as they were.
        using var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        AssertSample(reopened);

        InvalidDataException Refused() => Assert.Throws<InvalidDataException>(() => FasterKvStore.Open(_dir.Options(DurabilityMode.Sync)).Dispose());
    }

    [Fact]
    public async Task An_operation_log_cut_below_its_last_commit_is_refused_at_open_naming_it()
    {
        // A probe's larger log died of an unhandled FasterException ("Uninitialized page found during scan"), exit 134;
        // this one, cut inside its first page, replayed as far as the cut and opened without a word.
        var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        WriteSample(store);
        using (var s = store.NewSession())
        {
            s.PutNow("last", "z");
            await store.WaitDurableAsync(s.LastWriteSequence);
        }
        store.SimulateCrash();
        string segment = Path.Combine(_dir.Path, "oplog", "data.log.0");
        using (var file = new FileStream(segment, FileMode.Open))
            file.SetLength(file.Length / 4);
        var refused = Assert.Throws<InvalidDataException>(() => FasterKvStore.Open(_dir.Options(DurabilityMode.Sync)).Dispose());
        Assert.Contains("data.log.0 is 2816 bytes, cut short: the operation log up to its last commit needs", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DurabilityMode.Async)]
    [InlineData(DurabilityMode.Sync)]
    public void CleanClose_ThenReopen_RecoversEverything(DurabilityMode mode)
    {
        using (var store = FasterKvStore.Open(_dir.Options(mode)))
            WriteSample(store);
        using var reopened = FasterKvStore.Open(_dir.Options(mode));
        AssertSample(reopened);
    }

    [Theory]
    [InlineData(DurabilityMode.Async)]
    [InlineData(DurabilityMode.Sync)]
    public async Task Crash_AfterDurableWrites_RecoversThemFromTheOperationLog(DurabilityMode mode)
    {
        var store = FasterKvStore.Open(_dir.Options(mode));
        WriteSample(store);
        var s = store.NewSession();
        s.PutNow("last", "z");
        await store.WaitDurableAsync(s.LastWriteSequence);
        Assert.True(store.IsDurable(s.LastWriteSequence));
        s.Dispose();
        store.SimulateCrash();
        using var reopened = FasterKvStore.Open(_dir.Options(mode));
        AssertSample(reopened);
        using var r = reopened.NewSession();
        Assert.Equal("z", r.GetNow("last").Value);
    }

    [Fact]
    public async Task A_restart_draws_a_new_incarnation_and_a_scan_cursor_planned_before_it_beyond_the_new_tail_is_refused()
    {
        // Recovery replays the operation log, so the restarted store holds the same records at other (here: lower)
        // addresses. A migration target's cursors from before the restart are meaningless; one beyond the new tail made
        // FASTER's scan throw a NullReferenceException (found by review). The store now says which opening it is, and
        // refuses such a cursor with a clear error.
        var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        long before = store.Incarnation;
        Assert.NotEqual(0, before);
        var s = store.NewSession();
        for (int i = 0; i < 1000; i++)
            s.PutNow($"k{i}", new string('a', 60));
        store.PlanScan(1); // the log so far becomes read-only: the rewrites below go to new addresses
        for (int i = 0; i < 1000; i += 2)
            s.PutNow($"k{i}", new string('b', 60));
        await store.WaitDurableAsync(s.LastWriteSequence);
        ScanCursor[] plan = store.PlanScan(4);
        s.Dispose();
        store.SimulateCrash();

        using var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        Assert.NotEqual(before, reopened.Incarnation);
        ScanCursor beyond = plan[^1];
        Assert.True(beyond.End > reopened.PlanScan(1).Max(c => c.End), "the replayed log should be shorter than the old one");
        using ISlotScanner scanner = reopened.NewScanner();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scanner.ScanChunk(beyond, 0, Slot.Count - 1, 100, int.MaxValue, new ScanCollector()));
        Assert.Contains("restarted", e.Message);
        // Cursors of a plan made now are fine, and find every key once with its latest value.
        var all = ScanAll(reopened, 0, Slot.Count - 1, 4, 50);
        Assert.Equal(1000, all.Count);
        Assert.All(all, r => Assert.Equal(int.Parse(r.Key[1..], System.Globalization.CultureInfo.InvariantCulture) % 2 == 0 ? 'b' : 'a', r.Value[0]));
    }

    [Fact]
    public async Task A_checkpoint_flushes_the_data_directory_after_its_metadata_names_it_and_before_the_old_one_goes()
    {
        // The old checkpoint is deleted and the op log truncated right after the metadata file is renamed: a rename
        // still in the page cache when the machine crashes would name a checkpoint that no longer exists.
        var seen = new List<(string Meta, int Checkpoints)>();
        string checkpoints = Path.Combine(_dir.Path, "checkpoints", "cpr-checkpoints");
        string meta = Path.Combine(_dir.Path, "checkpoint.json");
        var options = _dir.Options(DurabilityMode.Sync) with
        {
            SyncDirectory = d =>
            {
                if (d == _dir.Path)
                {
                    lock (seen)
                        seen.Add((File.Exists(meta) ? File.ReadAllText(meta) : "", Directory.GetDirectories(checkpoints).Length));
                }
            },
        };
        using var store = FasterKvStore.Open(options);
        using (var s = store.NewSession())
            s.PutNow("k", "v");
        await store.CheckpointAsync();
        using (var s = store.NewSession())
            s.PutNow("k", "v2");
        await store.CheckpointAsync();
        // Per checkpoint: once before the rename (with the checkpoint's new folders), once after it.
        Assert.Equal(4, seen.Count);
        Assert.Equal("", seen[0].Meta);
        Assert.NotEqual("", seen[1].Meta); // the call after the first rename saw its checkpoint named already
        Assert.Equal(seen[1].Meta, seen[2].Meta);
        Assert.NotEqual(seen[1].Meta, seen[3].Meta);
        Assert.Equal(2, seen[3].Checkpoints); // and the one it replaced not yet deleted
        Assert.Single(Directory.GetDirectories(checkpoints));
    }

    [Fact]
    public async Task A_checkpoints_new_folders_and_log_segments_are_flushed_before_its_metadata_names_it()
    {
        // The op log below the checkpoint is truncated once checkpoint.json names it: after a machine crash, a
        // checkpoint whose files' directory entries were still in the page cache would be all there is, and missing.
        var calls = new List<(string Directory, bool Named)>();
        string meta = Path.Combine(_dir.Path, "checkpoint.json");
        var options = _dir.Options(DurabilityMode.Sync) with
        {
            SyncDirectory = d =>
            {
                lock (calls)
                    calls.Add((d, File.Exists(meta)));
            },
        };
        using var store = FasterKvStore.Open(options);
        using (var s = store.NewSession())
        {
            for (int i = 0; i < 200; i++)
                s.PutNow($"k{i}", new string('v', 100));
        }
        await store.CheckpointAsync();
        string token = System.Text.Json.JsonDocument.Parse(File.ReadAllText(meta)).RootElement.GetProperty("Token").GetString()!;
        (string Directory, bool Named)[] seen;
        lock (calls)
            seen = [.. calls];
        int named = Array.FindIndex(seen, c => c.Directory == _dir.Path && c.Named);
        Assert.True(named > 0, "the data directory was not flushed after checkpoint.json was written");
        var before = seen[..named].Select(c => c.Directory).ToList();
        foreach (string part in new[] { "cpr-checkpoints", "index-checkpoints" })
        {
            Assert.Contains(Path.Combine(_dir.Path, "checkpoints", part, token), before);
            Assert.Contains(Path.Combine(_dir.Path, "checkpoints", part), before);
        }
        Assert.Contains(Path.Combine(_dir.Path, "checkpoints"), before);
        Assert.Contains(Path.Combine(_dir.Path, "hlog"), before);
    }

    [Fact]
    public async Task A_sync_write_is_durable_only_once_the_operation_logs_new_commit_file_is_flushed()
    {
        // FASTER writes each commit's metadata into a new file (oplog/log-commits/commit.N.0): until its directory entry
        // is on disk, a machine crash may lose that commit, so the write must not count as durable yet.
        string commits = Path.Combine(_dir.Path, "oplog", "log-commits");
        using var gate = new ManualResetEventSlim(true);
        using var entered = new ManualResetEventSlim(false);
        var options = _dir.Options(DurabilityMode.Sync) with
        {
            SyncDirectory = d =>
            {
                if (d == commits && !gate.IsSet)
                {
                    entered.Set();
                    gate.Wait(TimeSpan.FromSeconds(30));
                }
            },
        };
        using var store = FasterKvStore.Open(options);
        using var s = store.NewSession();
        s.PutNow("before", "v");
        await store.WaitDurableAsync(s.LastWriteSequence).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        gate.Reset();
        s.PutNow("k", "v");
        long sequence = s.LastWriteSequence;
        ValueTask durable = store.WaitDurableAsync(sequence);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the commit's directory was never flushed");
        Assert.False(store.IsDurable(sequence), "durable before the commit file's directory entry was flushed");
        Assert.True(store.GetMetrics().CommittedSequence < sequence);
        await Task.Delay(100);
        Assert.False(durable.IsCompleted);
        gate.Set();
        await durable.AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(store.IsDurable(sequence));
    }

    [Fact]
    public async Task Pulled_records_are_durable_through_the_next_checkpoint_not_the_operation_log()
    {
        // A migration target keeps pulled records out of its operation log (the source keeps its copy until the target's
        // checkpoint covers them; a target that crashes before that pulls them again), so a crash before the
        // checkpoint loses them while a client write made at the same time survives, and a crash after it loses nothing.
        var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        var s = store.NewSession();
        Assert.Equal(StoreStatus.Ok, s.ApplyPulled(1, 1, B("pulled-before"), B("p"), 40, 0).Status);
        await store.CheckpointAsync();
        Assert.Equal(StoreStatus.Ok, s.ApplyPulled(1, 1, B("pulled-after"), B("p"), 41, 0).Status);
        s.PutNow("written", "w");
        await store.WaitDurableAsync(s.LastWriteSequence);
        s.Dispose();
        store.SimulateCrash();
        using var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        using var r = reopened.NewSession();
        Assert.Equal(("p", 40UL), (r.GetNow("pulled-before").Value, r.GetNow("pulled-before").Result.Version));
        Assert.Equal(StoreStatus.NotFound, r.GetNow("pulled-after").Result.Status);
        Assert.Equal("w", r.GetNow("written").Value);
    }

    [Fact]
    public async Task A_checkpoint_whose_caller_was_cancelled_does_not_fail_the_next_one()
    {
        // FASTER goes on with a checkpoint after its caller's token fired; the next CheckpointAsync (a node's close, say)
        // used to find it running and fail with "FASTER checkpoint failed" (seen when a cancelled migration's node stopped).
        using var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Async));
        using (var s = store.NewSession())
        {
            for (int i = 0; i < 2000; i++)
                s.PutNow($"k{i}", "v");
        }
        int cancelledMidway = 0;
        for (int round = 0; round < 40; round++)
        {
            using var cancel = new CancellationTokenSource();
            ValueTask<long> first = store.CheckpointAsync(cancel.Token);
            cancel.Cancel();
            try
            {
                await first;
            }
            catch (OperationCanceledException)
            {
                cancelledMidway++;
            }
            Assert.True(await store.CheckpointAsync() > 0);
        }
        Assert.True(cancelledMidway > 0, "no checkpoint was cancelled while running: the test proved nothing");
        // The cancelled ones finished inside FASTER unnamed; each is a full copy of the index, and none is kept.
        Assert.Equal(1, CheckpointsOnDisk());
    }

    /// <summary>Checkpoint tokens on disk (index and log parts counted once).</summary>
    private int CheckpointsOnDisk()
    {
        string root = Path.Combine(_dir.Path, "checkpoints");
        return new[] { "index-checkpoints", "cpr-checkpoints" }
            .Select(part => Path.Combine(root, part))
            .Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories)
            .Select(Path.GetFileName)
            .Distinct()
            .Count();
    }

    [Fact]
    public async Task Opening_a_store_deletes_every_checkpoint_its_metadata_does_not_name()
    {
        using (var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Async)))
        {
            using (var s = store.NewSession())
                s.PutNow("k", "v");
            await store.CheckpointAsync();
        }
        Assert.Equal(1, CheckpointsOnDisk());
        // A checkpoint nothing names (as a crash right after a cancelled one leaves): a copy under another token.
        string root = Path.Combine(_dir.Path, "checkpoints");
        foreach (string part in new[] { "index-checkpoints", "cpr-checkpoints" })
        {
            string named = Directory.EnumerateDirectories(Path.Combine(root, part)).Single();
            string stray = Path.Combine(root, part, Guid.NewGuid().ToString());
            Directory.CreateDirectory(stray);
            foreach (string file in Directory.EnumerateFiles(named))
                File.Copy(file, Path.Combine(stray, Path.GetFileName(file)));
        }
        Assert.Equal(3, CheckpointsOnDisk());
        // Something else an operator put there (a folder not named as a checkpoint) is left alone, and opening works.
        string other = Path.Combine(root, "cpr-checkpoints", "operator-notes");
        Directory.CreateDirectory(other);

        using (var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Async)))
        {
            Assert.True(Directory.Exists(other));
            Directory.Delete(other);
            Assert.Equal(1, CheckpointsOnDisk());
        }
        // The one kept is the named one: "k" is only in it (the checkpoint truncated its log entry), and a store that
        // recovers from it again still has it.
        using var again = FasterKvStore.Open(_dir.Options(DurabilityMode.Async));
        using var r = again.NewSession();
        Assert.Equal("v", r.GetNow("k").Value);
    }

    [Fact]
    public async Task Crash_AfterCheckpointAndMoreWrites_ReplaysOnlyTheTail()
    {
        var store = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        var s = store.NewSession();
        {
            for (int i = 0; i < 100; i++)
                s.PutNow($"before:{i}", "a");
            long covered = await store.CheckpointAsync();
            Assert.True(covered > 0);
            Assert.Equal(covered, store.GetMetrics().LastCheckpointSequence);
            for (int i = 0; i < 100; i++)
                s.PutNow($"before:{i}", "b");          // version 2, only in the operation log
            s.Delete(1, 1, B("before:7"), 0);
            for (int i = 0; i < 50; i++)
                s.PutNow($"after:{i}", "c");
            await store.WaitDurableAsync(s.LastWriteSequence);
            store.DropSlots(0, 100);                    // logged too, durable on return
        }
        s.Dispose();
        store.SimulateCrash();
        using var reopened = FasterKvStore.Open(_dir.Options(DurabilityMode.Sync));
        using var r = reopened.NewSession();
        for (int i = 0; i < 100; i++)
        {
            string k = $"before:{i}";
            var (res, v) = r.GetNow(k);
            if (i == 7 || Slot.Of(B(k)) <= 100)
                Assert.Equal(StoreStatus.NotFound, res.Status);
            else
                Assert.Equal(("b", 2UL), (v, res.Version));
        }
        for (int i = 0; i < 50; i++)
            Assert.Equal(Slot.Of(B($"after:{i}")) <= 100 ? StoreStatus.NotFound : StoreStatus.Ok, r.GetNow($"after:{i}").Result.Status);
    }

    [Fact]
    public void SyncMode_EveryAcknowledgedWriteSurvivesACrash()
    {
        // Writers acknowledge a write only once IsDurable(sequence) holds, as a worker in sync mode does; then the
        // store is abandoned without a clean close while more (unacknowledged) writes are in flight.
        // Checkpoints run meanwhile, so recovery combines a checkpoint taken under load with the log after it.
        var options = _dir.Options(DurabilityMode.Sync) with { CheckpointInterval = TimeSpan.FromMilliseconds(50) };
        var store = FasterKvStore.Open(options);
        var acknowledged = new System.Collections.Concurrent.ConcurrentDictionary<string, ulong>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 2).Select(w => new Thread(() =>
        {
            using var s = store.NewSession();
            var batch = new List<(string Key, ulong Version)>();
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                string key = $"w{w}:{i % 300}";
                var r = s.PutNow(key, $"{w}:{i}");
                batch.Add((key, r.Version));
                if (batch.Count == 8)
                {
                    try
                    {
                        store.WaitDurableAsync(s.LastWriteSequence, stop.Token).AsTask().Wait();
                    }
                    catch (AggregateException)
                    {
                        return; // stopped while waiting: this batch was never acknowledged
                    }
                    foreach (var (k, v) in batch)
                        acknowledged[k] = v;
                    batch.Clear();
                }
            }
        })).ToList();
        writers.ForEach(t => t.Start());
        SpinWait.SpinUntil(() => acknowledged.Count >= 300 && store.GetMetrics().LastCheckpointSequence > 0, TimeSpan.FromSeconds(60));
        stop.Cancel();
        writers.ForEach(t => t.Join());
        var snapshot = acknowledged.ToArray();
        store.SimulateCrash();

        Assert.True(snapshot.Length >= 300, $"only {snapshot.Length} keys acknowledged");
        using var reopened = FasterKvStore.Open(options);
        using var r = reopened.NewSession();
        foreach (var (key, version) in snapshot)
        {
            var (res, _) = r.GetNow(key);
            Assert.Equal(StoreStatus.Ok, res.Status);
            Assert.True(res.Version >= version, $"{key}: recovered version {res.Version} < acknowledged {version}");
        }
    }

    [Fact]
    public void PeriodicCheckpoints_TruncateTheOperationLog()
    {
        var options = _dir.Options(DurabilityMode.Async) with { CheckpointInterval = TimeSpan.FromMilliseconds(200) };
        using (var store = FasterKvStore.Open(options))
        {
            using var s = store.NewSession();
            for (int i = 0; i < 300; i++)
                s.PutNow($"k{i}", "v");
            Assert.True(SpinWait.SpinUntil(() => store.GetMetrics().LastCheckpointSequence > 0, TimeSpan.FromSeconds(30)));
        }
        using var reopened = FasterKvStore.Open(options);
        using var r = reopened.NewSession();
        Assert.Equal("v", r.GetNow("k299").Value);
    }

    [Fact]
    public void LargerThanMemory_RecoversColdRecords()
    {
        var options = _dir.Options(DurabilityMode.Async, memoryBudget: 16384);
        using (var store = FasterKvStore.Open(options))
        {
            using var s = store.NewSession();
            for (int i = 0; i < 1000; i++)
                s.PutNow($"k{i}", new string('d', 100) + i);
        }
        using var reopened = FasterKvStore.Open(options);
        using var r = reopened.NewSession();
        for (int i = 0; i < 1000; i += 37)
            Assert.Equal(new string('d', 100) + i, r.GetNow($"k{i}").Value);
    }

    [Fact]
    public void LargestValue_IsLoggedAndRecovered()
    {
        var options = _dir.Options(DurabilityMode.Sync) with
        {
            MaxValueBytes = 2 << 20,
            PageSizeBytes = 4 << 20,
            MemoryBudgetBytes = 8 << 20,
        };
        var big = new string('L', 2 << 20);
        using (var store = FasterKvStore.Open(options))
        {
            using var s = store.NewSession();
            Assert.Equal(StoreStatus.Ok, s.PutNow("big", big).Status);
            Assert.Equal(StoreStatus.ValueTooLarge, s.Put(1, 1, B("bigger"), new byte[(2 << 20) + 1], 0).Status);
        }
        using var reopened = FasterKvStore.Open(options);
        using var r = reopened.NewSession();
        Assert.Equal(big, r.GetNow("big").Value);
    }

    [Fact]
    public async Task After_a_crash_MaxVersion_covers_every_version_in_the_checkpoint_so_a_migration_cannot_reuse_one()
    {
        // The checkpoint read MaxVersion before FASTER's version switch, which waits for every thread holding the epoch;
        // writes made meanwhile went into the checkpoint, their log entries replayed as refused, and after a crash
        // MaxVersion (a migration source's version floor) was below a stored version, so a target could give a client
        // write a version that a later pull of the source's record beats (found by review).
        var options = _dir.Options(DurabilityMode.Async);
        var store = FasterKvStore.Open(options);
        using (var w = store.NewSession())
        {
            for (int i = 0; i < 100; i++)
                w.PutNow("hot", $"v{i}");
        }
        Assert.Equal(100UL, store.MaxVersion);

        // A worker in a read run holds the epoch, as a MultiGet or an extension step does.
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            using var session = store.NewSession();
            session.BeginReadRun();
            session.Get(1, 1, B("other"), new System.Buffers.ArrayBufferWriter<byte>(), 0);
            held.Set();
            release.Wait();
            session.EndReadRun();
        });
        holder.Start();
        held.Wait();
        var checkpoint = Task.Run(() => store.CheckpointAsync().AsTask());
        await Task.Delay(300);
        long last;
        using (var w = store.NewSession())
        {
            Assert.Equal(101UL, w.PutNow("hot", "w101").Version);
            Assert.Equal(102UL, w.PutNow("hot", "w102").Version);
            last = w.LastWriteSequence;
        }
        release.Set();
        holder.Join();
        await checkpoint.WaitAsync(TimeSpan.FromSeconds(60));
        await store.WaitDurableAsync(last);
        store.SimulateCrash();

        using var reopened = FasterKvStore.Open(options);
        using var r = reopened.NewSession();
        var (found, value) = r.GetNow("hot");
        Assert.Equal(("w102", 102UL), (value, found.Version));
        Assert.True(reopened.MaxVersion >= 102, $"recovered MaxVersion {reopened.MaxVersion} is below the stored version 102");
    }
}
