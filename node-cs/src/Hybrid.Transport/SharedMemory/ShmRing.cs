using System.Runtime.CompilerServices;

namespace Hybrid.Transport.SharedMemory;

/// <summary>
/// One direction of a shared-memory connection: a single-producer/single-consumer byte ring in a mapped file.
/// Records are <c>[i32 chunkLength][i32 messageLength][bytes][pad to 8]</c>; a message larger than a quarter of
/// the ring is streamed as several chunks. A chunk never wraps: a record that does not fit before the end is
/// preceded by a wrap marker (chunkLength = -1) and starts at offset 0.
/// </summary>
/// <remarks>
/// Header (three cache lines, so producer and consumer never write the same line): +0 tail (written only by
/// the producer, release), +64 head (written only by the consumer, release), +128 consumer-sleeping flag,
/// +132 writer-closed flag. Positions grow forever; the index is position &amp; (capacity - 1).
/// Each side keeps the last value it read of the other side's position (<c>_peerPosition</c>) and reads the shared
/// one again only when that cached value runs out (the producer: the ring looks full; the consumer: it looks
/// empty). The other side's position line was last written by the other core, so every read of it is a cache-line
/// transfer: without the cache a producer paid one per message even when the ring was nearly empty.
/// </remarks>
internal sealed unsafe class ShmRing
{
    /// <summary>Bytes of a ring header.</summary>
    public const int HeaderBytes = 192;

    private const int RecordHeader = 8;
    private const int WrapMarker = -1;
    private readonly byte* _header;
    private readonly byte* _data;
    private readonly int _capacity;
    private long _position;
    private long _peerPosition;

    /// <summary>Wraps a ring whose header and data live in mapped memory (zeroed by the creator).</summary>
    /// <remarks>On the writing side (<paramref name="isProducer"/>) the cached position is the tail, else the head.</remarks>
    public ShmRing(byte* header, byte* data, int capacity, bool isProducer)
    {
        _header = header;
        _data = data;
        _capacity = capacity;
        _position = isProducer ? Volatile.Read(ref Tail) : Volatile.Read(ref Head);
        _peerPosition = isProducer ? Volatile.Read(ref Head) : Volatile.Read(ref Tail);
    }

    /// <summary>Largest chunk one record carries.</summary>
    public int MaxChunk => _capacity / 4 - RecordHeader;

    private ref long Tail => ref Unsafe.AsRef<long>(_header);

    private ref long Head => ref Unsafe.AsRef<long>(_header + 64);

    /// <summary>Set by the consumer before it blocks on the doorbell; cleared by whoever rings it.</summary>
    public ref int ConsumerSleeping => ref Unsafe.AsRef<int>(_header + 128);

    /// <summary>Set by the producer when it says goodbye: what is in the ring is all there will be.</summary>
    public ref int WriterClosed => ref Unsafe.AsRef<int>(_header + 132);

    /// <summary>Producer: appends one chunk of a message of <paramref name="messageLength"/> bytes; false if the ring lacks room.</summary>
    public bool TryWrite(ReadOnlySpan<byte> chunk, int messageLength)
    {
        int need = Align8(RecordHeader + chunk.Length);
        long tail = _position;
        int index = (int)(tail & (_capacity - 1));
        int contiguous = _capacity - index;
        int total = contiguous < need ? need + contiguous : need;
        if (_capacity - (tail - _peerPosition) < total)
        {
            _peerPosition = Volatile.Read(ref Head);
            if (_capacity - (tail - _peerPosition) < total)
                return false;
        }
        if (contiguous < need)
        {
            *(int*)(_data + index) = WrapMarker;
            tail += contiguous;
            index = 0;
        }
        *(int*)(_data + index) = chunk.Length;
        *(int*)(_data + index + 4) = messageLength;
        chunk.CopyTo(new Span<byte>(_data + index + RecordHeader, chunk.Length));
        _position = tail + need;
        // WARNING: the release store publishes the bytes above; it must stay the last write.
        Volatile.Write(ref Tail, _position);
        return true;
    }

    /// <summary>Consumer: the next chunk, if any; call <see cref="Advance"/> once it has been copied out.</summary>
    public bool TryPeek(out ReadOnlySpan<byte> chunk, out int messageLength)
    {
        while (true)
        {
            long head = _position;
            if (head == _peerPosition && head == (_peerPosition = Volatile.Read(ref Tail)))
            {
                chunk = default;
                messageLength = 0;
                return false;
            }
            int index = (int)(head & (_capacity - 1));
            int length = *(int*)(_data + index);
            if (length == WrapMarker)
            {
                _position = head + (_capacity - index);
                Volatile.Write(ref Head, _position);
                continue;
            }
            messageLength = *(int*)(_data + index + 4);
            if (length < 0 || length > _capacity - index - RecordHeader || messageLength < length)
                throw new TransportException(TransportError.ProtocolViolation, $"corrupt ring record ({length} of {messageLength} bytes)");
            chunk = new ReadOnlySpan<byte>(_data + index + RecordHeader, length);
            return true;
        }
    }

    /// <summary>Consumer: releases the chunk returned by <see cref="TryPeek"/> to the producer.</summary>
    public void Advance(int chunkLength)
    {
        _position += Align8(RecordHeader + chunkLength);
        Volatile.Write(ref Head, _position);
    }

    /// <summary>True when nothing is waiting to be read.</summary>
    public bool IsEmpty => _position == Volatile.Read(ref Tail);

    private static int Align8(int n) => (n + 7) & ~7;
}
