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
        var check = new Command("check", "Replay traces through the F# model; name the first step that is not an enabled action or breaks an invariant");
        check.Arguments.Add(files);
        check.SetAction(result =>
        {
            int worst = 0;
            foreach (var file in result.GetValue(files)!)
                worst = Math.Max(worst, CheckFile(file.FullName));
            return worst;
        });
        var trace = new Command("trace", "Protocol traces");
        trace.Subcommands.Add(check);
        return trace;
    }

    private static int CheckFile(string path)
    {
        List<Value> lines;
        try
        {
            lines = Parse(File.ReadLines(path));
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
            Console.WriteLine($"{path}: Accepted ({report.LinesChecked} lines; {coverage})");
            return 0;
        }
        Console.WriteLine($"{path}:{report.Line}: {report.Verdict}: {report.Message}");
        if (report.StateBefore.Length > 0)
            Console.WriteLine($"  state before: {report.StateBefore}");
        if (report.Enabled.Length > 0)
            Console.WriteLine($"  enabled: {string.Join(", ", report.Enabled)}");
        return 1;
    }

    /// <summary>One value per non-blank line (JSON numbers must be integers, as the trace format says).</summary>
    internal static List<Value> Parse(IEnumerable<string> lines)
    {
        var values = new List<Value>();
        int number = 0;
        foreach (var line in lines)
        {
            number++;
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
