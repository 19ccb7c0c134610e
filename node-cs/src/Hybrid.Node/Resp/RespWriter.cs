using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;
using Hybrid.Protocol;

namespace Hybrid.Node.Resp;

/// <summary>
/// Writes RESP2 or RESP3 replies into the connection's output <see cref="FrameBuffer"/> (the node's, or the
/// standalone listener's), so a whole pipeline of replies goes out in one send. The buffer grows by renting from
/// the array pool; the steady state allocates nothing.
/// </summary>
/// <remarks>Not thread-safe: one writer per connection, bound to an output buffer for the duration of a call.</remarks>
public sealed class RespWriter : IBufferWriter<byte>
{
    // Room left before a value read straight into the buffer: "$" + 10 digits + CRLF fits.
    private const int ValueHeaderRoom = 16;

    private FrameBuffer _target;

    // Offset in the target where the bulk string being captured (BeginBulkValue..EndBulkValue) starts; -1 = none.
    private int _valueStart = -1;

    /// <summary>Creates a writer bound to <paramref name="target"/>.</summary>
    public RespWriter(FrameBuffer target) => _target = target;

    /// <summary>The buffer replies are appended to; rebind it per call with <see cref="Bind"/>.</summary>
    public FrameBuffer Target => _target;

    /// <summary>2 or 3: which RESP version replies use (HELLO switches it).</summary>
    public int Protocol { get; set; } = 2;

    /// <summary>Bytes in the target buffer.</summary>
    public int Length => _target.Length;

    /// <summary>Drops what was written after <paramref name="length"/> bytes (a reply replaced by an error).</summary>
    public void Truncate(int length) => _target.Truncate(length);

    /// <summary>Makes later replies go to <paramref name="target"/>.</summary>
    public void Bind(FrameBuffer target) => _target = target;

    /// <summary>Writes <c>+OK</c>.</summary>
    public void WriteOk() => WriteRaw("+OK\r\n"u8);

    /// <summary>Writes a simple string (<c>+text</c>); <paramref name="text"/> must hold no CR or LF.</summary>
    public void WriteSimpleString(ReadOnlySpan<byte> text) => WriteLine((byte)'+', text);

    /// <summary>Writes an error; <paramref name="message"/> starts with its code (<c>ERR</c>, <c>MOVED</c>...) and holds no CR or LF.</summary>
    public void WriteError(ReadOnlySpan<byte> message) => WriteLine((byte)'-', message);

    private void WriteLine(byte prefix, ReadOnlySpan<byte> text)
    {
        var span = _target.GetSpan(text.Length + 3);
        span[0] = prefix;
        text.CopyTo(span[1..]);
        span[text.Length + 1] = (byte)'\r';
        span[text.Length + 2] = (byte)'\n';
        _target.Advance(text.Length + 3);
    }

    /// <summary>Longest error text <see cref="WriteError(string)"/> writes, in characters; longer text is cut and marked.</summary>
    public const int MaxErrorChars = 4096;

    /// <summary>
    /// Writes an error from text (used on rare paths only: it encodes the string). CR and LF become spaces and text past
    /// <see cref="MaxErrorChars"/> is cut, since the text may come from a tenant (an extension's exception message): a
    /// line break in it ended the error line early, and the client read the rest as the replies of its next commands.
    /// </summary>
    public void WriteError(string message)
    {
        if (message.Length > MaxErrorChars)
            message = string.Concat(message.AsSpan(0, MaxErrorChars), "...");
        var span = _target.GetSpan(message.Length * 3 + 3);
        span[0] = (byte)'-';
        var n = System.Text.Encoding.UTF8.GetBytes(message, span[1..]);
        span.Slice(1, n).Replace((byte)'\r', (byte)' ');
        span.Slice(1, n).Replace((byte)'\n', (byte)' ');
        span[n + 1] = (byte)'\r';
        span[n + 2] = (byte)'\n';
        _target.Advance(n + 3);
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
        var span = _target.GetSpan(value.Length + 16);
        span[0] = (byte)'$';
        Utf8Formatter.TryFormat(value.Length, span[1..], out var n);
        var pos = n + 1;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        value.CopyTo(span[pos..]);
        pos += value.Length;
        span[pos++] = (byte)'\r';
        span[pos++] = (byte)'\n';
        _target.Advance(pos);
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
    /// Starts a bulk string whose value the storage writes straight into the output through the returned
    /// <see cref="IBufferWriter{T}"/> (no intermediate copy): the value lands after a 16-byte gap, and
    /// <see cref="EndBulkValue"/> writes the header and moves the value next to it (a short memmove).
    /// <see cref="CancelBulkValue"/> undoes it (not found, pending).
    /// </summary>
    public IBufferWriter<byte> BeginBulkValue()
    {
        _valueStart = _target.Length;
        _target.Append(ValueHeaderRoom);
        return this;
    }

    /// <summary>Completes the bulk string started by <see cref="BeginBulkValue"/>.</summary>
    public void EndBulkValue()
    {
        var start = _valueStart;
        _valueStart = -1;
        var valueLength = _target.Length - start - ValueHeaderRoom;
        var buffer = _target.Array.AsSpan();
        buffer[start] = (byte)'$';
        Utf8Formatter.TryFormat(valueLength, buffer[(start + 1)..], out var n);
        buffer[start + n + 1] = (byte)'\r';
        buffer[start + n + 2] = (byte)'\n';
        var headerLength = n + 3;
        buffer.Slice(start + ValueHeaderRoom, valueLength).CopyTo(buffer[(start + headerLength)..]);
        _target.Truncate(start + headerLength + valueLength);
        var crlf = _target.Append(2);
        crlf[0] = (byte)'\r';
        crlf[1] = (byte)'\n';
    }

    /// <summary>Drops a value started by <see cref="BeginBulkValue"/> (the key was not found, or the read went pending).</summary>
    public void CancelBulkValue()
    {
        _target.Truncate(_valueStart);
        _valueStart = -1;
    }

    /// <inheritdoc />
    void IBufferWriter<byte>.Advance(int count) => _target.Advance(count);

    /// <inheritdoc />
    Memory<byte> IBufferWriter<byte>.GetMemory(int sizeHint) => _target.GetMemory(sizeHint);

    /// <inheritdoc />
    Span<byte> IBufferWriter<byte>.GetSpan(int sizeHint) => _target.GetSpan(sizeHint);

    /// <summary>Writes bytes as they are (already RESP-encoded).</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes) => bytes.CopyTo(_target.Append(bytes.Length));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void WritePrefixedNumber(byte prefix, long value)
    {
        var span = _target.GetSpan(24);
        span[0] = prefix;
        Utf8Formatter.TryFormat(value, span[1..], out var n);
        span[n + 1] = (byte)'\r';
        span[n + 2] = (byte)'\n';
        _target.Advance(n + 3);
    }
}
