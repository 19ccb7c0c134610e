using System.Collections.Immutable;
using Hybrid.Core.Interop;
using Hybrid.Node.Cluster;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// <see cref="TraceRepair"/>: a node killed between publishing a decision and tracing it gets the decision's lines into
/// its trace when it restarts, so its trace replays through the checker again.
/// </summary>
public sealed class TraceRepairTests : IDisposable
{
    private const string BackgroundPull = "{\"event\":\"BackgroundPull\",\"r\":\"r1\",\"p\":\"p0\"}";
    private readonly TempDirectory _dir = new();

    private string Path => System.IO.Path.Combine(_dir.Path, "n2.trace.ndjson");

    /// <summary>A whole migration of r1 from n1 to n2, decided by n2's coordinator (the source's cut reported by n2 too).</summary>
    private static DecisionLog Log(string by = "n2") => new()
    {
        Nodes = ["n1", "n2"],
        Cores = ["c1", "c2"],
        Ranges = ImmutableSortedDictionary<string, SlotRange>.Empty.Add("r1", new SlotRange(0, 16383)),
        InitialOwner = ImmutableSortedDictionary<string, string>.Empty.Add("r1", "n1"),
        Decisions =
        [
            .. new[]
            {
                ClusterDecision.BeginMigration("r1", "n2"), ClusterDecision.CoreRefresh("n1", "c1", 2), ClusterDecision.CoreRefresh("n1", "c2", 2),
                ClusterDecision.Prepare("r1", 0), ClusterDecision.TransferOwnership("r1"), ClusterDecision.CoreRefresh("n2", "c1", 2),
                ClusterDecision.CoreRefresh("n2", "c2", 2), ClusterDecision.FinishPulls("r1"), ClusterDecision.Checkpoint("n2"),
                ClusterDecision.DropSource("r1"), ClusterDecision.RemoveLineage("r1"),
            }.Select(d => d with { By = by }),
        ],
    };

    private static TraceReport Check(IEnumerable<string> fileLines)
    {
        ClusterCore initial = ClusterCore.Create(["n1", "n2"], ["c1", "c2"], new Dictionary<string, string> { ["r1"] = "n1" });
        return MigrationTrace.Check([initial.InitTraceLine, .. fileLines.Where(l => l.Length > 0 && !TraceRepair.IsDataPlane(l))]);
    }

    [Fact]
    public void The_lines_of_decisions_published_but_not_traced_are_appended_and_the_trace_replays_again()
    {
        List<string> all = TraceRepair.DecisionLines(Log(), "n2");
        Assert.Equal(11, all.Count);
        // Killed right after TransferOwnership was published (the fifth decision): its line and the later ones are not in the trace.
        int traced = all.FindIndex(l => l.Contains("\"event\":\"TransferOwnership\""));
        File.WriteAllLines(Path, [.. all.Take(traced), BackgroundPull]);
        // Without the repair the checker refuses the first line after the gap (what the restarted node would trace next).
        TraceReport broken = Check([.. File.ReadAllLines(Path), .. all.Skip(traced + 1)]);
        Assert.False(broken.Accepted);
        Assert.Equal(traced + 2, broken.Line); // the Init line is line 1

        TraceRepair.Result repaired = TraceRepair.Repair(Path, Log(), "n2");

        Assert.Equal(new TraceRepair.Result(all.Count - traced, 0, null), repaired);
        string[] lines = File.ReadAllLines(Path);
        Assert.Equal([.. all.Take(traced), BackgroundPull, .. all.Skip(traced)], lines);
        TraceReport report = Check(lines);
        Assert.True(report.Accepted, $"{report.Verdict} at line {report.Line}: {report.Message}");
        // A second restart finds nothing to add.
        Assert.Equal(new TraceRepair.Result(0, 0, null), TraceRepair.Repair(Path, Log(), "n2"));
        Assert.Equal(lines, File.ReadAllLines(Path));
    }

    [Fact]
    public void A_last_line_cut_off_by_the_kill_is_removed_and_the_decision_line_written_whole()
    {
        List<string> all = TraceRepair.DecisionLines(Log(), "n2");
        string cut = all[3][..10];
        File.WriteAllText(Path, string.Join('\n', all.Take(3)) + "\n" + cut);

        TraceRepair.Result repaired = TraceRepair.Repair(Path, Log(), "n2");

        Assert.Equal(new TraceRepair.Result(all.Count - 3, cut.Length, null), repaired);
        Assert.Equal(all, File.ReadAllLines(Path));
    }

    [Theory]
    [InlineData(1, 10_000)] // a cut-off line longer than the 4 KiB blocks the end of the file is searched in
    [InlineData(0, 3)] // a file of one cut-off line, no newline at all
    public void A_long_cut_off_last_line_or_a_file_without_a_newline_is_removed_too(int whole, int cut)
    {
        List<string> all = TraceRepair.DecisionLines(Log(), "n2");
        File.WriteAllText(Path, string.Concat(all.Take(whole).Select(l => l + "\n")) + new string('x', cut));

        Assert.Equal(new TraceRepair.Result(all.Count - whole, cut, null), TraceRepair.Repair(Path, Log(), "n2"));
        Assert.Equal(all, File.ReadAllLines(Path));
    }

    [Fact]
    public void Decisions_of_another_node_are_not_put_into_this_nodes_trace()
    {
        File.WriteAllText(Path, BackgroundPull + "\n");
        Assert.Empty(TraceRepair.DecisionLines(Log(by: "n1"), "n2"));
        Assert.Empty(TraceRepair.DecisionLines(Log(by: null!), "n2")); // a log written before decisions were attributed

        Assert.Equal(new TraceRepair.Result(0, 0, null), TraceRepair.Repair(Path, Log(by: "n1"), "n2"));
        Assert.Equal([BackgroundPull], File.ReadAllLines(Path));
    }

    [Fact]
    public void A_trace_that_is_not_this_nodes_decisions_so_far_is_left_as_it_is_and_the_reason_given()
    {
        List<string> all = TraceRepair.DecisionLines(Log(), "n2");
        string[] foreign = [all[0], all[2], all[1]];
        File.WriteAllLines(Path, foreign);

        TraceRepair.Result result = TraceRepair.Repair(Path, Log(), "n2");

        Assert.Equal(0, result.Appended);
        Assert.Contains("decision line 2 of the trace", result.Refused, StringComparison.Ordinal);
        Assert.Equal(foreign, File.ReadAllLines(Path));
    }

    /// <summary>r1 moves to n2 (decided by n2), then back to n1 (decided by n1).</summary>
    private static DecisionLog ThereAndBack()
    {
        static IEnumerable<ClusterDecision> Move(string to, string from, int view) =>
        [
            ClusterDecision.BeginMigration("r1", to), ClusterDecision.CoreRefresh(from, "c1", view), ClusterDecision.CoreRefresh(from, "c2", view),
            ClusterDecision.Prepare("r1", 0), ClusterDecision.TransferOwnership("r1"), ClusterDecision.CoreRefresh(to, "c1", view),
            ClusterDecision.CoreRefresh(to, "c2", view), ClusterDecision.FinishPulls("r1"), ClusterDecision.Checkpoint(to),
            ClusterDecision.DropSource("r1"), ClusterDecision.RemoveLineage("r1"),
        ];
        return Log() with { Decisions = [.. Move("n2", "n1", 2).Select(d => d with { By = "n2" }), .. Move("n1", "n2", 3).Select(d => d with { By = "n1" })] };
    }

    [Fact]
    public void Traces_of_two_deciders_merge_in_log_order_and_replay_where_neither_does_alone()
    {
        DecisionLog log = ThereAndBack();
        string[] n1 = [.. TraceRepair.DecisionLines(log, "n1")], n2 = [BackgroundPull, .. TraceRepair.DecisionLines(log, "n2")];
        Assert.False(Check(n1).Accepted);
        Assert.True(Check(n2).Accepted); // n2 decided first: its trace replays alone, but covers only the move there

        TraceRepair.Merged merged = TraceRepair.Merge(log, [("n1.trace", n1), ("n2.trace", n2)]);

        Assert.Null(merged.Error);
        Assert.Equal(22, merged.Decisions);
        TraceReport report = MigrationTrace.Check(merged.Lines);
        Assert.True(report.Accepted, $"{report.Verdict} at line {report.Line}: {report.Message}");
        Assert.Equal(1 + n1.Length + n2.Length - 1, report.LinesChecked); // the Init line, every decision line, no pull line

        // Only n2's trace: the merge stops at n1's first decision.
        Assert.Equal(11, TraceRepair.Merge(log, [("n2.trace", n2)]).Decisions);
        // A trace that is not any node's decisions is named.
        TraceRepair.Merged foreign = TraceRepair.Merge(log, [("odd.trace", [n1[1], n1[0]])]);
        Assert.StartsWith("odd.trace: ", foreign.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void No_trace_file_yet_needs_nothing_and_creates_nothing()
    {
        Assert.Equal(new TraceRepair.Result(0, 0, null), TraceRepair.Repair(Path, Log(), "n2"));
        Assert.False(File.Exists(Path));
    }

    public void Dispose() => _dir.Dispose();
}
