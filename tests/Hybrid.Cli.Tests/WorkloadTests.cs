using Hybrid.Cli.Bench;

namespace Hybrid.Cli.Tests;

public class WorkloadTests
{
    [Theory]
    [InlineData("a", "Read", 0.5, "Update", 0.5)]
    [InlineData("b", "Read", 0.95, "Update", 0.05)]
    [InlineData("c", "Read", 1.0, "Update", 0.0)]
    [InlineData("d", "Read", 0.95, "Insert", 0.05)]
    [InlineData("e", "Scan", 0.95, "Insert", 0.05)]
    [InlineData("f", "Read", 0.5, "ReadModifyWrite", 0.5)]
    [InlineData("noop", "Noop", 1.0, "Read", 0.0)]
    public void MixesMatchYcsb(string name, string firstKind, double firstShare, string secondKind, double secondShare)
    {
        var first = Enum.Parse<OpKind>(firstKind);
        var second = Enum.Parse<OpKind>(secondKind);
        const int draws = 200_000;
        var workload = Workload.All[name];
        var random = new FastRandom(5);
        var counts = new int[Enum.GetValues<OpKind>().Length];
        for (int i = 0; i < draws; i++)
            counts[(int)workload.Choose(random.NextDouble())]++;
        Assert.InRange((double)counts[(int)first] / draws, firstShare - 0.01, firstShare + 0.01);
        Assert.InRange((double)counts[(int)second] / draws, secondShare - 0.01, secondShare + 0.01);
        Assert.Equal(draws, counts[(int)first] + counts[(int)second]);
    }

    [Fact]
    public void OnlyDReadsTheLatestKeys() =>
        Assert.Equal(["D"], Workload.All.Values.Where(w => w.Latest).Select(w => w.Name));

    [Fact]
    public void KeysAreFixedWidth()
    {
        var key = new byte[KeyFormat.Length];
        KeyFormat.Write(42, key);
        Assert.Equal("user000000000042", System.Text.Encoding.ASCII.GetString(key));
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyFormat.Write(1_000_000_000_000, key));
    }
}
