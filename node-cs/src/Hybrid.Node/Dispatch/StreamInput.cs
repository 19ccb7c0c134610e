using System.Buffers;

namespace Hybrid.Node.Dispatch;

/// <summary>
/// The input side of a byte-stream connection (<see cref="PolledConnection"/>, <see cref="SocketConnection"/>):
/// received bytes the front end has not consumed yet, in a pooled buffer that grows up to the largest frame.
/// </summary>
internal sealed class StreamInput
{
    /// <summary>Bytes kept free past the data: vector key hashing may read a few bytes beyond the last key.</summary>
    private const int Slack = 8;

    private readonly int _maxInput;
    private byte[] _buffer;

    internal StreamInput(int initialBytes, int maxInput)
    {
        _maxInput = maxInput;
        _buffer = ArrayPool<byte>.Shared.Rent(initialBytes);
    }

    /// <summary>The buffer (for an asynchronous receive into <see cref="End"/>..+<see cref="Room"/>).</summary>
    internal byte[] Array => _buffer;

    /// <summary>Where the unconsumed bytes start.</summary>
    internal int Start { get; private set; }

    /// <summary>Where the received bytes end.</summary>
    internal int End { get; private set; }

    /// <summary>Received bytes not consumed yet.</summary>
    internal ReadOnlySpan<byte> Pending => _buffer.AsSpan(Start, End - Start);

    /// <summary>True when some received bytes are not consumed yet.</summary>
    internal bool HasPending => End > Start;

    /// <summary>Room to receive into after <see cref="Prepare"/>.</summary>
    internal int Room => _buffer.Length - End - Slack;

    /// <summary>The room as a span.</summary>
    internal Span<byte> Free => _buffer.AsSpan(End, Room);

    /// <summary>The front end consumed <paramref name="count"/> bytes.</summary>
    internal void Consume(int count) => Start += count;

    /// <summary>A receive added <paramref name="count"/> bytes at <see cref="End"/>.</summary>
    internal void Received(int count) => End += count;

    /// <summary>Before a receive: moves unconsumed input to the front and grows the buffer when a frame does not fit.</summary>
    internal void Prepare()
    {
        if (Start == End)
        {
            Start = End = 0;
        }
        else if (Start > 0)
        {
            _buffer.AsSpan(Start, End - Start).CopyTo(_buffer);
            End -= Start;
            Start = 0;
        }
        if (_buffer.Length - End - Slack < 4096)
        {
            if (_buffer.Length >= _maxInput + Slack)
                throw new InvalidOperationException("input buffer limit reached without a complete request");
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_buffer.Length * 2, _maxInput + Slack + 4096));
            _buffer.AsSpan(0, End).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }
    }

    /// <summary>Returns the buffer to the pool (once, when the connection closes).</summary>
    internal void Release()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
            ArrayPool<byte>.Shared.Return(buffer);
    }
}
