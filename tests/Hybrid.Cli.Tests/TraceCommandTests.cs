using Hybrid.Cli.Commands;
using Hybrid.Node.Cluster;

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
    public void A_nodes_own_trace_file_replays_with_decisions_only_and_a_rejection_names_the_files_line()
    {
        var log = new Hybrid.Cluster.DecisionLog
        {
            Nodes = ["n1", "n2"],
            Cores = ["c1", "c2"],
            Ranges = System.Collections.Immutable.ImmutableSortedDictionary<string, Hybrid.Cluster.SlotRange>.Empty.Add("r1", new Hybrid.Cluster.SlotRange(0, 16383)),
            InitialOwner = System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("r1", "n1"),
            Decisions =
            [
                .. new[]
                {
                    ClusterDecision.BeginMigration("r1", "n2"), ClusterDecision.CoreRefreshed("n1", "c1", 2), ClusterDecision.CoreRefreshed("n1", "c2", 2),
                    ClusterDecision.Prepare("r1", 0), ClusterDecision.TransferOwnership("r1"), ClusterDecision.CoreRefreshed("n2", "c1", 2),
                    ClusterDecision.CoreRefreshed("n2", "c2", 2), ClusterDecision.FinishPulls("r1"),
                }.Select(d => d with { By = "n2" }),
            ],
        };
        string file = Path.GetTempFileName();
        File.Delete(file); // a node starts its trace file: it writes the cluster's Init line first
        var (stdout, output) = (Console.Out, new StringWriter());
        Console.SetOut(output);
        try
        {
            List<string> decisions = Hybrid.Cluster.TraceRepair.DecisionLines(log, "n2");
            using (StreamWriter node = Hybrid.Cluster.TraceRepair.Open(file, log))
            {
                foreach (string line in decisions)
                {
                    node.WriteLine(line);
                    if (line.Contains("\"event\":\"TransferOwnership\"", StringComparison.Ordinal))
                        node.WriteLine("{\"event\":\"PriorityPull\",\"r\":\"r1\"}");
                }
            }
            string[] lines = File.ReadAllLines(file);
            Assert.StartsWith("{\"constants\":", lines[0], StringComparison.Ordinal);

            Assert.Equal(0, HybridCli.Run(["trace", "check", "--decisions-only", file], NoServer));
            Assert.Contains("Accepted (9 lines;", output.ToString(), StringComparison.Ordinal);
            Assert.Contains("1 data-plane lines left out", output.ToString(), StringComparison.Ordinal);

            // Without TransferOwnership the checker refuses the next decision (n2's first CoreRefresh), named by its line in
            // the file (the data-plane line before it counts), not by its place among the checked lines.
            int dropped = Array.FindIndex(lines, l => l.Contains("\"event\":\"TransferOwnership\"", StringComparison.Ordinal));
            File.WriteAllLines(file, lines.Where((_, i) => i != dropped));
            output.GetStringBuilder().Clear();
            Assert.Equal(1, HybridCli.Run(["trace", "check", "--decisions-only", file], NoServer));
            Assert.StartsWith($"{file}:{dropped + 2}: ", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Console.SetOut(stdout);
            File.Delete(file);
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
