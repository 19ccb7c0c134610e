using System.Net;

namespace Hybrid.Client;

/// <summary>
/// A snapshot of the cluster as a client routes by it: the slots of each range, each range's owner, each node's
/// newest view, the ranges each node owns in each of its views (<c>hist</c>) and where to reach each node.
/// </summary>
/// <param name="Ranges">Range name → inclusive slot bounds.</param>
/// <param name="Owner">Range name → owner node.</param>
/// <param name="Views">Node → its newest view.</param>
/// <param name="History">Node → the ranges it owns in view i+1 at index i.</param>
/// <param name="EndPoints">Node → its native endpoint (nodes that are not running are absent).</param>
public sealed record ClusterRouting(
    IReadOnlyDictionary<string, (int First, int Last)> Ranges,
    IReadOnlyDictionary<string, string> Owner,
    IReadOnlyDictionary<string, int> Views,
    IReadOnlyDictionary<string, IReadOnlyList<IReadOnlySet<string>>> History,
    IReadOnlyDictionary<string, EndPoint> EndPoints)
{
    /// <summary>The range holding <paramref name="slot"/>, or null.</summary>
    public string? RangeOf(int slot)
    {
        foreach (var (name, (first, last)) in Ranges)
        {
            if (slot >= first && slot <= last)
                return name;
        }
        return null;
    }

    /// <summary>True when <paramref name="node"/> owns <paramref name="range"/> in its view <paramref name="view"/> (<c>Owned(n, v)</c>).</summary>
    public bool Owns(string node, ulong view, string range) =>
        History.TryGetValue(node, out var hist) && view >= 1 && view <= (ulong)hist.Count && hist[(int)view - 1].Contains(range);
}

/// <summary>Where a <see cref="ClusterClient"/> reads the cluster's routing (the metadata store, in Hybrid.Cluster).</summary>
public interface IClusterRoutingSource
{
    /// <summary>The newest routing.</summary>
    Task<ClusterRouting> LoadAsync(CancellationToken cancellationToken = default);
}

/// <summary>The Redis Cluster slot of a key, computed on the client (the same rule as the node's).</summary>
public static class ClusterSlot
{
    /// <summary>CRC16-XMODEM of the key, or of the non-empty part inside its first <c>{...}</c>, mod 16384.</summary>
    public static int Of(ReadOnlySpan<byte> key)
    {
        int open = key.IndexOf((byte)'{');
        if (open >= 0)
        {
            int close = key[(open + 1)..].IndexOf((byte)'}');
            if (close > 0)
                key = key.Slice(open + 1, close);
        }
        int crc = 0;
        foreach (byte b in key)
        {
            crc ^= b << 8;
            for (int bit = 0; bit < 8; bit++)
                crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
        }
        return crc & 0x3FFF;
    }
}
