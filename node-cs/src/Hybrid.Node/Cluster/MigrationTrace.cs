using System.Text.Json;
using Hybrid.Core;
using Hybrid.Core.Interop;

namespace Hybrid.Node.Cluster;

/// <summary>
/// The ndjson protocol trace of the migration steps this node carries out (traces/README.md): the decisions' own
/// lines (<c>BeginMigration</c>, <c>Prepare</c>, <c>TransferOwnership</c>, <c>CoreRefresh</c>, <c>FinishPulls</c>,
/// <c>Checkpoint</c>, <c>DropSource</c>, <c>RemoveLineage</c>, rendered by the F# core) and the data-plane steps
/// (<c>BackgroundPull</c> per chunk, <c>PriorityPull</c> per batch). Off by default: when off, every call is one
/// null check and builds no string.
/// </summary>
public sealed class MigrationTrace(TextWriter? writer)
{
    private readonly Lock _lock = new();

    /// <summary>A trace that writes nothing.</summary>
    public static MigrationTrace Off { get; } = new(null);

    /// <summary>True when lines are written; check it before building a line.</summary>
    public bool Enabled => writer is not null;

    /// <summary>Appends one JSON line (already rendered).</summary>
    public void Line(string json)
    {
        if (writer is null)
            return;
        lock (_lock)
            writer.WriteLine(json);
    }

    /// <summary>
    /// Replays ndjson trace lines (the first one the <c>Init</c> line) through the F# trace checker
    /// (<see cref="TraceCheck.Check"/>): the first line that is not an enabled step or breaks an invariant is reported.
    /// </summary>
    public static TraceReport Check(IEnumerable<string> lines) => TraceCheck.Check(lines.Select(Parse));

    private static JsonValue.Value Parse(string line)
    {
        using var doc = JsonDocument.Parse(line);
        return Of(doc.RootElement);
    }

    private static JsonValue.Value Of(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => TraceCheck.Str(e.GetString()!),
        JsonValueKind.Number => TraceCheck.Int(e.GetInt64()),
        JsonValueKind.True => TraceCheck.Bool(true),
        JsonValueKind.False => TraceCheck.Bool(false),
        JsonValueKind.Array => TraceCheck.Array([.. e.EnumerateArray().Select(Of)]),
        JsonValueKind.Object => TraceCheck.Object([.. e.EnumerateObject().Select(p => KeyValuePair.Create(p.Name, Of(p.Value)))]),
        _ => throw new FormatException("unexpected JSON " + e.ValueKind),
    };

    /// <summary><c>BackgroundPull(r, p)</c>: one chunk of partition <paramref name="partition"/> of <paramref name="range"/> was applied.</summary>
    public void BackgroundPull(string range, int partition)
    {
        if (writer is not null)
            Line($"{{\"event\":\"BackgroundPull\",\"r\":{JsonSerializer.Serialize(range)},\"p\":\"p{partition}\"}}");
    }

    /// <summary><c>PriorityPull(r)</c>: one batch of keys reads missed was pulled and applied.</summary>
    public void PriorityPull(string range)
    {
        if (writer is not null)
            Line($"{{\"event\":\"PriorityPull\",\"r\":{JsonSerializer.Serialize(range)}}}");
    }
}
