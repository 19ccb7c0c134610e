using System.Buffers;

namespace Hybrid.Storage;

/// <summary>
/// A worker's handle on the store: one per worker thread, used by one thread at a time, never shared. All
/// operations are synchronous and non-blocking: one that needs a disk read returns <see cref="StoreStatus.Pending"/>
/// and finishes later through <see cref="CompletePending"/>. No operation allocates on its fast path.
/// </summary>
/// <remarks>
/// A record is addressed by (tenant, table, key); the key is the user's bytes (its slot is <see cref="Slot.Of"/> of
/// them). Every write sets the record's version to max(old version + 1, the store's version floor), so versions of
/// a key only grow, and <see cref="IKvStore.MaxVersion"/> bounds every version issued. Deletes write a tombstone that
/// keeps the version (see <see cref="Delete"/>).
/// Each operation takes a caller <c>context</c> that comes back with a pending operation's result.
/// </remarks>
public interface IKvSession : IDisposable
{
    /// <summary>
    /// Reads a value. On <see cref="StoreStatus.Ok"/> the value bytes were written to <paramref name="output"/>
    /// (<see cref="StoreResult.ValueLength"/> of them) and <see cref="StoreResult.Version"/> is the record's version.
    /// On <see cref="StoreStatus.Pending"/> nothing was written to <paramref name="output"/>; the value arrives through
    /// <see cref="CompletePending"/> instead.
    /// </summary>
    StoreResult Get(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, ulong context);

    /// <summary>
    /// Opens a read run: the <see cref="Get"/> calls until <see cref="EndReadRun"/> may share one protection of the
    /// store's memory (taken at the first read, refreshed every few hundred reads) instead of taking and releasing it
    /// per call. Any other operation, <see cref="PauseReadRun"/> and <see cref="EndReadRun"/> release it first; the
    /// next read of the run takes it again. Values are still copied to the caller's output, so nothing the caller
    /// holds depends on the protection. While it is held the store cannot move past this thread (page flushes and
    /// evictions wait), so a caller that holds a run must pause or end it before running long code. The default does
    /// nothing (every read protects itself).
    /// </summary>
    void BeginReadRun()
    {
    }

    /// <summary>
    /// Releases a read run's protection until its next read (see <see cref="BeginReadRun"/>). While values read in place
    /// (<see cref="GetInPlace"/>) are out, it keeps the protection instead and lets the epoch move on, unless one of
    /// them is near the log's head and the protection is younger than a millisecond.
    /// </summary>
    void PauseReadRun()
    {
    }

    /// <summary>
    /// Releases a read run's protection now, even while values are lent (<see cref="GetInPlace"/>): before a wait that
    /// may block on another thread's progress (which may need this thread's epoch to move). The run stays open; its
    /// next read, or <see cref="RetainInPlace"/>, takes the protection again. The default does nothing.
    /// </summary>
    void ReleaseReadRun()
    {
    }

    /// <summary>
    /// Reads a value inside a read run without copying it: on <see cref="StoreStatus.Ok"/> with <paramref name="inPlace"/>
    /// true, <paramref name="value"/> spans the record's bytes in the store's memory. Such a record is pinned: no write
    /// changes it in place any more (a write makes a new record), so the span shows the value as read. The span stays
    /// valid while the run keeps its protection and <see cref="RetainInPlace"/> says so; the caller must call
    /// <see cref="RetainInPlace"/> after every other call on this session before it touches an earlier span again,
    /// and must not use any span after <see cref="EndReadRun"/> or the next <see cref="BeginReadRun"/>.
    /// A value the store cannot lend (a record read from disk, for one) is copied to <paramref name="output"/> as by
    /// <see cref="Get"/> (<paramref name="inPlace"/> false); so is every value in the default implementation.
    /// </summary>
    StoreResult GetInPlace(uint tenant, uint table, ReadOnlySpan<byte> key, IBufferWriter<byte> output, out ReadOnlySpan<byte> value, out bool inPlace)
    {
        value = default;
        inPlace = false;
        return Get(tenant, table, key, output, 0);
    }

    /// <summary>
    /// After any call on this session during a read run that lent values (<see cref="GetInPlace"/>): takes the run's
    /// protection again if the call let it go, and answers whether every value lent since the run began is still in
    /// memory. False (the store evicted a page under one of them; rare, and only with the log's memory full) means
    /// those spans must not be touched again. The default (nothing lent) answers true.
    /// </summary>
    bool RetainInPlace() => true;

    /// <summary>Ends a read run and releases its protection (see <see cref="BeginReadRun"/>).</summary>
    void EndReadRun()
    {
    }

    /// <summary>
    /// A hint before reading several keys of one table (packed back to back, <paramref name="keySize"/> bytes each):
    /// starts loading their hash-index buckets into the CPU caches so that the reads that follow overlap their memory
    /// misses instead of taking them one after the other. Changes nothing else; the default does nothing.
    /// </summary>
    void Prefetch(uint tenant, uint table, ReadOnlySpan<byte> packedKeys, int keySize)
    {
    }

    /// <summary>
    /// The first stage of a two-stage hint for one key (see <see cref="PrefetchWindow"/>): starts loading its index
    /// bucket and returns a token for <see cref="PrefetchRecords"/> (0: nothing to follow up). The default issues
    /// <see cref="Prefetch"/> for the key alone.
    /// </summary>
    long PrefetchKey(uint tenant, uint table, ReadOnlySpan<byte> key)
    {
        Prefetch(tenant, table, key, key.Length);
        return 0;
    }

    /// <summary>
    /// The second stage, a few requests after <see cref="PrefetchKey"/> returned <paramref name="token"/> (its bucket is
    /// in the cache by then): starts loading the records that bucket points at. A hint; the default does nothing.
    /// </summary>
    void PrefetchRecords(long token)
    {
    }

    /// <summary>
    /// Reads several keys of one table. Results that are ready are handed to <paramref name="sink"/> at once, in key
    /// order, with context <c>firstContext + i</c> for key i; the others arrive through <see cref="CompletePending"/>
    /// with the same contexts. Returns how many went pending.
    /// </summary>
    int MultiGet(uint tenant, uint table, ReadOnlySpan<ReadOnlyMemory<byte>> keys, ulong firstContext, ICompletionSink sink);

    /// <summary>Upsert. <see cref="StoreResult.Version"/> is the new version.</summary>
    StoreResult Put(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context);

    /// <summary>
    /// Compare-and-set on the version: writes only if the live record's version equals <paramref name="expectedVersion"/>;
    /// <paramref name="expectedVersion"/> 0 means "must not exist" (absent or deleted). Otherwise
    /// <see cref="StoreStatus.VersionMismatch"/> with the version found (0 when absent).
    /// </summary>
    StoreResult PutIfVersion(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong expectedVersion, ulong context);

    /// <summary>SET NX: writes only if there is no live record, else <see cref="StoreStatus.Exists"/>.</summary>
    StoreResult PutIfAbsent(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context);

    /// <summary>SET XX: writes only if there is a live record, else <see cref="StoreStatus.NotFound"/>.</summary>
    StoreResult PutIfExists(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context);

    /// <summary>
    /// Deletes by writing a tombstone that carries a new version (even when the key is absent, so that a record pulled
    /// later during a migration with an older version cannot resurrect it). <see cref="StoreStatus.Ok"/> if a live
    /// record was deleted, <see cref="StoreStatus.NotFound"/> if there was none (the tombstone is written anyway).
    /// </summary>
    StoreResult Delete(uint tenant, uint table, ReadOnlySpan<byte> key, ulong context);

    /// <summary>
    /// Redis INCRBY: the value is an ASCII decimal signed 64-bit integer (absent counts as 0); adds
    /// <paramref name="delta"/> and stores the result as ASCII. <see cref="StoreResult.Number"/> is the new value.
    /// <see cref="StoreStatus.NotAnInteger"/> or <see cref="StoreStatus.Overflow"/> leave the record unchanged.
    /// </summary>
    StoreResult Increment(uint tenant, uint table, ReadOnlySpan<byte> key, long delta, ulong context);

    /// <summary>Redis APPEND (absent counts as empty). <see cref="StoreResult.ValueLength"/> is the new length.</summary>
    StoreResult Append(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong context);

    /// <summary>
    /// Migration: installs a record pulled from another node with its original version, only if the key is absent
    /// here or its stored record (live or tombstone) has an older version; otherwise <see cref="StoreStatus.Stale"/>.
    /// Never overwrites a newer record (protocol invariant). Does not change the version floor by itself beyond
    /// keeping <see cref="IKvStore.MaxVersion"/> at least <paramref name="version"/>. Not written to the operation
    /// log: a pulled record becomes durable with the next checkpoint (a migration keeps the source's copy until the
    /// target's checkpoint covers the range), and a restart before it loses the record, which is pulled again.
    /// </summary>
    StoreResult ApplyPulled(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version, ulong context);

    /// <summary>
    /// Non-blocking unless <paramref name="wait"/>: hands every pending operation that has finished to
    /// <paramref name="sink"/> and returns how many it handed. Call it whenever <see cref="PendingCount"/> &gt; 0
    /// (e.g. once per worker loop). <paramref name="wait"/> = true blocks until all pending operations finished
    /// (for tests and shutdown only).
    /// </summary>
    int CompletePending(ICompletionSink sink, bool wait = false);

    /// <summary>Operations of this session that returned Pending and have not been handed to a sink yet.</summary>
    int PendingCount { get; }

    /// <summary>
    /// Commit sequence of the last write this session made (0 if none, or in <see cref="DurabilityMode.Memory"/>).
    /// In <see cref="DurabilityMode.Sync"/>, a reply to a batch of writes may be sent once
    /// <see cref="IKvStore.IsDurable"/>(this value) is true. Pending writes set it when they complete.
    /// </summary>
    long LastWriteSequence { get; }
}
