using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Protocol;

public class Crc32CTests
{
    [Fact]
    public void ComputeScalar_StandardCheckString_MatchesPublishedValue()
    {
        // RFC 3720 / iSCSI check value of CRC32C("123456789").
        Assert.Equal(0xE3069283u, Crc32C.ComputeScalar(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
    }

    [Fact]
    public void Compute_AllLengthsAndOffsets_EqualsScalarReference()
    {
        var random = new Random(42);
        var data = new byte[4096];
        random.NextBytes(data);
        // Lengths around the three-way block boundaries (3 x 256) and every small tail.
        foreach (int length in Enumerable.Range(0, 80).Concat([767, 768, 769, 1535, 1536, 1537, 2304, 2311, 4000]))
        {
            for (int offset = 0; offset < 8; offset++)
            {
                var span = data.AsSpan(offset, length);
                uint expected = Crc32C.ComputeScalar(span);
                Assert.Equal(expected, Crc32C.Compute(span));
                Assert.Equal(expected, Crc32C.ComputeSse42SingleStream(span));
            }
        }
    }

    [Fact]
    public void Compute_SingleBitFlip_ChangesCrc()
    {
        var data = new byte[1000];
        new Random(7).NextBytes(data);
        uint before = Crc32C.Compute(data);
        data[500] ^= 0x10;
        Assert.NotEqual(before, Crc32C.Compute(data));
    }
}
