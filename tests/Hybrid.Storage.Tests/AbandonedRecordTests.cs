using System.Buffers.Binary;
using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

/// <summary>
/// Writers racing on the same keys make FASTER drop some of the records they insert (the insert lost the race), and
/// FASTER 2.6.5 leaves such a record with its allocated size where the key's length belongs. A walk of the log then
/// loses the record boundaries: a restart crashed in recovery (an access violation in FASTER's page pass, once in a
/// clean-clone CI run of a cluster fault test), and a migration scan crashes beside such writers (this test's process
/// dies of an access violation without the fix). The store lays out such records (<see cref="SessionFunctions"/>);
/// here scans run beside the writers, then the log on disk must parse record by record, and the store reopen.
/// </summary>
public sealed class AbandonedRecordTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task WritersRacingOnTheSameKeys_LeaveALogThatParsesRecordByRecord_AndReopens()
    {
        const int Keys = 4, Writers = 4; // few keys: lost races come about 20 a second here, 3-9 with 16 keys
        StoreOptions options = _dir.Options(DurabilityMode.Async, memoryBudget: 1 << 18);
        var last = new string?[Writers, Keys];
        var repaired = new long[Writers];
        var mismatched = new long[Writers];
        long tail;
        using (var store = FasterKvStore.Open(options))
        {
            using var stop = new CancellationTokenSource();
            Task[] writers = [.. Enumerable.Range(0, Writers).Select(w => Task.Factory.StartNew(() =>
            {
                var rnd = new Random(w);
                using var session = (KvSession)store.NewSession();
                var sink = new CountingSink();
                for (long n = 0; !stop.IsCancellationRequested; n++)
                {
                    int k = rnd.Next(Keys);
                    // Sizes across 8-byte classes: most updates copy to a new record, so writers race to insert them.
                    // Appends make the size of a retried copy depend on what another writer put there meanwhile.
                    string value = $"w{w}n{n}:" + new string('x', rnd.Next(1, 300));
                    if (rnd.Next(4) == 0)
                    {
                        session.Append(1, 1, B($"key{k}"), B(value[..Math.Min(value.Length, 40)]), 0);
                        last[w, k] = null; // its value depends on the other writers
                    }
                    else
                    {
                        session.Put(1, 1, B($"key{k}"), B(value), 0);
                        last[w, k] = value;
                    }
                    if (session.PendingCount > 0)
                        session.CompletePending(sink, wait: true);
                    Volatile.Write(ref repaired[w], session.Functions.RepairedRecords);
                    Volatile.Write(ref mismatched[w], session.Functions.SizeMismatches);
                }
            }, TaskCreationOptions.LongRunning))];
            // Migration scans walk the log (memory and disk) while the writers run. (They return hardly any record:
            // one is returned only if it is still its key's latest when checked, and these keys change all the time.)
            long passes = 0;
            Task scans = Task.Factory.StartNew(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    ScanAll(store, 0, Slot.Count - 1, 2, 64);
                    passes++;
                    Thread.Sleep(1); // a scan at a time, not a core's worth of them (CI runs other test assemblies beside)
                }
            }, TaskCreationOptions.LongRunning);
            // At least a second, then until an insert lost a race (the premise), at most 20 s.
            await Task.Delay(1000);
            for (int i = 0; i < 190 && repaired.Sum() == 0; i++)
                await Task.Delay(100);
            stop.Cancel();
            await Task.WhenAll(writers);
            await scans;
            output.WriteLine($"{repaired.Sum()} inserts lost a race; {passes} scans");
            Assert.True(passes > 0);
            await store.CheckpointAsync(); // flushes the whole log
            tail = store.Kv.Log.TailAddress;
        }
        Assert.True(repaired.Sum() > 0, "no insert lost a race: the test did not exercise what it checks");
        Assert.Equal(0, mismatched.Sum()); // the size laid out when FASTER drops the record is the one it stashes

        // Walk the log on disk as FASTER's scans and recovery do: record info, key and value (each a 4-byte length and
        // its bytes, 8-byte aligned), records never crossing a page. Every record must parse.
        byte[] log = File.ReadAllBytes(Path.Combine(options.DataDirectory, "hlog", "data.log.0"));
        int page = options.PageSizeBytes, records = 0;
        var keys = new HashSet<string>();
        for (long a = 64; a < tail;)
        {
            int offset = (int)(a % page);
            if (offset + 8 > page)
            {
                a += page - offset;
                continue;
            }
            ulong info = BinaryPrimitives.ReadUInt64LittleEndian(log.AsSpan((int)a));
            if (info == 0)
            {
                a += 8;
                continue;
            }
            bool valid = (info & (1UL << 56)) != 0;
            int keyLength = BinaryPrimitives.ReadInt32LittleEndian(log.AsSpan((int)a + 8)) & 0x3fffffff;
            Assert.True(keyLength <= options.MaxKeyBytes + RecordLayout.KeyPrefixBytes && (valid ? keyLength > RecordLayout.KeyPrefixBytes : true),
                $"record at {a} (valid: {valid}): key length {keyLength}");
            int valueAt = 8 + Align(4 + keyLength);
            int valueLength = BinaryPrimitives.ReadInt32LittleEndian(log.AsSpan((int)a + valueAt)) & 0x3fffffff;
            int size = valueAt + Align(4 + valueLength);
            Assert.True(offset + size <= page, $"record at {a} (valid: {valid}, key length {keyLength}, value length {valueLength}) crosses its page");
            if (valid)
            {
                keys.Add(System.Text.Encoding.UTF8.GetString(log, (int)a + 12 + RecordLayout.KeyPrefixBytes, keyLength - RecordLayout.KeyPrefixBytes));
                records++;
            }
            a += size;
        }
        Assert.Equal(Enumerable.Range(0, Keys).Select(k => $"key{k}").ToHashSet(), keys);

        // Recovery walks the same pages; then every key holds a value some writer wrote last for it.
        using var reopened = FasterKvStore.Open(options);
        using var s = reopened.NewSession();
        for (int k = 0; k < Keys; k++)
        {
            var (result, value) = s.GetNow($"key{k}");
            Assert.Equal(StoreStatus.Ok, result.Status);
            string?[] lastPuts = [.. Enumerable.Range(0, Writers).Select(w => last[w, k])];
            if (lastPuts.All(v => v is not null)) // else a writer's last write to it was an append
                Assert.Contains(value, lastPuts);
        }
    }

    private static int Align(int n) => (n + 7) & ~7;
}
