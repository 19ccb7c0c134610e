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
            // Malformed is a verdict like the others (exit 1), naming the line: a line cut off by a crash printed the JSON
            // parser's message alone ("LineNumber: 0") with exit 2, whatever line of thousands it was.
            var (stdout, output) = (Console.Out, new StringWriter());
            Console.SetOut(output);
            try
            {
                File.WriteAllText(tampered, "{\"event\": 1.5}\n");
                Assert.Equal(1, HybridCli.Run(["trace", "check", tampered], NoServer));
                Assert.Contains(": Malformed: line 1: not an integer: 1.5", output.ToString(), StringComparison.Ordinal);
                File.WriteAllLines(tampered, [.. lines.Take(3), lines[3][..(lines[3].Length / 2)]]);
                Assert.Equal(1, HybridCli.Run(["trace", "check", tampered], NoServer));
                Assert.Contains(": Malformed: line 4: not a JSON value", output.ToString(), StringComparison.Ordinal);
            }
            finally
            {
                Console.SetOut(stdout);
            }
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
                    ClusterDecision.BeginMigration("r1", "n2"), ClusterDecision.CoreRefresh("n1", "c1", 2), ClusterDecision.CoreRefresh("n1", "c2", 2),
                    ClusterDecision.Prepare("r1", 0), ClusterDecision.TransferOwnership("r1"), ClusterDecision.CoreRefresh("n2", "c1", 2),
                    ClusterDecision.CoreRefresh("n2", "c2", 2), ClusterDecision.FinishPulls("r1"),
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
    public async Task Traces_of_a_cluster_where_both_nodes_decided_are_merged_by_its_decision_log_and_checked_as_one()
    {
        string dir = Directory.CreateTempSubdirectory("hybrid-trace-cluster").FullName;
        var (stdout, output) = (Console.Out, new StringWriter());
        Console.SetOut(output);
        try
        {
            await using (var store = new Hybrid.Cluster.FileMetadataStore(Path.Combine(dir, "metadata")))
            {
                var metadata = new Hybrid.Cluster.DurableClusterMetadata(store);
                Assert.True(await metadata.InitializeAsync(["n1", "n2"], ["c1", "c2"], Hybrid.Cluster.DurableClusterMetadata.EvenRanges(1),
                    new Dictionary<string, string> { ["r1"] = "n1" }));
                // r1 to n2 (n2 decides), then back to n1 (n1 decides).
                foreach (var (to, from, view) in new[] { ("n2", "n1", 2), ("n1", "n2", 3) })
                {
                    foreach (ClusterDecision d in new[]
                    {
                        ClusterDecision.BeginMigration("r1", to), ClusterDecision.CoreRefresh(from, "c1", view), ClusterDecision.CoreRefresh(from, "c2", view),
                        ClusterDecision.Prepare("r1", 0), ClusterDecision.TransferOwnership("r1"), ClusterDecision.CoreRefresh(to, "c1", view),
                        ClusterDecision.CoreRefresh(to, "c2", view), ClusterDecision.FinishPulls("r1"), ClusterDecision.Checkpoint(to),
                        ClusterDecision.DropSource("r1"), ClusterDecision.RemoveLineage("r1"),
                    })
                    {
                        var current = metadata.Current;
                        var result = d.ApplyTo(current);
                        Assert.True(result.Accepted, result.Reason);
                        Assert.True(metadata.TryReplace(current, [d with { By = to }], result.Core));
                    }
                }
                foreach (string node in new[] { "n1", "n2" })
                {
                    using StreamWriter trace = Hybrid.Cluster.TraceRepair.Open(Path.Combine(dir, node + ".trace.ndjson"), metadata.Log);
                    foreach (string line in Hybrid.Cluster.TraceRepair.DecisionLines(metadata.Log, node))
                        trace.WriteLine(line);
                }
            }
            string n1 = Path.Combine(dir, "n1.trace.ndjson"), n2 = Path.Combine(dir, "n2.trace.ndjson");
            Assert.Equal(1, HybridCli.Run(["trace", "check", "--decisions-only", n1], NoServer)); // n1 decided second: alone, refused

            output.GetStringBuilder().Clear();
            Assert.Equal(0, HybridCli.Run(["trace", "check", "--cluster", dir, n1, n2], NoServer));
            Assert.Contains("(2 node trace(s), 22 of the log's 22 decisions): Accepted (23 lines;", output.ToString(), StringComparison.Ordinal);

            // Checked is not complete: without n1's trace the merge stops at n1's first decision, and what it covered
            // conforms; that exited 0 ("11 of the log's 22 decisions: Accepted"), which a script takes for a pass.
            output.GetStringBuilder().Clear();
            Assert.Equal(1, HybridCli.Run(["trace", "check", "--cluster", dir, n2], NoServer));
            Assert.Contains("Incomplete: the traces stop at decision 12 of 22 (made by n1, whose trace was not given or ends before it)", output.ToString(), StringComparison.Ordinal);

            File.WriteAllLines(n1, File.ReadAllLines(n1).Reverse());
            output.GetStringBuilder().Clear();
            Assert.Equal(1, HybridCli.Run(["trace", "check", "--cluster", dir, n1, n2], NoServer));
            Assert.Contains("n1.trace.ndjson: its decision lines are not the first lines of any one node's decisions", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Console.SetOut(stdout);
            Directory.Delete(dir, recursive: true);
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
