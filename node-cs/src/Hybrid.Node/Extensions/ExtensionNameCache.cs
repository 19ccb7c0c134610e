using System.Text;
using Hybrid.Extensions;

namespace Hybrid.Node.Extensions;

/// <summary>
/// A connection's few most recent extension lookups by (tenant, UTF-8 name), valid while the host's
/// <see cref="ExtensionHost.Generation"/> is unchanged: a repeated Invoke or FCALL of a cached name allocates nothing.
/// One per connection (native or RESP), so it needs no lock.
/// </summary>
internal sealed class ExtensionNameCache
{
    private const int Size = 8;
    private readonly byte[][] _names = new byte[Size][];
    private readonly ulong[] _tenants = new ulong[Size];
    private readonly ExtensionHandle?[] _handles = new ExtensionHandle?[Size];
    private int _count;
    private int _next;
    private long _generation = -1;

    /// <summary>The tenant's extension named <paramref name="name"/>, or null when it has none by that name.</summary>
    public ExtensionHandle? Resolve(ExtensionHost host, ulong tenant, ReadOnlySpan<byte> name)
    {
        long generation = host.Generation;
        if (generation != _generation)
        {
            Array.Clear(_handles);
            _count = 0;
            _generation = generation;
        }
        for (int i = 0; i < _count; i++)
        {
            if (_tenants[i] == tenant && name.SequenceEqual(_names[i]))
                return _handles[i];
        }
        var handle = host.Resolve(tenant, Encoding.UTF8.GetString(name));
        if (handle is not null)
        {
            int slot = _count < Size ? _count++ : _next++ % Size;
            _names[slot] = name.ToArray();
            _tenants[slot] = tenant;
            _handles[slot] = handle;
        }
        return handle;
    }
}
