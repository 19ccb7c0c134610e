using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Hybrid.Cli.Cluster;

/// <summary>
/// An RGB picture drawn in memory (no plotting or imaging package: the machine has none and the store must not need
/// one): rectangles, lines and a built-in 3×5 pixel font, written out by <see cref="Png"/>.
/// </summary>
public sealed class Raster
{
    private readonly byte[] _rgb;

    /// <summary>A white picture of <paramref name="width"/> × <paramref name="height"/> pixels.</summary>
    public Raster(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        Width = width;
        Height = height;
        _rgb = new byte[width * height * 3];
        Array.Fill(_rgb, (byte)0xff);
    }

    /// <summary>Pixels per row.</summary>
    public int Width { get; }

    /// <summary>Rows.</summary>
    public int Height { get; }

    /// <summary>The pixels, row by row from the top, 3 bytes (R, G, B) each.</summary>
    public ReadOnlySpan<byte> Pixels => _rgb;

    /// <summary>The colour at (<paramref name="x"/>, <paramref name="y"/>) as 0xRRGGBB.</summary>
    public int this[int x, int y]
    {
        get
        {
            int i = ((y * Width) + x) * 3;
            return (_rgb[i] << 16) | (_rgb[i + 1] << 8) | _rgb[i + 2];
        }
    }

    /// <summary>Paints one pixel; points outside the picture are ignored (lines may be clipped).</summary>
    public void Set(int x, int y, int rgb)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height)
            return;
        int i = ((y * Width) + x) * 3;
        _rgb[i] = (byte)(rgb >> 16);
        _rgb[i + 1] = (byte)(rgb >> 8);
        _rgb[i + 2] = (byte)rgb;
    }

    /// <summary>Fills the rectangle with corners (<paramref name="x0"/>, <paramref name="y0"/>) and (<paramref name="x1"/>, <paramref name="y1"/>), both included.</summary>
    public void Fill(int x0, int y0, int x1, int y1, int rgb)
    {
        for (int y = Math.Min(y0, y1); y <= Math.Max(y0, y1); y++)
        {
            for (int x = Math.Min(x0, x1); x <= Math.Max(x0, x1); x++)
                Set(x, y, rgb);
        }
    }

    /// <summary>The outline of the rectangle (see <see cref="Fill"/>).</summary>
    public void Box(int x0, int y0, int x1, int y1, int rgb)
    {
        Line(x0, y0, x1, y0, rgb);
        Line(x1, y0, x1, y1, rgb);
        Line(x1, y1, x0, y1, rgb);
        Line(x0, y1, x0, y0, rgb);
    }

    /// <summary>A straight line between two points, both included (Bresenham), <paramref name="thickness"/> pixels wide.</summary>
    public void Line(int x0, int y0, int x1, int y1, int rgb, int thickness = 1)
    {
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0);
        int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
        int error = dx + dy;
        while (true)
        {
            for (int t = 0; t < thickness; t++)
            {
                Set(x0 + (dy == 0 ? 0 : t), y0 + (dy == 0 ? t : 0), rgb);
            }
            if (x0 == x1 && y0 == y1)
                return;
            int e2 = 2 * error;
            if (e2 >= dy)
            {
                error += dy;
                x0 += sx;
            }
            if (e2 <= dx)
            {
                error += dx;
                y0 += sy;
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="text"/> with its top left corner at (<paramref name="x"/>, <paramref name="y"/>), each font
    /// pixel <paramref name="scale"/> × <paramref name="scale"/>; letters are drawn upper case, characters the font
    /// lacks as blanks. Returns the x after the text.
    /// </summary>
    public int Text(int x, int y, string text, int rgb, int scale = 2)
    {
        foreach (char c in text.ToUpperInvariant())
        {
            if (Font.TryGetValue(c, out int bits))
            {
                for (int row = 0; row < 5; row++)
                {
                    for (int col = 0; col < 3; col++)
                    {
                        if ((bits >> (14 - (row * 3) - col) & 1) != 0)
                            Fill(x + (col * scale), y + (row * scale), x + (col * scale) + scale - 1, y + (row * scale) + scale - 1, rgb);
                    }
                }
            }
            x += 4 * scale;
        }
        return x;
    }

    /// <summary>Width in pixels of <paramref name="text"/> drawn by <see cref="Text"/> at <paramref name="scale"/>.</summary>
    public static int TextWidth(string text, int scale = 2) => text.Length * 4 * scale;

    /// <summary>3×5 glyphs: 15 bits, rows top to bottom, each row's left pixel first.</summary>
    private static readonly Dictionary<char, int> Font = BuildFont(
        "0111101101101111 1010110010010111 2111001111100111 3111001111001111 4101101111001001 5111100111001111 " +
        "6111100111101111 7111001001001001 8111101111101111 9111101111001111 A010101111101101 B110101110101110 " +
        "C011100100100011 D110101101101110 E111100110100111 F111100110100100 G011100101101011 H101101111101101 " +
        "I111010010010111 J001001001101010 K101101110101101 L100100100100111 M101111111101101 N110101101101101 " +
        "O010101101101010 P110101110100100 Q010101101110011 R110101110101101 S011100010001110 T111010010010010 " +
        "U101101101101111 V101101101101010 W101101111111101 X101101010101101 Y101101010010010 Z111001010100111 " +
        ".000000000000010 /001001010100100 -000000111000000 :000010000010000 %101001010100101 (010100100100010 " +
        ")010001001001010 ,000000000010100 =000111000111000 +000010111010000");

    private static Dictionary<char, int> BuildFont(string table)
    {
        var font = new Dictionary<char, int>();
        foreach (string glyph in table.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            font[glyph[0]] = Convert.ToInt32(glyph[1..], 2);
        return font;
    }
}

/// <summary>
/// Writes a <see cref="Raster"/> as a PNG file: signature, IHDR (8-bit RGB, no interlace), one IDAT holding the
/// zlib-compressed scanlines (filter 0), IEND; each chunk with its CRC-32. Any PNG reader opens it.
/// </summary>
public static class Png
{
    /// <summary>The 8 bytes every PNG file starts with.</summary>
    public static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// <summary>The PNG encoding of <paramref name="picture"/>.</summary>
    public static byte[] Encode(Raster picture)
    {
        var file = new MemoryStream();
        file.Write(Signature);
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, picture.Width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], picture.Height);
        header[8] = 8; // bits per channel
        header[9] = 2; // colour type: RGB
        header[10] = header[11] = header[12] = 0; // deflate, adaptive filtering, no interlace
        Chunk(file, "IHDR", header);
        var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            int stride = picture.Width * 3;
            for (int y = 0; y < picture.Height; y++)
            {
                zlib.WriteByte(0); // filter: none
                zlib.Write(picture.Pixels.Slice(y * stride, stride));
            }
        }
        Chunk(file, "IDAT", compressed.GetBuffer().AsSpan(0, (int)compressed.Length));
        Chunk(file, "IEND", []);
        return file.ToArray();
    }

    private static void Chunk(Stream file, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        file.Write(word);
        byte[] typeBytes = Encoding.ASCII.GetBytes(type);
        file.Write(typeBytes);
        file.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(Crc32(0xffffffffu, typeBytes), data) ^ 0xffffffffu);
        file.Write(word);
    }

    /// <summary>The CRC-32 (ISO-HDLC, as PNG uses) register after <paramref name="data"/>, continuing from <paramref name="crc"/> (start with 0xffffffff, invert at the end).</summary>
    public static uint Crc32(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data)
            crc = CrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
        return crc;
    }

    private static readonly uint[] CrcTable = BuildCrcTable();

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
