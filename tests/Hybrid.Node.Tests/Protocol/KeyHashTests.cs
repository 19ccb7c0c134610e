using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Protocol;

public class KeyHashTests
{
    [Fact]
    public void HashBatch_MixedLengths_EqualsScalarReference()
    {
        var random = new Random(3);
        var buffer = new byte[64 * 1024];
        random.NextBytes(buffer);
        const int count = 203; // not a multiple of 8: the scalar tail runs too
        var offsets = new int[count];
        var lengths = new int[count];
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            lengths[i] = i % 5 == 0 ? random.Next(0, 200) : random.Next(0, 24);
            offsets[i] = at;
            at += lengths[i] + random.Next(0, 3);
        }
        var vector = new ulong[count];
        var scalar = new ulong[count];
        KeyHash.HashBatch(buffer, offsets, lengths, vector);
        KeyHash.HashBatchScalar(buffer, offsets, lengths, scalar);
        Assert.Equal(scalar, vector);
        for (int i = 0; i < count; i++)
            Assert.Equal(KeyHash.Hash64(buffer.AsSpan(offsets[i], lengths[i])), vector[i]);
    }

    [Fact]
    public void HashBatch_KeysEndingAtBufferEnd_EqualsScalarReference()
    {
        // The last word of each key would read past the buffer: the group must fall back to scalar.
        var buffer = new byte[41];
        new Random(5).NextBytes(buffer);
        var offsets = new[] { 0, 5, 10, 15, 20, 25, 30, 35 };
        var lengths = new[] { 5, 5, 5, 5, 5, 5, 5, 6 };
        var vector = new ulong[8];
        var scalar = new ulong[8];
        KeyHash.HashBatch(buffer, offsets, lengths, vector);
        KeyHash.HashBatchScalar(buffer, offsets, lengths, scalar);
        Assert.Equal(scalar, vector);
    }

    [Fact]
    public void Hash64_DifferentKeys_DifferentHashes()
    {
        var seen = new HashSet<ulong>();
        for (int i = 0; i < 100_000; i++)
            Assert.True(seen.Add(KeyHash.Hash64(BitConverter.GetBytes(i))));
        Assert.NotEqual(KeyHash.Hash64([1, 0]), KeyHash.Hash64([1]));
    }
}
