using System.Text;
using Hybrid.Core.Interop;

namespace Hybrid.Cluster;

/// <summary>
/// Mends a node's trace file before the node, restarted, writes to it again. A node traces a decision right after the
/// metadata store accepted it, so one killed in between left that decision's lines out, and the trace checker would
/// refuse the next line. The decision log says who made each decision (<see cref="Node.Cluster.ClusterDecision.By"/>);
/// replaying it through the core gives the lines each of this node's decisions emitted, in order. The trace's decision
/// lines must be the first of those (anything else is left alone and reported); the rest, published but never
/// traced, are appended. A last line the kill cut off (no newline at the end of the file) is removed first: it was a
/// data-plane step (whose loss the checker does not see) or a decision line, which is then appended whole.
/// </summary>
public static class TraceRepair
{
    /// <summary>What <see cref="Repair"/> did.</summary>
    /// <param name="Appended">Decision lines appended (published before the restart, never traced).</param>
    /// <param name="TornBytes">Bytes of a cut-off last line removed.</param>
    /// <param name="Refused">Why the trace was left as it is (it is not this node's decisions' lines so far), or null.</param>
    public sealed record Result(int Appended, int TornBytes, string? Refused);

    /// <summary>The trace lines of the decisions <paramref name="node"/> made in <paramref name="log"/>, in log order.</summary>
    public static List<string> DecisionLines(DecisionLog log, string node) => [.. Steps(log).Where(s => s.By == node).SelectMany(s => s.Lines)];

    /// <summary>Every decision of <paramref name="log"/> replayed through the core: its decider and the trace lines it emitted.</summary>
    private static List<(string? By, List<string> Lines)> Steps(DecisionLog log)
    {
        var steps = new List<(string? By, List<string> Lines)>();
        ClusterCore core = DurableClusterMetadata.Create(log);
        foreach (Node.Cluster.ClusterDecision d in log.Decisions)
        {
            DecisionResult r = d.ApplyTo(core);
            if (!r.Accepted)
                throw new InvalidDataException($"stored decision {d} is refused on replay: {r.Reason}");
            steps.Add((d.By, [.. r.Effects.Where(e => e.Kind == EffectKind.EmitTrace).Select(e => e.TraceLine)]));
            core = r.Core;
        }
        return steps;
    }

    /// <summary>What <see cref="Merge"/> made: the cluster's trace (Init line first) or why it could not.</summary>
    /// <param name="Lines">The merged trace: the Init line, then every traced decision's lines in log order.</param>
    /// <param name="Decisions">How many of the log's decisions it covers (it ends at the first one its decider did not trace).</param>
    /// <param name="Error">Why the traces could not be merged (a decision line no node's decisions emit), or null.</param>
    public sealed record Merged(List<string> Lines, int Decisions, string? Error);

    /// <summary>
    /// Merges several nodes' trace files (name, lines) into the cluster's trace, in the order of the decision log: each
    /// file's decision lines must be the first lines of one node's decisions (that node is the file's), and every
    /// decision is taken from its decider's file. A node's trace holds only its own decisions, so this is how a cluster
    /// where several nodes decided (migrations both ways) is replayed. Data-plane lines are left out.
    /// </summary>
    public static Merged Merge(DecisionLog log, IReadOnlyList<(string Name, IReadOnlyList<string> Lines)> files)
    {
        List<(string? By, List<string> Lines)> steps = Steps(log);
        Dictionary<string, List<string>> expected = log.Nodes.ToDictionary(n => n, n => steps.Where(s => s.By == n).SelectMany(s => s.Lines).ToList());
        var traced = new Dictionary<string, int>(); // node -> decision lines its file holds
        foreach (var (name, lines) in files)
        {
            string[] mine = [.. lines.Where(l => l.Length > 0 && !IsDataPlane(l) && !IsInit(l))];
            if (mine.Length == 0)
                continue;
            string? node = log.Nodes.FirstOrDefault(n =>
                !traced.ContainsKey(n) && mine.Length <= expected[n].Count && mine.SequenceEqual(expected[n].Take(mine.Length)));
            if (node is null)
                return new Merged([], 0, $"{name}: its decision lines are not the first lines of any one node's decisions in the log");
            traced[node] = mine.Length;
        }
        var merged = new List<string> { DurableClusterMetadata.Create(log).InitTraceLine };
        int decisions = 0;
        var taken = new Dictionary<string, int>();
        foreach (var (by, lines) in steps)
        {
            int have = by is not null && traced.TryGetValue(by, out int n) ? n : 0;
            int at = by is not null && taken.TryGetValue(by, out int t) ? t : 0;
            if (by is null || at + lines.Count > have)
                break; // its decider did not trace it (that node's file was not given, or ends earlier)
            merged.AddRange(lines);
            taken[by] = at + lines.Count;
            decisions++;
        }
        return new Merged(merged, decisions, null);
    }

    /// <summary>True for the lines a node writes for its data-plane steps (not decisions): background and priority pulls.</summary>
    public static bool IsDataPlane(string line) => line.Contains("\"event\":\"BackgroundPull\"", StringComparison.Ordinal)
        || line.Contains("\"event\":\"PriorityPull\"", StringComparison.Ordinal);

    /// <summary>True for the <c>Init</c> line a node writes first in a new trace file (the cluster's constants).</summary>
    public static bool IsInit(string line) => line.Contains("\"event\":\"Init\"", StringComparison.Ordinal);

    /// <summary>
    /// Opens the trace at <paramref name="path"/> for appending (after <see cref="Repair"/>); a new or empty file first
    /// gets the <c>Init</c> line of <paramref name="log"/>'s cluster, so <c>hybrid trace check</c> can replay it as it is.
    /// </summary>
    public static StreamWriter Open(string path, DecisionLog log)
    {
        bool fresh = !File.Exists(path) || new FileInfo(path).Length == 0;
        var writer = new StreamWriter(path, append: true) { AutoFlush = true };
        if (fresh)
            writer.WriteLine(DurableClusterMetadata.Create(log).InitTraceLine);
        return writer;
    }

    /// <summary>Mends the trace at <paramref name="path"/> of <paramref name="node"/> (see the class); a missing file needs nothing.</summary>
    public static Result Repair(string path, DecisionLog log, string node)
    {
        if (!File.Exists(path))
            return new Result(0, 0, null);
        long whole = WholeLinesLength(path); // the file up to the end of its last whole line
        long torn = new FileInfo(path).Length - whole;
        List<string> expected = DecisionLines(log, node);
        int traced = 0;
        // The file is streamed (a long-traced node's file may be large), its cut-off last line left out.
        using (var read = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite), Encoding.UTF8))
        {
            long at = 0;
            while (at < whole && read.ReadLine() is { } line)
            {
                at += Encoding.UTF8.GetByteCount(line) + 1;
                if (line.Length == 0 || IsDataPlane(line) || IsInit(line))
                    continue;
                if (traced >= expected.Count || line != expected[traced])
                {
                    return new Result(0, 0, $"decision line {traced + 1} of the trace is not line {traced + 1} of what {node}'s decisions in the log " +
                        "emit (a trace of another cluster, or of decisions the log does not attribute): left as it is");
                }
                traced++;
            }
        }
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        file.SetLength(whole);
        file.Seek(0, SeekOrigin.End);
        foreach (string line in expected.Skip(traced))
            file.Write(Encoding.UTF8.GetBytes(line + "\n"));
        file.Flush(flushToDisk: true);
        return new Result(expected.Count - traced, (int)torn, null);
    }

    /// <summary>The length of <paramref name="path"/> up to and including its last newline (0 when it has none).</summary>
    private static long WholeLinesLength(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var block = new byte[4096];
        for (long end = file.Length; end > 0;)
        {
            int n = (int)Math.Min(block.Length, end);
            file.Position = end - n;
            file.ReadExactly(block, 0, n);
            int newline = Array.LastIndexOf(block, (byte)'\n', n - 1, n);
            if (newline >= 0)
                return end - n + newline + 1;
            end -= n;
        }
        return 0;
    }
}
