using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;

namespace Hybrid.Node.Resp;

/// <summary>
/// Writes RESP2 or RESP3 replies into one growable output buffer per connection, so a whole
/// pipeline of replies goes out in one send. Allocation happens only when the buffer grows
/// (rented from <see cref="ArrayPool{T}.Shared"/>); the steady state allocates nothing.
/// </summary>
/// <remarks>Not thread-safe: one writer per connection. Call <see cref="Dispose"/> to return the buffer.</remarks>
public sealed class RespWriter : IDisposable, IBufferWriter<byte>
{
    // Room left before a value read straight into the buffer: "$" + 10 digits + CRLF fits.
    private const int ValueHeaderRoom = 16;

    private byte[] _buffer;
    private int _length;

    // While a value is being captured (BeginBulkValue..EndBulkValue): where it starts and how long it is so far.
    private int _valueStart = -1;
    private int _valueLength;

    /// <summary>Creates a writer whose buffer starts at <paramref name="initialCapacity"/> bytes.</summary>
    public RespWriter(int initialCapacity = 16 * 1024) => _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);

    /// <summary>2 or 3: which RESP version replies use (HELLO switches it).</summary>
    public int Protocol { get; set; } = 2;

    /// <summary>Bytes written and not yet taken by <see cref="Clear"/>.</summary>
    public int Length => _length;

    /// <summary>The bytes written so far.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _length);

    /// <summary>The bytes written so far, as memory for an asynchronous send.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    /// <summary>Forgets what was written (after it was sent).</summary>
    public void Clear() => _length = 0;

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        _length = 0;
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Writes <c>+OK</c>.</summary>
    public void WriteOk() => WriteRaw("+OK\r\n"u8);

    /// <summary>Writes a simple string (<c>+text</c>); <paramref name="text"/> must hold no CR or LF.</summary>
    public void WriteSimpleString(ReadOnlySpan<byte> text) => WriteLine((byte)'+', text);

    /// <summary>Writes an error; <paramref name="message"/> starts with its code (<c>ERR</c>, <c>MOVED</c>...) and holds no CR or LF.</summary>
    public void WriteError(ReadOnlySpan<byte> message) => WriteLine((byte)'-', message);

    private void WriteLine(byte prefix, ReadOnlySpan<byte> text)
    {
        var span = GetSpan(text.Length + 3);
        span[0] = prefix;
        text.CopyTo(span[1..]);
        span[text.Length + 1] = (byte)'\r';
        span[text.Length + 2] = (byte)'\n';
        _length += text.Length + 3;
    }

    /// <summary>Writes an error from text (used on rare paths only: it encodes the string).</summary>
    public void WriteError(string message)
    {
        var span = GetSpan(message.Length * 3 + 3);
        span[0] = (byte)'-';
        var n = System.Text.Encoding.UTF8.GetBytes(message, span[1..]);
        span[n + 1] = (byte)'\r';
        span[n + 2] = (byte)'\n';
        _length += n + 3;
    }

    /// <summary>Writes an integer reply (<c>:n</c>).</summary>
    public void WriteInteger(long value) => WritePrefixedNumber((byte)':', value);

    /// <summary>Writes an array header of <paramref name="count"/> elements.</summary>
    public void WriteArrayHeader(int count) => WritePrefixedNumber((byte)'*', count);

    /// <summary>Writes a map header: a RESP3 map, or in RESP2 an array of 2×<paramref name="pairs"/> elements.</summary>
    public void WriteMapHeader(int pairs)
    {
        if (Protocol >= 3)
        {
            WritePrefixedNumber((byte)'%', pairs);
        }
        else
        {
            WritePrefixedNumber((byte)'*', pairs * 2L);
        }
    }

    /// <summary>Writes a set header: a RESP3 set, or in RESP2 an array.</summary>
    public void WriteSetHeader(int count) => WritePrefixedNumber(Protocol >= 3 ? (byte)'~' : (byte)'*', count);

    /// <summary>Writes the null reply: <c>_</c> in RESP3, the null bulk string <c>$-1</c> in RESP2.</summary>
    public void WriteNull() => WriteRaw(Protocol >= 3 ? "_\r\n"u8 : "$-1\r\n"u8);

    /// <summary>Writes the null array (<c>*-1</c>, or <c>_</c> in RESP3).</summary>
    public void WriteNullArray() => WriteRaw(Protocol >= 3 ? "_\r\n"u8 : "*-1\r\n"u8);

    /// <summary>Writes a bulk string.</summary>
    public void WriteBulk(ReadOnlySpan<byte> value)
    {
        var span = GetSpan(value.Length + 16);
        span[0] = (byte)'$';
        Utf8Formatter.TryFormat(value.Length, span[1..], out var n);
        var pos = n + 1;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        value.CopyTo(span[pos..]);
        pos += value.Length;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        _length += pos;
    }

    /// <summary>Writes a bulk string from ASCII/UTF-8 text (rare paths only).</summary>
    public void WriteBulk(string text)
    {
        var max = System.Text.Encoding.UTF8.GetMaxByteCount(text.Length);
        var rented = ArrayPool<byte>.Shared.Rent(max);
        var n = System.Text.Encoding.UTF8.GetBytes(text, rented);
        WriteBulk(rented.AsSpan(0, n));
        ArrayPool<byte>.Shared.Return(rented);
    }

    /// <summary>Writes a bulk string holding the decimal form of <paramref name="value"/>.</summary>
    public void WriteBulkInteger(long value)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out var n);
        WriteBulk(digits[..n]);
    }

    /// <summary>Writes a verbatim string (RESP3 <c>=</c> with format <c>txt</c>), or a bulk string in RESP2.</summary>
    public void WriteVerbatim(string text)
    {
        if (Protocol < 3)
        {
            WriteBulk(text);
            return;
        }
        var bytes = System.Text.Encoding.UTF8.GetBytes("txt:" + text);
        WritePrefixedNumber((byte)'=', bytes.Length);
        WriteRaw(bytes);
        WriteRaw("\r\n"u8);
    }

    /// <summary>
    /// Reserves room for a bulk string of exactly <paramref name="valueLength"/> bytes, writes its
    /// header and trailer, and returns the span the caller fills with the value (zero-copy reads).
    /// </summary>
    public Span<byte> WriteBulkHeaderAndReserve(int valueLength)
    {
        var span = GetSpan(valueLength + 16);
        span[0] = (byte)'$';
        Utf8Formatter.TryFormat(valueLength, span[1..], out var n);
        var pos = n + 1;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        var value = span.Slice(pos, valueLength);
        pos += valueLength;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        _length += pos;
        return value;
    }

    /// <summary>
    /// Starts a bulk string whose value the storage writes straight into this buffer through the returned
    /// <see cref="IBufferWriter{T}"/> (no intermediate copy). Finish with <see cref="EndBulkValue"/> (the value is
    /// then moved next to its header, a short memmove) or <see cref="CancelBulkValue"/> (nothing is written).
    /// </summary>
    public IBufferWriter<byte> BeginBulkValue()
    {
        EnsureCapacity(ValueHeaderRoom + 64);
        _valueStart = _length + ValueHeaderRoom;
        _valueLength = 0;
        return this;
    }

    /// <summary>Completes the bulk string started by <see cref="BeginBulkValue"/>.</summary>
    public void EndBulkValue()
    {
        Span<byte> header = stackalloc byte[ValueHeaderRoom];
        header[0] = (byte)'$';
        Utf8Formatter.TryFormat(_valueLength, header[1..], out var n);
        header[n + 1] = (byte)'\r';
        header[n + 2] = (byte)'\n';
        var headerLength = n + 3;
        var valueStart = _valueStart;
        var valueLength = _valueLength;
        _valueStart = -1;
        // ReserveValue kept room for the value and its CRLF after a 16-byte gap, and the header is shorter than
        // the gap: header + value + CRLF fit without growing.
        var span = _buffer.AsSpan();
        span.Slice(valueStart, valueLength).CopyTo(span[(_length + headerLength)..]);
        header[..headerLength].CopyTo(span[_length..]);
        var end = _length + headerLength + valueLength;
        span[end] = (byte)'\r';
        span[end + 1] = (byte)'\n';
        _length = end + 2;
    }

    /// <summary>Drops a value started by <see cref="BeginBulkValue"/> (the key was not found, or the read went pending).</summary>
    public void CancelBulkValue() => _valueStart = -1;

    /// <inheritdoc />
    void IBufferWriter<byte>.Advance(int count) => _valueLength += count;

    /// <inheritdoc />
    Memory<byte> IBufferWriter<byte>.GetMemory(int sizeHint)
    {
        var at = ReserveValue(sizeHint); // may replace _buffer: read it after
        return _buffer.AsMemory(at);
    }

    /// <inheritdoc />
    Span<byte> IBufferWriter<byte>.GetSpan(int sizeHint)
    {
        var at = ReserveValue(sizeHint); // may replace _buffer: read it after
        return _buffer.AsSpan(at);
    }

    private int ReserveValue(int sizeHint)
    {
        if (_valueStart < 0)
        {
            throw new InvalidOperationException("RespWriter is an IBufferWriter only between BeginBulkValue and EndBulkValue");
        }
        var at = _valueStart + _valueLength;
        var needed = at + Math.Max(sizeHint, 1) + 2;
        if (needed > _buffer.Length)
        {
            Grow(needed - _length);
        }
        return at;
    }

    /// <summary>Writes bytes as they are (already RESP-encoded).</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        var span = GetSpan(bytes.Length);
        bytes.CopyTo(span);
        _length += bytes.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WritePrefixedNumber(byte prefix, long value)
    {
        var span = GetSpan(24);
        span[0] = prefix;
        Utf8Formatter.TryFormat(value, span[1..], out var n);
        span[n + 1] = (byte)'\r';
        span[n + 2] = (byte)'\n';
        _length += n + 3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> GetSpan(int size)
    {
        EnsureCapacity(size);
        return _buffer.AsSpan(_length);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EnsureCapacity(int size)
    {
        if (_buffer.Length - _length < size)
        {
            Grow(size);
        }
    }

    private void Grow(int size)
    {
        var used = _valueStart >= 0 ? _valueStart + _valueLength : _length;
        var next = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + size));
        _buffer.AsSpan(0, used).CopyTo(next);
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = next;
    }
}
