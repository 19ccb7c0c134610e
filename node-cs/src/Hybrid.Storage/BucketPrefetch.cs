using System.Reflection;
using System.Runtime.Intrinsics.X86;
using FASTER.core;

namespace Hybrid.Storage;

/// <summary>
/// Where FASTER's hash index lives, so a batch of reads can prefetch the index buckets of all its keys before it reads
/// them one by one. With a large index (64 MiB by default) nearly every read of a key that was not read just before
/// misses the CPU caches and the TLB on its bucket; issued together, those misses overlap instead of queueing.
/// </summary>
/// <remarks>
/// FASTER 2.6.5 does not publish the index address: it is read once, by reflection, from <c>FasterBase.state[version]</c>
/// (<c>tableAligned</c>, <c>size_mask</c>). If a FASTER upgrade renames them, <see cref="Enabled"/> is false and reads
/// simply are not prefetched (a test checks that it is true). A prefetch never faults and changes no result: a stale
/// address (the index is never resized here) would only make it useless. x86 only (<see cref="Sse.Prefetch0"/>);
/// elsewhere it does nothing.
/// </remarks>
internal sealed unsafe class BucketPrefetch
{
    /// <summary>Logical addresses are the low 48 bits of an index entry (FASTER's kAddressBits).</summary>
    private const long AddressMask = (1L << 48) - 1;

    /// <summary>FASTER marks read-cache addresses with bit 47; their records live elsewhere, so they are skipped.</summary>
    private const long ReadCacheBit = 1L << 47;

    /// <summary>Entries of a bucket that point at records (the eighth is the overflow-bucket link).</summary>
    private const int EntriesPerBucket = 7;

    private readonly byte* _table;
    private readonly long _mask;
    private readonly long* _pages;
    private readonly int _pageBits;
    private readonly long _pageMask;
    private readonly long _bufferMask;

    private BucketPrefetch(byte* table, long mask, long* pages = null, int pageBits = 0, long pageMask = 0, long bufferMask = 0)
    {
        _table = table;
        _mask = mask;
        _pages = pages;
        _pageBits = pageBits;
        _pageMask = pageMask;
        _bufferMask = bufferMask;
    }

    /// <summary>False when the log's page table could not be found: <see cref="PrefetchRecords"/> then does nothing.</summary>
    internal bool RecordsEnabled => _pages != null;

    /// <summary>False when the index address could not be found or the CPU has no prefetch instruction.</summary>
    internal bool Enabled => _table != null;

    /// <summary>A prefetcher that does nothing.</summary>
    internal static readonly BucketPrefetch None = new(null, 0);

    /// <summary>Finds the index of <paramref name="kv"/>; <see cref="None"/> if it cannot.</summary>
    internal static BucketPrefetch Of(FasterKV<SpanByte, SpanByte> kv)
    {
        if (!Sse.IsSupported)
            return None;
        try
        {
            if (Field(kv, "state") is not Array states || Field(Field(kv, "resizeInfo"), "version") is not int version
                || states.GetValue(version) is not { } state)
                return None;
            if (Field(state, "tableAligned") is not { } boxed || Field(state, "size_mask") is not long mask)
                return None;
            var table = (byte*)Pointer.Unbox(boxed);
            if (table == null)
                return None;
            // The in-memory log's page table (VariableLengthBlittableAllocator.nativePointers, a pinned array fixed
            // at construction) and its geometry, for PrefetchRecords; without them only buckets are prefetched.
            object? log = Field(kv, "hlog");
            if (Field(log, "nativePointers") is not { } pointers || Field(log, "LogPageSizeBits") is not int pageBits
                || Field(log, "PageSizeMask") is not int pageMask || Field(log, "BufferSizeMask") is not int bufferMask
                || pageBits <= 0 || pageMask != (1 << pageBits) - 1 || bufferMask <= 0)
                return new BucketPrefetch(table, mask);
            var pages = (long*)Pointer.Unbox(pointers);
            return pages == null ? new BucketPrefetch(table, mask) : new BucketPrefetch(table, mask, pages, pageBits, pageMask, bufferMask);
        }
        catch (Exception e) when (e is FieldAccessException or ArgumentException or NotSupportedException or InvalidCastException)
        {
            return None;
        }
    }

    /// <summary>The value of the instance field <paramref name="name"/> of <paramref name="target"/>, declared on its type or a base type; null if none.</summary>
    private static object? Field(object? target, string name)
    {
        const BindingFlags Any = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        for (Type? type = target?.GetType(); type is not null; type = type.BaseType)
        {
            if (type.GetField(name, Any) is { } field)
                return field.GetValue(target);
        }
        return null;
    }

    /// <summary>Starts loading the index bucket of a key whose FASTER hash is <paramref name="hash"/>.</summary>
    internal void Prefetch(long hash)
    {
        if (_table != null)
            Sse.Prefetch0(_table + ((hash & _mask) << 6));
    }

    /// <summary>
    /// Second stage, once the bucket of <paramref name="hash"/> is (likely) in the cache: starts loading the first three
    /// cache lines (a 100-byte value's whole record) of every in-memory record its entries point at (about one per bucket with the index sized to the
    /// keys; tags are not compared, so a record of another key may be loaded for nothing). Reads the bucket and the
    /// page table without synchronisation: a stale entry or a page that moved only wastes a prefetch, which never faults.
    /// </summary>
    internal void PrefetchRecords(long hash)
    {
        if (_pages == null)
            return;
        var entries = (long*)(_table + ((hash & _mask) << 6));
        for (int i = 0; i < EntriesPerBucket; i++)
        {
            long word = Volatile.Read(ref entries[i]);
            long address = word & AddressMask;
            if (address == 0 || (word & ReadCacheBit) != 0)
                continue;
            long page = _pages[(address >> _pageBits) & _bufferMask];
            if (page == 0)
                continue;
            byte* record = (byte*)(page + (address & _pageMask));
            Sse.Prefetch0(record);
            Sse.Prefetch0(record + 64);
            Sse.Prefetch0(record + 128);
        }
    }
}
