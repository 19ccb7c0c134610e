using System.Buffers.Binary;

namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// What an extension sees of the world: its tenant's records, its request arguments, a response
/// writer and yield points. One context serves one invocation at a time; the host pools them.
/// </summary>
/// <remarks>
/// Zero copy: <see cref="Get"/> and <see cref="TryGet"/> return spans over the store's own memory
/// (a record read from disk is copied once), valid until the next <c>await</c>, and showing the value
/// as it was read (a later write of the key makes a new record). The C# compiler refuses to keep a
/// span alive across an <c>await</c>, which is exactly the rule the store needs (it may evict records
/// between steps).
/// </remarks>
public sealed class ExtensionContext
{
    [ThreadStatic]
    private static ExtensionContext? t_current;

    private IExtensionStore _store;
    private ulong _tenant;
    private byte[] _args;
    private int _argsLength;
    private byte[] _response;
    private int _responseLength;
    private readonly int _maxResponseBytes;

    /// <summary>A context outside any scheduler (yields never suspend), for extension authors' tests.</summary>
    public ExtensionContext(IExtensionStore store, ulong tenant, ReadOnlySpan<byte> args, int maxResponseBytes = 64 * 1024)
    {
        _store = store;
        _tenant = tenant;
        _args = args.ToArray();
        _argsLength = _args.Length;
        _response = new byte[Math.Min(256, maxResponseBytes)];
        _maxResponseBytes = maxResponseBytes;
    }

    /// <summary>The tenant whose records this invocation reads and writes.</summary>
    public ulong Tenant => _tenant;

    /// <summary>The invocation's arguments, valid for the whole invocation.</summary>
    public ReadOnlySpan<byte> Args => _args.AsSpan(0, _argsLength);

    /// <summary>The response written so far.</summary>
    public ReadOnlySpan<byte> Response => _response.AsSpan(0, _responseLength);

    /// <summary>True while a scheduler runs this context (set by the host).</summary>
    internal bool IsScheduled;

    /// <summary>Set by the host when the time slice has ended; honoured at the next preemption point.</summary>
    internal bool YieldRequested;

    /// <summary>The coroutine to resume after a yield (set when the extension suspends).</summary>
    internal ExtensionTaskBox? Pending;

    /// <summary>The context whose invocation runs on this thread now (set by the host around each step).</summary>
    internal static ExtensionContext? Current
    {
        get => t_current;
        set => t_current = value;
    }

    /// <summary>Re-arms a pooled context for a new invocation (host only; copies the arguments).</summary>
    internal void Reset(IExtensionStore store, ulong tenant, ReadOnlySpan<byte> args)
    {
        _store = store;
        _tenant = tenant;
        if (_args.Length < args.Length)
        {
            _args = new byte[Math.Max(args.Length, _args.Length * 2)];
        }
        args.CopyTo(_args);
        _argsLength = args.Length;
        _responseLength = 0;
        YieldRequested = false;
        Pending = null;
    }

    /// <summary>Rebinds the store when a stolen invocation resumes on another worker (host only).</summary>
    internal void Bind(IExtensionStore store) => _store = store;

    internal void Suspend(ExtensionTaskBox box)
    {
        Pending = box;
        YieldRequested = false;
    }

    /// <summary>Reads a record without copying; empty when absent (use <see cref="TryGet"/> to tell empty from absent).</summary>
    public ReadOnlySpan<byte> Get(uint table, ReadOnlySpan<byte> key)
    {
        _store.TryGet(_tenant, table, key, out var value);
        return value;
    }

    /// <summary>Reads a record without copying; false when absent.</summary>
    public bool TryGet(uint table, ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value) =>
        _store.TryGet(_tenant, table, key, out value);

    /// <summary>Reads many records whose keys are packed back to back, each <paramref name="keySize"/> bytes long.</summary>
    public MultiGetEnumerator MultiGet(uint table, ReadOnlySpan<byte> keys, int keySize) => new(this, table, keys, keySize);

    /// <summary>Inserts or replaces a record. Spans read earlier keep showing the bytes they were read with.</summary>
    public void Put(uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value) => _store.Put(_tenant, table, key, value);

    /// <summary>Removes a record; false when it was absent.</summary>
    public bool Delete(uint table, ReadOnlySpan<byte> key) => _store.Delete(_tenant, table, key);

    /// <summary>Gives the worker back to the scheduler; the invocation resumes later, maybe on another worker.</summary>
    public YieldAwaitable Yield() => new(this, always: true);

    /// <summary>
    /// Yields only if the time slice of the running invocation has ended. The install pipeline inserts
    /// <c>await ExtensionContext.PreemptionPoint();</c> at the top of loop bodies in async methods.
    /// </summary>
    public static YieldAwaitable PreemptionPoint() => new(t_current, always: false);

    /// <summary>Appends bytes to the response; throws when the response would exceed its limit.</summary>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        _responseLength += bytes.Length;
    }

    /// <summary>Appends a little-endian int64 to the response.</summary>
    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(Reserve(8), value);
        _responseLength += 8;
    }

    /// <summary>Appends a little-endian int32 to the response.</summary>
    public void WriteInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(4), value);
        _responseLength += 4;
    }

    private Span<byte> Reserve(int length)
    {
        var needed = _responseLength + length;
        if (needed > _maxResponseBytes)
        {
            throw new InvalidOperationException($"response larger than {_maxResponseBytes} bytes");
        }
        if (needed > _response.Length)
        {
            Array.Resize(ref _response, Math.Min(_maxResponseBytes, Math.Max(needed, _response.Length * 2)));
        }
        return _response.AsSpan(_responseLength, length);
    }

    /// <summary>
    /// Sums the little-endian int64 at <paramref name="offset"/> of every record named in
    /// <paramref name="keys"/> (packed, <paramref name="keySize"/> bytes each). Absent or short records count 0.
    /// The fields are gathered into a stack buffer and summed with SIMD.
    /// </summary>
    public long SumInt64Field(uint table, ReadOnlySpan<byte> keys, int keySize, int offset) =>
        SumField(table, keys, keySize, offset, 8);

    /// <summary>As <see cref="SumInt64Field"/> for a little-endian int32 field (summed into an int64).</summary>
    public long SumInt32Field(uint table, ReadOnlySpan<byte> keys, int keySize, int offset) =>
        SumField(table, keys, keySize, offset, 4);

    /// <summary>Keys whose reads are prefetched together by the multi-key reads (<see cref="SumInt64Field"/>, <see cref="MultiGet"/>).</summary>
    internal const int PrefetchBatch = 32;

    internal void Prefetch(uint table, ReadOnlySpan<byte> keys, int keySize) => _store.Prefetch(_tenant, table, keys, keySize);

    private long SumField(uint table, ReadOnlySpan<byte> keys, int keySize, int offset, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keySize);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        Span<long> gathered = stackalloc long[64];
        var n = 0;
        long sum = 0;
        var prefetched = 0;
        for (var at = 0; at + keySize <= keys.Length; at += keySize)
        {
            if (at == prefetched)
            {
                // The store starts loading what the next batch of reads touches, so their cache misses overlap.
                prefetched = Math.Min(keys.Length, at + (PrefetchBatch * keySize));
                _store.Prefetch(_tenant, table, keys[at..prefetched], keySize);
            }
            if (!_store.TryGet(_tenant, table, keys.Slice(at, keySize), out var v) || v.Length < offset + width)
            {
                continue;
            }
            gathered[n++] = width == 8
                ? BinaryPrimitives.ReadInt64LittleEndian(v[offset..])
                : BinaryPrimitives.ReadInt32LittleEndian(v[offset..]);
            if (n == gathered.Length)
            {
                sum += Aggregate.Sum(gathered);
                n = 0;
            }
        }
        return sum + Aggregate.Sum(gathered[..n]);
    }
}

/// <summary>Iterates the records of a <see cref="ExtensionContext.MultiGet"/>; each value is valid until the next yield.</summary>
public ref struct MultiGetEnumerator
{
    private readonly ExtensionContext _context;
    private readonly uint _table;
    private readonly ReadOnlySpan<byte> _keys;
    private readonly int _keySize;
    private int _next;
    private int _prefetched;

    internal MultiGetEnumerator(ExtensionContext context, uint table, ReadOnlySpan<byte> keys, int keySize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(keySize);
        _context = context;
        _table = table;
        _keys = keys;
        _keySize = keySize;
    }

    /// <summary>Part of the foreach pattern.</summary>
    public readonly MultiGetEnumerator GetEnumerator() => this;

    /// <summary>The current record's value (empty when absent).</summary>
    public ReadOnlySpan<byte> Current { get; private set; }

    /// <summary>True when the current record exists.</summary>
    public bool Found { get; private set; }

    /// <summary>The current record's key.</summary>
    public readonly ReadOnlySpan<byte> CurrentKey => _keys.Slice(_next - _keySize, _keySize);

    /// <summary>Advances to the next key; false after the last one.</summary>
    public bool MoveNext()
    {
        if (_next + _keySize > _keys.Length)
        {
            return false;
        }
        if (_next == _prefetched)
        {
            _prefetched = Math.Min(_keys.Length, _next + (ExtensionContext.PrefetchBatch * _keySize));
            _context.Prefetch(_table, _keys[_next.._prefetched], _keySize);
        }
        Found = _context.TryGet(_table, _keys.Slice(_next, _keySize), out var value);
        Current = value;
        _next += _keySize;
        return true;
    }
}
