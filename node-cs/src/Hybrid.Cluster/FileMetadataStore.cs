using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace Hybrid.Cluster;

/// <summary>Tuning of <see cref="FileMetadataStore"/>; the defaults suit a node, tests shorten the poll.</summary>
public sealed record FileMetadataStoreOptions
{
    /// <summary>How often a watch re-reads the file (only its first line when nothing changed).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a mutation waits for another process's lock before failing as unavailable.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How many past changes the file keeps for watchers that fall behind.</summary>
    public int MaxRetainedEvents { get; init; } = 1024;

    /// <summary>
    /// Bound on the bytes (keys + values) of the retained changes. Every mutation reads and rewrites the whole file,
    /// so this bounds a write's cost: with 4 MB retained a migration's decisions took 50-90 ms each, with 256 KB about
    /// a tenth of that. A watcher further behind gets <see cref="MetadataCompactedException"/> and reads the state again.
    /// </summary>
    public long MaxRetainedEventBytes { get; init; } = 256 << 10;
}

/// <summary>
/// The embedded metadata store for one machine: a directory holding one data file, replaced on every
/// mutation by writing a temp file, fsyncing it and renaming it over the old one, so a reader always
/// sees a complete old or new file and a crash leaves at most an ignored temp file.
/// </summary>
/// <remarks>
/// Several processes (and several instances in one process) may open the same directory: every
/// read-modify-write runs under an exclusive OS lock on <c>metadata.lock</c> (FileShare.None, which is
/// flock on Linux and is released when a process dies) and re-reads the file inside the lock. Reads take
/// no lock. Leases end by the injected <see cref="TimeProvider"/>'s wall clock; an expired lease is
/// applied by the next operation that notices it, from any process. Watches poll the file.
/// Durability: the file is fsynced before the rename; the directory entry itself is not fsynced (no
/// portable .NET API), so after a power loss, not a process crash, the last rename may be undone.
/// </remarks>
public sealed class FileMetadataStore : MetadataStoreBase
{
    /// <summary>The data file's name inside the directory.</summary>
    public const string DataFileName = "metadata.db";

    private const string LockFileName = "metadata.lock";
    private const string TempPrefix = DataFileName + ".tmp-";
    private const string HeaderPrefix = "hybrid-metadata v1 gen=";
    private static readonly JsonSerializerOptions s_json = new();

    private readonly string _directory;
    private readonly string _dataPath;
    private readonly string _lockPath;
    private readonly TimeProvider _clock;
    private readonly FileMetadataStoreOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile FileMetadataState? _cached;

    /// <summary>Opens (creating if needed) the store in <paramref name="directory"/>.</summary>
    /// <param name="directory">The store's directory; every process sharing the store names the same one.</param>
    /// <param name="clock">Wall clock for leases; tests pass a manual one.</param>
    /// <param name="options">Polling, lock and retention settings.</param>
    public FileMetadataStore(string directory, TimeProvider? clock = null, FileMetadataStoreOptions? options = null)
    {
        _directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(_directory);
        _dataPath = Path.Combine(_directory, DataFileName);
        _lockPath = Path.Combine(_directory, LockFileName);
        _clock = clock ?? TimeProvider.System;
        _options = options ?? new FileMetadataStoreOptions();
    }

    /// <summary>The store's directory.</summary>
    public string Directory => _directory;

    private long NowMs => _clock.GetUtcNow().ToUnixTimeMilliseconds();

    /// <inheritdoc/>
    public override async Task<MetadataEntry?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        MetadataChecks.Key(key);
        return (await CurrentAsync(cancellationToken)).Entry(key);
    }

    /// <inheritdoc/>
    public override async Task<IReadOnlyList<MetadataEntry>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var state = await CurrentAsync(cancellationToken);
        return state.Entries.Keys
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(k => state.Entry(k)!)
            .ToArray();
    }

    /// <inheritdoc/>
    public override async Task<TxnResult> CompareAndSwapManyAsync(
        IReadOnlyList<MetadataOp> operations, CancellationToken cancellationToken = default)
    {
        MetadataChecks.Operations(operations);
        return await MutateAsync(
            (state, _) =>
            {
                var before = state.Revision;
                var result = state.Apply(operations, _options);
                return (result, state.Revision != before);
            },
            cancellationToken);
    }

    /// <inheritdoc/>
    public override async IAsyncEnumerable<WatchEvent> WatchAsync(
        string prefix, long afterRevision = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentOutOfRangeException.ThrowIfNegative(afterRevision);
        var state = await CurrentAsync(cancellationToken);
        var last = afterRevision == 0 ? state.Revision : afterRevision;
        while (true)
        {
            if (last < state.CompactedRevision)
            {
                throw new MetadataCompactedException(
                    $"changes after revision {last} are no longer kept (compacted through {state.CompactedRevision})");
            }

            foreach (var e in state.Events)
            {
                if (e.Revision > last && e.Key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    yield return new WatchEvent(e.Kind, e.Key, e.Value, e.Revision);
                }
            }

            last = Math.Max(last, state.Revision);
            await Task.Delay(_options.PollInterval, cancellationToken);
            state = await CurrentAsync(cancellationToken);
        }
    }

    /// <inheritdoc/>
    public override Task<long> GrantLeaseAsync(TimeSpan ttl, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        var ttlMs = (long)Math.Ceiling(ttl.TotalMilliseconds);
        return MutateAsync((state, now) => (state.Grant(ttlMs, now), true), cancellationToken);
    }

    /// <inheritdoc/>
    public override Task<bool> KeepAliveAsync(long leaseId, CancellationToken cancellationToken = default) =>
        MutateAsync(
            (state, now) =>
            {
                var alive = state.KeepAlive(leaseId, now);
                return (alive, alive);
            },
            cancellationToken);

    /// <inheritdoc/>
    public override Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default) =>
        MutateAsync(
            (state, _) =>
            {
                var changed = state.Revoke(leaseId, _options);
                return (changed, changed);
            },
            cancellationToken);

    /// <summary>Nothing to release: the lock is held only during a mutation.</summary>
    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The newest state, with any lease whose time has come already expired.</summary>
    private async Task<FileMetadataState> CurrentAsync(CancellationToken cancellationToken)
    {
        var state = ReadShared();
        var nextExpiry = state.NextExpiryMs();
        if (nextExpiry != 0 && nextExpiry <= NowMs)
        {
            // Any reader may apply an expiry: it is the same deterministic change whoever makes it.
            await MutateAsync((_, _) => (0, false), cancellationToken);
            state = ReadShared();
        }

        return state;
    }

    /// <summary>The published state, re-parsed only when the file's generation changed.</summary>
    private FileMetadataState ReadShared()
    {
        var cached = _cached;
        if (cached is not null && ReadGeneration() == cached.Generation)
        {
            return cached;
        }

        var state = Load();
        _cached = state;
        return state;
    }

    /// <summary>Reads only the header line of the data file; -1 when there is no file yet.</summary>
    private long ReadGeneration()
    {
        Span<byte> buffer = stackalloc byte[64];
        int read;
        try
        {
            using var file = new FileStream(_dataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            read = file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }
        catch (FileNotFoundException)
        {
            return 0;
        }

        var line = Encoding.ASCII.GetString(buffer[..read]);
        var end = line.IndexOf('\n', StringComparison.Ordinal);
        return end > 0 && line.StartsWith(HeaderPrefix, StringComparison.Ordinal)
               && long.TryParse(line.AsSpan(HeaderPrefix.Length, end - HeaderPrefix.Length), out var gen)
            ? gen
            : -1;
    }

    /// <summary>Parses the whole data file; an absent file is the empty store.</summary>
    private FileMetadataState Load()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(_dataPath);
        }
        catch (FileNotFoundException)
        {
            return new FileMetadataState();
        }

        var newline = Array.IndexOf(bytes, (byte)'\n');
        if (newline < 0 || !Encoding.ASCII.GetString(bytes, 0, newline).StartsWith(HeaderPrefix, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{_dataPath} is not a HybridKV metadata file (bad header)");
        }

        try
        {
            var state = JsonSerializer.Deserialize<FileMetadataState>(bytes.AsSpan(newline + 1), s_json)
                        ?? throw new InvalidDataException($"{_dataPath} holds no state");
            return state;
        }
        catch (JsonException ex)
        {
            // Renames are atomic, so this is real damage, never a torn write: refuse to guess.
            throw new InvalidDataException($"{_dataPath} is corrupt: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Runs <paramref name="apply"/> on a fresh copy of the file under the in-process gate and the OS lock,
    /// after expiring due leases, and saves when anything changed.
    /// </summary>
    private async Task<T> MutateAsync<T>(Func<FileMetadataState, long, (T Result, bool Changed)> apply, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            using var fileLock = await AcquireLockAsync(cancellationToken);
            RemoveTempFiles();
            var state = Load();
            var now = NowMs;
            var expired = state.ExpireLeases(now, _options);
            var (result, changed) = apply(state, now);
            if (expired || changed)
            {
                state.Generation++;
                Save(state);
            }

            _cached = state;
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Takes the exclusive lock file, waiting for other processes, up to the lock timeout.</summary>
    private async Task<FileStream> AcquireLockAsync(CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + _options.LockTimeout;
        var delayMs = 1;
        while (true)
        {
            try
            {
                return new FileStream(_lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
            }
            catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException)
            {
                if (DateTime.UtcNow >= deadline)
                {
                    throw new MetadataUnavailableException(
                        $"could not lock {_lockPath} within {_options.LockTimeout.TotalSeconds:0.#} s", ex);
                }
            }

            await Task.Delay(delayMs, cancellationToken);
            delayMs = Math.Min(delayMs * 2, 20);
        }
    }

    /// <summary>Writes the state to a new temp file, fsyncs it and renames it over the data file.</summary>
    private void Save(FileMetadataState state)
    {
        var header = Encoding.ASCII.GetBytes(HeaderPrefix + state.Generation + "\n");
        var body = JsonSerializer.SerializeToUtf8Bytes(state, s_json);
        var temp = Path.Combine(_directory, TempPrefix + Guid.NewGuid().ToString("N"));
        // Readable by this user only: the state holds the tenants' secrets and the cluster's peer key.
        using (var file = new FileStream(temp, Hybrid.Transport.FileDurability.OwnerOnly(FileMode.CreateNew, FileShare.None, bufferSize: 1)))
        {
            file.Write(header);
            file.Write(body);
            file.Flush(flushToDisk: true);
        }

        File.Move(temp, _dataPath, overwrite: true);
        // A write is acknowledged (a decision accepted) after this returns: the rename must survive a machine crash.
        Hybrid.Transport.FileDurability.TrySyncDirectory(_directory);
    }

    /// <summary>
    /// Deletes temp files left by a writer that died before its rename. Only called under the lock, when
    /// no writer can be between creating and renaming its temp file.
    /// </summary>
    private void RemoveTempFiles()
    {
        foreach (var temp in System.IO.Directory.EnumerateFiles(_directory, TempPrefix + "*"))
        {
            File.Delete(temp);
        }
    }
}
