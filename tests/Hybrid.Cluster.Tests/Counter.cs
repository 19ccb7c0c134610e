using System.Globalization;
using System.Text;

namespace Hybrid.Cluster.Tests;

/// <summary>The read-CAS-retry loop the contract tests (and child processes) use to count.</summary>
public static class Counter
{
    /// <summary>Encodes a number as the stored value.</summary>
    public static byte[] Encode(long value) => Encoding.UTF8.GetBytes(value.ToString(CultureInfo.InvariantCulture));

    /// <summary>Decodes a stored value (null entry = 0).</summary>
    public static long Decode(MetadataEntry? entry) =>
        entry is null ? 0 : long.Parse(Encoding.UTF8.GetString(entry.Value.Span), CultureInfo.InvariantCulture);

    /// <summary>Adds one with optimistic concurrency; returns the new value and the revision that wrote it.</summary>
    public static async Task<(long Value, long Revision)> IncrementAsync(IMetadataStore store, string key)
    {
        while (true)
        {
            var current = await store.GetAsync(key);
            var next = Decode(current) + 1;
            var result = await store.CompareAndSwapAsync(key, current?.Revision ?? MetadataRevision.Absent, Encode(next));
            if (result.Succeeded)
            {
                return (next, result.Revision);
            }
        }
    }
}
