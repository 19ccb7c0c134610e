using System.Text.Json;

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
