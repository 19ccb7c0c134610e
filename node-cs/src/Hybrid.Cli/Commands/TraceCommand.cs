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
        var check = new Command("check", "Replay traces through the F# model; name the first step that is not an enabled action or breaks an invariant");
        check.Arguments.Add(files);
        check.Options.Add(decisionsOnly);
        check.SetAction(result =>
        {
            int worst = 0;
            foreach (var file in result.GetValue(files)!)
                worst = Math.Max(worst, CheckFile(file.FullName, result.GetValue(decisionsOnly)));
            return worst;
        });
        var trace = new Command("trace", "Protocol traces");
        trace.Subcommands.Add(check);
        return trace;
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
        catch (Exception e) when (e is IOException or JsonException or FormatException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"{path}: {e.Message}");
            return 2;
        }
        var report = TraceCheck.Check(lines);
        if (report.Accepted)
        {
            var coverage = string.Join(", ", report.Coverage.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value}"));
            string left = skipped > 0 ? $"; {skipped} data-plane lines left out" : "";
            Console.WriteLine($"{path}: Accepted ({report.LinesChecked} lines; {coverage}{left})");
            return 0;
        }
        int at = report.Line >= 1 && report.Line <= numbers.Count ? numbers[report.Line - 1] : report.Line;
        Console.WriteLine($"{path}:{at}: {report.Verdict}: {report.Message}");
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
            using var doc = JsonDocument.Parse(line);
            try
            {
                values.Add(Convert(doc.RootElement));
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
