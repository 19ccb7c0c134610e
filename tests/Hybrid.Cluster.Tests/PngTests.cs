using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Hybrid.Cli.Cluster;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// The benchmark's PNG writer, decoded back by hand: signature, chunk order, every chunk's CRC-32, the IHDR fields, and
/// the IDAT inflated into exactly the raster's pixels (filter byte 0 before each row).
/// </summary>
public sealed class PngTests
{
    private sealed record Chunk(string Type, byte[] Data);

    private static List<Chunk> Chunks(byte[] file)
    {
        Assert.True(file.AsSpan(0, 8).SequenceEqual(Png.Signature));
        var chunks = new List<Chunk>();
        int at = 8;
        while (at < file.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(at));
            string type = Encoding.ASCII.GetString(file, at + 4, 4);
            byte[] data = file.AsSpan(at + 8, length).ToArray();
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(at + 8 + length));
            Assert.Equal(Png.Crc32(0xffffffffu, file.AsSpan(at + 4, 4 + length)) ^ 0xffffffffu, crc);
            chunks.Add(new Chunk(type, data));
            at += 12 + length;
        }
        Assert.Equal(file.Length, at);
        return chunks;
    }

    [Fact]
    public void The_crc_is_the_one_png_uses()
    {
        // The standard check value of CRC-32/ISO-HDLC.
        Assert.Equal(0xcbf43926u, Png.Crc32(0xffffffffu, "123456789"u8) ^ 0xffffffffu);
    }

    [Fact]
    public void An_encoded_raster_decodes_back_to_its_pixels()
    {
        var picture = new Raster(37, 23);
        picture.Fill(2, 3, 10, 8, 0x123456);
        picture.Line(0, 22, 36, 0, 0xff0000);
        picture.Text(12, 10, "P99.9", 0x00ff00, scale: 1);

        List<Chunk> chunks = Chunks(Png.Encode(picture));

        Assert.Equal(["IHDR", "IDAT", "IEND"], chunks.Select(c => c.Type));
        byte[] header = chunks[0].Data;
        Assert.Equal(37, BinaryPrimitives.ReadInt32BigEndian(header));
        Assert.Equal(23, BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4)));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, header[8..]);
        Assert.Empty(chunks[2].Data);
        using var inflate = new ZLibStream(new MemoryStream(chunks[1].Data), CompressionMode.Decompress);
        var raw = new MemoryStream();
        inflate.CopyTo(raw);
        byte[] rows = raw.ToArray();
        Assert.Equal(23 * (1 + (37 * 3)), rows.Length);
        for (int y = 0; y < 23; y++)
        {
            Assert.Equal(0, rows[y * (1 + (37 * 3))]);
            for (int x = 0; x < 37; x++)
            {
                int i = (y * (1 + (37 * 3))) + 1 + (x * 3);
                Assert.Equal(picture[x, y], (rows[i] << 16) | (rows[i + 1] << 8) | rows[i + 2]);
            }
        }
    }

    [Fact]
    public void Drawing_paints_the_pixels_it_names_and_nothing_outside_the_picture()
    {
        var picture = new Raster(20, 10);
        picture.Line(0, 0, 19, 9, 0x010203);
        picture.Fill(-5, -5, 1, 1, 0xabcdef); // clipped, no exception
        var text = new Raster(10, 10);
        text.Text(4, 2, "1", 0x00ff00, scale: 1);

        Assert.Equal(0x010203, picture[19, 9]);
        Assert.Equal(0xabcdef, picture[0, 0]);
        Assert.Equal(0xabcdef, picture[1, 1]);
        Assert.Equal(0xffffff, picture[19, 0]); // far from everything drawn
        // The glyph "1" is 010/110/010/010/111: its top row lights only the middle column.
        Assert.Equal(0xffffff, text[4, 2]);
        Assert.Equal(0x00ff00, text[5, 2]);
        Assert.Equal(0x00ff00, text[4, 3]);
        Assert.Equal(0xffffff, text[6, 3]);
        Assert.Equal(0x00ff00, text[4, 6]);
        Assert.Equal(0x00ff00, text[6, 6]);
    }
}
