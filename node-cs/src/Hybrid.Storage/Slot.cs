namespace Hybrid.Storage;

/// <summary>
/// The Redis Cluster slot rule, shared by every part of the node: slot = CRC16-XMODEM(key) mod 16384, where only the
/// part inside the first <c>{...}</c> is hashed if that part is non-empty (so related keys share a slot).
/// </summary>
public static class Slot
{
    /// <summary>Number of slots.</summary>
    public const int Count = 16384;

    /// <summary>The slot of a key (0..16383).</summary>
    public static int Of(ReadOnlySpan<byte> key)
    {
        int open = key.IndexOf((byte)'{');
        if (open >= 0)
        {
            int close = key[(open + 1)..].IndexOf((byte)'}');
            if (close > 0)
                key = key.Slice(open + 1, close);
        }
        return Crc16(key) & (Count - 1);
    }

    /// <summary>CRC16-XMODEM (poly 0x1021, init 0, no reflection), as Redis Cluster uses. "123456789" → 0x31C3.</summary>
    public static ushort Crc16(ReadOnlySpan<byte> data)
    {
        ReadOnlySpan<ushort> table = s_table;
        int crc = 0;
        foreach (byte b in data)
            crc = (crc << 8) ^ table[((crc >> 8) ^ b) & 0xFF];
        return (ushort)crc;
    }

    private static readonly ushort[] s_table = BuildTable();

    private static ushort[] BuildTable()
    {
        var table = new ushort[256];
        for (int i = 0; i < 256; i++)
        {
            int crc = i << 8;
            for (int bit = 0; bit < 8; bit++)
                crc = (crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1;
            table[i] = (ushort)crc;
        }
        return table;
    }
}
