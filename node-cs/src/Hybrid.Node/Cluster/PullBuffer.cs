using System.Buffers.Binary;
using Hybrid.Storage;

namespace Hybrid.Node.Cluster;

/// <summary>
/// A reusable batch of pulled records (the payload of one pull response): each record is
/// [tenant u32][table u32][version u64][key length i32][value length i32][key][value], little-endian. The buffer
/// grows when needed and is reused across pulls, so a steady migration allocates nothing per chunk. It is also the
/// <see cref="IScanSink"/> a scan writes into, so records are copied once, from the log into the response.
/// </summary>
public sealed class PullBuffer : IScanSink
{
    private const int HeaderBytes = 24;
    private byte[] _bytes;

    /// <summary>Creates a buffer with room for <paramref name="capacity"/> bytes before it grows.</summary>
    public PullBuffer(int capacity = 32 * 1024) => _bytes = new byte[capacity];

    /// <summary>Encoded bytes in use.</summary>
    public int Length { get; private set; }

    /// <summary>Records in the buffer.</summary>
    public int Count { get; private set; }

    /// <summary>Key + value bytes of the records (the payload, without headers).</summary>
    public long PayloadBytes { get; private set; }

    /// <summary>The encoded records (what goes over the wire).</summary>
    public ReadOnlySpan<byte> Encoded => _bytes.AsSpan(0, Length);

    /// <summary>Empties the buffer for the next pull.</summary>
    public void Clear()
    {
        Length = 0;
        Count = 0;
        PayloadBytes = 0;
    }

    /// <summary>Appends one record.</summary>
    public void Add(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version)
    {
        int need = HeaderBytes + key.Length + value.Length;
        if (Length + need > _bytes.Length)
            Array.Resize(ref _bytes, Math.Max(_bytes.Length * 2, Length + need));
        Span<byte> dst = _bytes.AsSpan(Length);
        BinaryPrimitives.WriteUInt32LittleEndian(dst, tenant);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[4..], table);
        BinaryPrimitives.WriteUInt64LittleEndian(dst[8..], version);
        BinaryPrimitives.WriteInt32LittleEndian(dst[16..], key.Length);
        BinaryPrimitives.WriteInt32LittleEndian(dst[20..], value.Length);
        key.CopyTo(dst[HeaderBytes..]);
        value.CopyTo(dst[(HeaderBytes + key.Length)..]);
        Length += need;
        Count++;
        PayloadBytes += key.Length + value.Length;
    }

    /// <inheritdoc />
    void IScanSink.OnRecord(uint tenant, uint table, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong version) =>
        Add(tenant, table, key, value, version);

    /// <summary>
    /// Replaces the content with <paramref name="encoded"/> (a response received from a peer) of <paramref name="count"/>
    /// records. The reply is checked first: exactly <paramref name="count"/> whole records, every key and value length
    /// non-negative and within the bytes received; anything else throws <see cref="InvalidDataException"/> (a reply
    /// this side cannot trust counts as a broken connection) and leaves the buffer empty.
    /// </summary>
    public void Load(ReadOnlySpan<byte> encoded, int count)
    {
        Clear();
        long payload = Validate(encoded, count);
        if (encoded.Length > _bytes.Length)
            _bytes = new byte[encoded.Length];
        encoded.CopyTo(_bytes);
        Length = encoded.Length;
        Count = count;
        PayloadBytes = payload;
    }

    /// <summary>Checks that <paramref name="encoded"/> is exactly <paramref name="count"/> well-formed records; returns their key + value bytes.</summary>
    private static long Validate(ReadOnlySpan<byte> encoded, int count)
    {
        if (count < 0 || (long)count * HeaderBytes > encoded.Length)
            throw new InvalidDataException($"{count} pulled records cannot fit in {encoded.Length} bytes");
        long payload = 0;
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            if (encoded.Length - at < HeaderBytes)
                throw new InvalidDataException($"pulled record {i} of {count} is cut off in its header");
            int keyLength = BinaryPrimitives.ReadInt32LittleEndian(encoded[(at + 16)..]);
            int valueLength = BinaryPrimitives.ReadInt32LittleEndian(encoded[(at + 20)..]);
            if (keyLength < 0 || valueLength < 0 || (long)keyLength + valueLength > encoded.Length - at - HeaderBytes)
                throw new InvalidDataException($"pulled record {i} of {count} claims a key of {keyLength} and a value of {valueLength} bytes, more than received");
            at += HeaderBytes + keyLength + valueLength;
            payload += keyLength + valueLength;
        }
        if (at != encoded.Length)
            throw new InvalidDataException($"{encoded.Length - at} bytes after the {count} pulled records");
        return payload;
    }

    /// <summary>Hands every record to <paramref name="sink"/>, in order.</summary>
    public void ForEach(IScanSink sink)
    {
        ReadOnlySpan<byte> src = Encoded;
        while (!src.IsEmpty)
        {
            uint tenant = BinaryPrimitives.ReadUInt32LittleEndian(src);
            uint table = BinaryPrimitives.ReadUInt32LittleEndian(src[4..]);
            ulong version = BinaryPrimitives.ReadUInt64LittleEndian(src[8..]);
            int keyLength = BinaryPrimitives.ReadInt32LittleEndian(src[16..]);
            int valueLength = BinaryPrimitives.ReadInt32LittleEndian(src[20..]);
            ReadOnlySpan<byte> key = src.Slice(HeaderBytes, keyLength);
            ReadOnlySpan<byte> value = src.Slice(HeaderBytes + keyLength, valueLength);
            sink.OnRecord(tenant, table, key, value, version);
            src = src[(HeaderBytes + keyLength + valueLength)..];
        }
    }
}
