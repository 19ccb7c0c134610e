using System.Diagnostics;
using System.Globalization;

namespace Hybrid.Cluster.Tests;

/// <summary>The contract suite on the file store (fake lease clock), plus what only a file store can get wrong.</summary>
public sealed class FileMetadataStoreTests : MetadataStoreContract, IDisposable
{
    private static readonly FileMetadataStoreOptions s_fastPoll = new() { PollInterval = TimeSpan.FromMilliseconds(10) };

    private readonly TempDirectory _dir = new();
    private readonly ManualClock _clock = new();
    private readonly List<Process> _children = [];

    /// <inheritdoc/>
    protected override Task<IMetadataStore> CreateStoreAsync() =>
        Task.FromResult<IMetadataStore>(Open());

    /// <inheritdoc/>
    protected override Task ElapseAsync(TimeSpan time)
    {
        _clock.Advance(time);
        return Task.CompletedTask;
    }

    /// <summary>Kills child processes a failed test left running, then removes the directory.</summary>
    public void Dispose()
    {
        foreach (var child in _children)
        {
            if (!child.HasExited)
            {
                child.Kill();
                child.WaitForExit();
            }

            child.Dispose();
        }

        _dir.Dispose();
    }

    private FileMetadataStore Open(FileMetadataStoreOptions? options = null) =>
        new(_dir.Path, _clock, options ?? s_fastPoll);

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task TheDataFile_IsReadableByItsOwnerOnly_AndThePeerKeyIsDrawnOnce()
    {
        // The state holds tenants' secrets and the cluster's peer key: a file of mode 0644 gave them to every local user.
        var metadata = new DurableClusterMetadata(Store);
        byte[] key = await metadata.PeerKeyAsync();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir.Path, FileMetadataStore.DataFileName)));
        Assert.Equal(32, key.Length);
        await using var other = Open();
        Assert.Equal(key, await new DurableClusterMetadata(other).PeerKeyAsync());
        Assert.Equal(key, await metadata.PeerKeyAsync());
    }

    [Fact]
    public async Task TwoInstances_SameDirectory_LoseNoUpdate()
    {
        await using var other = Open();
        const int perTask = 15;

        await Task.WhenAll(
            new[] { Store, other, Store, other }.Select(store => Task.Run(async () =>
            {
                for (var i = 0; i < perTask; i++)
                {
                    await Counter.IncrementAsync(store, "/counter");
                }
            })));

        Assert.Equal(4 * perTask, Counter.Decode(await Store.GetAsync("/counter")));
        Assert.Equal(4 * perTask, Counter.Decode(await other.GetAsync("/counter")));
    }

    [Fact]
    public async Task Watch_OnAnotherInstance_SeesWritesMadeThroughThisOne()
    {
        await using var other = Open();
        var start = await Store.CompareAndSwapAsync("/w/seed", MetadataRevision.Absent, Bytes("0"));
        using var cts = new CancellationTokenSource(Patience);
        var watching = Task.Run(async () =>
        {
            var keys = new List<string>();
            await foreach (var e in other.WatchAsync("/w/", start.Revision, cts.Token))
            {
                keys.Add(e.Key);
                if (keys.Count == 2)
                {
                    return keys;
                }
            }

            return keys;
        });

        await Task.Delay(50); // so the writes mostly arrive while the watcher polls, not in its first read
        await Store.CompareAndSwapAsync("/w/a", MetadataRevision.Absent, Bytes("1"));
        await Store.CompareAndSwapAsync("/w/b", MetadataRevision.Absent, Bytes("2"));

        Assert.Equal(["/w/a", "/w/b"], await watching);
    }

    [Fact]
    public async Task TwoProcesses_SameDirectory_LoseNoUpdate()
    {
        const int perProcess = 40;
        var first = StartCounterProcess(perProcess);
        var second = StartCounterProcess(perProcess);
        for (var i = 0; i < perProcess; i++)
        {
            await Counter.IncrementAsync(Store, "/counter");
        }

        var firstValues = await ReadAllValuesAsync(first);
        var secondValues = await ReadAllValuesAsync(second);

        Assert.Equal(3 * perProcess, Counter.Decode(await Store.GetAsync("/counter")));
        // Every committed value was committed by exactly one process.
        Assert.Equal(2 * perProcess, firstValues.Concat(secondValues).Distinct().Count());
    }

    [Fact]
    public async Task WriterKilledMidLoop_StoreReopensConsistent_AndKeepsEveryAcknowledgedWrite()
    {
        var child = StartCounterProcess(100_000);
        long lastAcknowledged = 0;
        while (lastAcknowledged < 30)
        {
            var line = await child.StandardOutput.ReadLineAsync().WaitAsync(Patience)
                       ?? throw new InvalidOperationException("child exited early: " + await child.StandardError.ReadToEndAsync());
            lastAcknowledged = long.Parse(line, CultureInfo.InvariantCulture);
        }

        child.Kill(); // SIGKILL: no chance to finish a write or release anything cleanly
        await child.WaitForExitAsync();
        var rest = await child.StandardOutput.ReadToEndAsync();
        lastAcknowledged = rest.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => long.Parse(l, CultureInfo.InvariantCulture)).Append(lastAcknowledged).Max();

        await using var reopened = Open();
        var value = Counter.Decode(await reopened.GetAsync("/counter"));
        // At most the one increment in flight at the kill may have committed without being printed.
        Assert.InRange(value, lastAcknowledged, lastAcknowledged + 1);
        var (next, _) = await Counter.IncrementAsync(reopened, "/counter");
        Assert.Equal(value + 1, next);
        Assert.Empty(Directory.GetFiles(_dir.Path, FileMetadataStore.DataFileName + ".tmp-*"));
    }

    [Fact]
    public async Task TornTempFile_IsIgnoredOnReopen_AndRemovedByTheNextWrite()
    {
        var written = await Store.CompareAndSwapAsync("/owner/r1", MetadataRevision.Absent, Bytes("n1"));
        var torn = Path.Combine(_dir.Path, FileMetadataStore.DataFileName + ".tmp-0123456789abcdef");
        await File.WriteAllTextAsync(torn, "hybrid-metadata v1 gen=99\n{\"Generation\":99,\"Revision\":12345,\"Entr");

        await using var reopened = Open();
        var read = await reopened.GetAsync("/owner/r1");
        Assert.Equal("n1", Text(read));
        Assert.Equal(written.Revision, read!.Revision);

        var next = await reopened.CompareAndSwapAsync("/owner/r1", written.Revision, Bytes("n2"));
        Assert.True(next.Succeeded);
        Assert.Equal(written.Revision + 1, next.Revision);
        Assert.False(File.Exists(torn));
    }

    [Fact]
    public async Task Revisions_StayMonotonicAcrossReopen()
    {
        var first = await Store.CompareAndSwapAsync("/a", MetadataRevision.Absent, Bytes("1"));
        await Store.DeleteAsync("/a", first.Revision);

        await using var reopened = Open();
        var again = await reopened.CompareAndSwapAsync("/a", MetadataRevision.Absent, Bytes("2"));

        Assert.True(again.Revision > first.Revision + 1);
    }

    [Fact]
    public async Task Watch_FallenBehindTheRetainedChanges_ThrowsCompacted()
    {
        await using var small = Open(s_fastPoll with { MaxRetainedEvents = 4 });
        var start = await small.CompareAndSwapAsync("/w/0", MetadataRevision.Absent, Bytes("0"));
        for (var i = 1; i <= 6; i++)
        {
            await small.CompareAndSwapAsync($"/w/{i}", MetadataRevision.Absent, Bytes("x"));
        }

        await Assert.ThrowsAsync<MetadataCompactedException>(async () =>
        {
            await foreach (var _ in small.WatchAsync("/w/", start.Revision))
            {
            }
        });

        // A watcher within the retained window still sees every change.
        var recent = new List<string>();
        await foreach (var e in small.WatchAsync("/w/", start.Revision + 3))
        {
            recent.Add(e.Key);
            if (recent.Count == 3)
            {
                break;
            }
        }

        Assert.Equal(["/w/4", "/w/5", "/w/6"], recent);
    }

    [Fact]
    public async Task LeaseExpiry_IsAppliedByAnotherInstanceReadingTheSameDirectory()
    {
        await using var other = Open();
        var lease = await Store.GrantLeaseAsync(TimeSpan.FromSeconds(10));
        await Store.CompareAndSwapAsync("/nodes/n1", MetadataRevision.Absent, Bytes("a"), lease);
        Assert.NotNull(await other.GetAsync("/nodes/n1"));

        _clock.Advance(TimeSpan.FromSeconds(11));

        Assert.Null(await other.GetAsync("/nodes/n1"));
        Assert.Null(await Store.GetAsync("/nodes/n1"));
    }

    [Fact]
    public async Task OpenByLocation_FileOrPlainPath_OpensTheSameStore()
    {
        await Store.CompareAndSwapAsync("/k", MetadataRevision.Absent, Bytes("v"));

        await using var byScheme = MetadataStores.Open("file:" + _dir.Path, _clock);
        await using var byPath = MetadataStores.Open(_dir.Path, _clock);

        Assert.IsType<FileMetadataStore>(byScheme);
        Assert.Equal("v", Text(await byScheme.GetAsync("/k")));
        Assert.Equal("v", Text(await byPath.GetAsync("/k")));
        Assert.Throws<ArgumentException>(() => MetadataStores.Open("file:"));
        Assert.Throws<ArgumentException>(() => MetadataStores.Open("etcd:127.0.0.1:2379"));
    }

    private Process StartCounterProcess(int count)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "exec", typeof(Program).Assembly.Location, "counter", _dir.Path, count.ToString(CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(arg);
        }

        var child = Process.Start(info) ?? throw new InvalidOperationException("could not start " + dotnet);
        _children.Add(child);
        return child;
    }

    private static async Task<long[]> ReadAllValuesAsync(Process child)
    {
        var output = await child.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(90));
        var error = await child.StandardError.ReadToEndAsync();
        await child.WaitForExitAsync();
        Assert.True(child.ExitCode == 0, $"child failed ({child.ExitCode}): {error}");
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => long.Parse(l, CultureInfo.InvariantCulture)).ToArray();
    }
}
