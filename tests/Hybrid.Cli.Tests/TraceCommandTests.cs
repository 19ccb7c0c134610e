using Hybrid.Cli.Commands;

namespace Hybrid.Cli.Tests;

public class TraceCommandTests
{
    private static readonly Func<string[], int> NoServer = _ => throw new InvalidOperationException("server must not run");

    private static string Golden(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Hybrid.sln")))
            dir = dir.Parent;
        Assert.NotNull(dir);
        return Path.Combine(dir.FullName, "traces", "golden", name);
    }

    [Fact]
    public void GoldenTraceIsAcceptedAndATamperedOneRejected()
    {
        string golden = Golden("migration_rejected-stale-session.ndjson");
        Assert.Equal(0, HybridCli.Run(["trace", "check", golden], NoServer));
        var lines = File.ReadAllLines(golden);
        string tampered = Path.GetTempFileName();
        try
        {
            // Drop the TransferOwnership step: what follows it is no longer an enabled action.
            File.WriteAllLines(tampered, lines.Where(l => !l.Contains("\"TransferOwnership\"", StringComparison.Ordinal)));
            Assert.True(lines.Length > File.ReadAllLines(tampered).Length);
            Assert.Equal(1, HybridCli.Run(["trace", "check", tampered], NoServer));
            File.WriteAllText(tampered, "{\"event\": 1.5}\n");
            Assert.Equal(2, HybridCli.Run(["trace", "check", tampered], NoServer));
        }
        finally
        {
            File.Delete(tampered);
        }
    }

    [Fact]
    public void ParseKeepsShapes()
    {
        var values = TraceCommand.Parse(["{\"event\":\"Init\",\"n\":[1,true,\"x\"]}", "", "  "]);
        Assert.Single(values);
        Assert.Contains("Init", values[0].ToString(), StringComparison.Ordinal);
    }
}
