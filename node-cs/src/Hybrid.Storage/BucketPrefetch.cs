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
    private readonly byte* _table;
    private readonly long _mask;

    private BucketPrefetch(byte* table, long mask)
    {
        _table = table;
        _mask = mask;
    }

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
            const BindingFlags Any = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
            Type? type = kv.GetType();
            FieldInfo? stateField = null, resizeField = null;
            for (; type is not null && (stateField is null || resizeField is null); type = type.BaseType)
            {
                stateField ??= type.GetField("state", Any | BindingFlags.DeclaredOnly);
                resizeField ??= type.GetField("resizeInfo", Any | BindingFlags.DeclaredOnly);
            }
            if (stateField?.GetValue(kv) is not Array states || resizeField?.GetValue(kv) is not { } resize)
                return None;
            if (resize.GetType().GetField("version", Any)?.GetValue(resize) is not int version || states.GetValue(version) is not { } state)
                return None;
            var tableField = state.GetType().GetField("tableAligned", Any);
            if (tableField?.GetValue(state) is not { } boxed || state.GetType().GetField("size_mask", Any)?.GetValue(state) is not long mask)
                return None;
            var table = (byte*)Pointer.Unbox(boxed);
            return table == null ? None : new BucketPrefetch(table, mask);
        }
        catch (Exception e) when (e is FieldAccessException or ArgumentException or NotSupportedException or InvalidCastException)
        {
            return None;
        }
    }

    /// <summary>Starts loading the index bucket of a key whose FASTER hash is <paramref name="hash"/>.</summary>
    internal void Prefetch(long hash)
    {
        if (_table != null)
            Sse.Prefetch0(_table + ((hash & _mask) << 6));
    }
}
