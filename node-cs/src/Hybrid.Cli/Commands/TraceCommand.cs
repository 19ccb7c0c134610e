using System.CommandLine;
using System.Text.Json;
using Hybrid.Core.Interop;
using Value = Hybrid.Core.JsonValue.Value;

namespace Hybrid.Cli.Commands;

/// <summary>
/// <c>hybrid trace check FILE...</c>: parses each ndjson line with System.Text.Json and hands the values to the F#
/// checker (<see cref="TraceCheck.Check"/>); this command only parses and prints, it decides nothing itself.
/// Exit code 0 = every trace accepted, 1 = a trace rejected, 2 = a file unreadable or not JSON.
/// </summary>
internal static class TraceCommand
{
    /// <summary>The <c>trace</c> command with its <c>check</c> subcommand.</summary>
    public static Command Create()
    {
        var files = new Argument<FileInfo[]>("files") { Description = "ndjson trace files", Arity = ArgumentArity.OneOrMore };
        var decisionsOnly = new Option<bool>("--decisions-only")
        {
            Description = "Leave out a node's data-plane lines (BackgroundPull per chunk, PriorityPull per batch): a node's pulls "
                + "are finer than the model's, so a node's own trace file (hybrid cluster node --trace) is checked with this",
        };
        var cluster = new Option<string?>("--cluster")
        {
            Description = "The cluster's directory (hybrid cluster start --dir): the node trace files given are merged in the order "
                + "of its decision log (each node's trace holds only its own decisions) and checked as one (implies --decisions-only)",
        };
        var metadata = new Option<string?>("--metadata") { Description = "With --cluster: its metadata store, file:DIR or etcd:http://HOST:PORT (default file:<cluster>/metadata)" };
        var check = new Command("check", "Replay traces through the F# model; name the first step that is not an enabled action or breaks an invariant");
        check.Arguments.Add(files);
        check.Options.Add(decisionsOnly);
        check.Options.Add(cluster);
        check.Options.Add(metadata);
        check.SetAction(async (result, cancellationToken) =>
        {
            if (result.GetValue(cluster) is { } dir)
                return await CheckClusterAsync(dir, result.GetValue(metadata), result.GetValue(files)!, cancellationToken);
            int worst = 0;
            foreach (var file in result.GetValue(files)!)
                worst = Math.Max(worst, CheckFile(file.FullName, result.GetValue(decisionsOnly)));
            return worst;
        });
        var trace = new Command("trace", "Protocol traces");
        trace.Subcommands.Add(check);
        return trace;
    }

    /// <summary>Merges the node traces <paramref name="files"/> by the cluster's decision log (<see cref="Hybrid.Cluster.TraceRepair.Merge"/>) and checks the result.</summary>
    private static async Task<int> CheckClusterAsync(string dir, string? metadataSpec, FileInfo[] files, CancellationToken cancellationToken)
    {
        Hybrid.Cluster.DecisionLog log;
        List<(string Name, IReadOnlyList<string> Lines)> traces;
        try
        {
            await using Hybrid.Cluster.IMetadataStore store = Hybrid.Cluster.MetadataStores.Open(Cluster.LocalCluster.ExistingMetadataSpec(dir, metadataSpec));
            log = new Hybrid.Cluster.DurableClusterMetadata(store).Log;
            traces = [.. files.Select(f => (f.FullName, (IReadOnlyList<string>)File.ReadAllLines(f.FullName)))];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or Hybrid.Cluster.MetadataUnavailableException)
        {
            Console.Error.WriteLine($"{dir}: {e.Message}");
            return 2;
        }
        cancellationToken.ThrowIfCancellationRequested();
        Hybrid.Cluster.TraceRepair.Merged merged = Hybrid.Cluster.TraceRepair.Merge(log, traces);
        if (merged.Error is not null)
        {
            Console.WriteLine(merged.Error);
            return 1;
        }
        string name = $"{dir} ({files.Length} node trace(s), {merged.Decisions} of the log's {log.Decisions.Count} decisions)";
        List<Value> lines;
        try
        {
            lines = Parse(merged.Lines);
        }
        catch (FormatException e)
        {
            Console.WriteLine($"{name}: Malformed: {e.Message}");
            return 1;
        }
        var report = TraceCheck.Check(lines);
        int verdict = Print(name, report, report.Line, 0);
        if (verdict == 0 && merged.Decisions < log.Decisions.Count)
        {
            // What was checked conforms, but not all of it was: a script reading the exit code must not take it for a pass.
            string by = log.Decisions[merged.Decisions].By is { } decider ? $"made by {decider}, whose trace was not given or ends before it" : "made by no node";
            Console.WriteLine($"{name}: Incomplete: the traces stop at decision {merged.Decisions + 1} of {log.Decisions.Count} ({by})");
            return 1;
        }
        return verdict;
    }

    private static int CheckFile(string path, bool decisionsOnly)
    {
        List<Value> lines;
        // The file's line number of each value the checker gets (blank lines, and data-plane ones if asked, left out).
        var numbers = new List<int>();
        int skipped = 0;
        try
        {
            var kept = new List<(string Text, int Number)>();
            int number = 0;
            foreach (string line in File.ReadLines(path))
            {
                number++;
                if (string.IsNullOrWhiteSpace(line))
                    continue;
                if (decisionsOnly && Hybrid.Cluster.TraceRepair.IsDataPlane(line))
                {
                    skipped++;
                    continue;
                }
                kept.Add((line, number));
                numbers.Add(number);
            }
            lines = Parse(kept);
        }
        catch (FormatException e)
        {
            Console.WriteLine($"{path}: Malformed: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"{path}: {e.Message}");
            return 2;
        }
        var report = TraceCheck.Check(lines);
        return Print(path, report, report.Line >= 1 && report.Line <= numbers.Count ? numbers[report.Line - 1] : report.Line, skipped);
    }

    /// <summary>Prints <paramref name="report"/> of the trace <paramref name="name"/>; a rejection names line <paramref name="at"/>.</summary>
    private static int Print(string name, TraceReport report, int at, int skipped)
    {
        if (report.Accepted)
        {
            var coverage = string.Join(", ", report.Coverage.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}"));
            string left = skipped > 0 ? $"; {skipped} data-plane lines left out" : "";
            Console.WriteLine($"{name}: Accepted ({report.LinesChecked} lines; {coverage}{left})");
            return 0;
        }
        Console.WriteLine($"{name}:{at}: {report.Verdict}: {report.Message}");
        if (report.StateBefore.Length > 0)
            Console.WriteLine($"  state before: {report.StateBefore}");
        if (report.Enabled.Length > 0)
            Console.WriteLine($"  enabled: {string.Join(", ", report.Enabled)}");
        return 1;
    }

    /// <summary>One value per non-blank line (JSON numbers must be integers, as the trace format says).</summary>
    internal static List<Value> Parse(IEnumerable<string> lines) => Parse(lines.Select((text, i) => (text, i + 1)));

    /// <summary>One value per non-blank line; <c>Number</c> is the line's number in its file, for error messages.</summary>
    private static List<Value> Parse(IEnumerable<(string Text, int Number)> lines)
    {
        var values = new List<Value>();
        foreach (var (line, number) in lines)
        {
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                values.Add(Convert(doc.RootElement));
            }
            catch (JsonException e)
            {
                // A line cut off by a crash, or garbled: name it (the parser's own position says line 0 of the line).
                throw new FormatException($"line {number}: not a JSON value ({e.Message.Split(" LineNumber:")[0]})", e);
            }
            catch (FormatException e)
            {
                throw new FormatException($"line {number}: {e.Message}", e);
            }
        }
        return values;
    }

    private static Value Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => TraceCheck.Str(e.GetString()!),
        JsonValueKind.Number => e.TryGetInt64(out long i) ? TraceCheck.Int(i) : throw new FormatException($"not an integer: {e.GetRawText()}"),
        JsonValueKind.True => TraceCheck.Bool(true),
        JsonValueKind.False => TraceCheck.Bool(false),
        JsonValueKind.Array => TraceCheck.Array(e.EnumerateArray().Select(Convert).ToList()),
        JsonValueKind.Object => TraceCheck.Object(e.EnumerateObject().Select(p => new KeyValuePair<string, Value>(p.Name, Convert(p.Value))).ToList()),
        _ => throw new FormatException($"unsupported JSON value: {e.GetRawText()}"),
    };
}
