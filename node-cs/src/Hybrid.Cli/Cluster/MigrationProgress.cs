using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Hybrid.Cluster;
using Hybrid.Node.Cluster;
using Spectre.Console;

namespace Hybrid.Cli.Cluster;

/// <summary>What a migration did, as its target reported it.</summary>
/// <param name="Records">Records received by background pulls.</param>
/// <param name="Bytes">Key + value bytes received.</param>
/// <param name="Elapsed">From the request to the last RemoveLineage.</param>
/// <param name="FirstServed">From the request until the target owned (and served) the first range.</param>
/// <param name="Error">The target's failure, or null.</param>
/// <param name="Stale">
/// Received records the target did not install: it had them already (pulled again after the pulls restarted, e.g. when
/// the source restarted) or had a newer version.
/// </param>
/// <param name="Restarts">How often the background pulls started over.</param>
internal sealed record MigrationReport(long Records, long Bytes, TimeSpan Elapsed, TimeSpan? FirstServed, string? Error, long Stale = 0, long Restarts = 0)
{
    /// <summary>Pull rate in MB/s (10^6 bytes) over the whole migration.</summary>
    public double MegabytesPerSecond => Bytes / 1e6 / Math.Max(Elapsed.TotalSeconds, 1e-9);

    /// <summary>One line for humans.</summary>
    public string Summary() => Error is not null
        ? "migration FAILED: " + Error
        : string.Create(CultureInfo.InvariantCulture,
            $"migrated {Records:N0} records, {Bytes / 1e6:F1} MB in {Elapsed.TotalSeconds:F2} s = {MegabytesPerSecond:F1} MB/s; target served after {FirstServed?.TotalMilliseconds ?? double.NaN:F0} ms")
            + (Stale > 0 || Restarts > 0
                ? string.Create(CultureInfo.InvariantCulture,
                    $" ({Stale:N0} of the records were at the target already or older than its copy; the pulls started over {Restarts} time(s))")
                : "");
}

/// <summary>Asks a node to pull ranges to itself and follows it (the target reports progress on its peer port).</summary>
internal static class MigrationProgress
{
    /// <summary>
    /// Starts the migration of <paramref name="ranges"/> to <paramref name="target"/> and polls its status until it ends,
    /// drawing a progress bar (records, MB/s, ETA by the fraction of the source's log scanned) when
    /// <paramref name="showBar"/> (without a terminal, a progress line on stderr every <see cref="ProgressLineEvery"/>).
    /// <paramref name="stopAndCopy"/> runs the baseline instead of Rocksteady.
    /// </summary>
    public static async Task<MigrationReport> RunAsync(NodeInfo target, byte[] peerKey, IReadOnlyList<string> ranges, bool showBar, bool stopAndCopy = false, string pullRate = "adaptive")
    {
        using NetworkPeer peer = LocalCluster.Peer(target, peerKey);
        var started = Stopwatch.StartNew();
        await peer.ControlAsync(JsonSerializer.Serialize(new { op = "migrate", ranges, mode = stopAndCopy ? "stop-and-copy" : "rocksteady", pullRate }));
        JsonElement status = default;
        async Task<bool> PollAsync()
        {
            try
            {
                status = JsonDocument.Parse(await peer.ControlAsync("{\"op\":\"status\"}")).RootElement.Clone();
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or PeerException)
            {
                // The target went away mid-migration (it printed an unhandled SocketException): what was decided stays
                // decided, and a restarted target carries the migration on by itself.
                throw new IOException($"target {target.Id} stopped answering ({e.Message}); the migration goes on when it is back "
                    + "('hybrid cluster start' restarts a local cluster's stopped nodes; 'hybrid cluster status' shows the migration)", e);
            }
            return status.GetProperty("finished").ValueKind != JsonValueKind.Null;
        }
        if (showBar && AnsiConsole.Profile.Capabilities.Interactive)
        {
            await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .StartAsync(async ctx =>
                {
                    ProgressTask task = ctx.AddTask("migrating", maxValue: 1000);
                    while (!await PollAsync())
                    {
                        Update(task, status, ranges.Count, started.Elapsed);
                        await Task.Delay(200);
                    }
                    Update(task, status, ranges.Count, started.Elapsed);
                    task.Value = task.MaxValue;
                });
        }
        else
        {
            bool failing = false;
            TimeSpan lastLine = TimeSpan.Zero;
            while (!await PollAsync())
            {
                // Without a bar, say once per streak that the pulls cannot reach the source (and when they can again),
                // and (unless quiet) a progress line every few seconds, for logs.
                string trouble = SourceTrouble(status);
                if (trouble.Length > 0 != failing)
                {
                    failing = trouble.Length > 0;
                    Console.Error.WriteLine(failing ? "migration: " + trouble.TrimStart(',', ' ') : "migration: the source answers again");
                }
                if (showBar && started.Elapsed - lastLine >= ProgressLineEvery)
                {
                    lastLine = started.Elapsed;
                    Console.Error.WriteLine("migration: " + Describe(status, ranges.Count, started.Elapsed));
                }
                await Task.Delay(100);
            }
        }
        started.Stop();
        TimeSpan? firstServed = status.GetProperty("firstServed").ValueKind == JsonValueKind.String
            ? status.GetProperty("firstServed").GetDateTime() - status.GetProperty("started").GetDateTime()
            : null;
        return new MigrationReport(status.GetProperty("records").GetInt64(), status.GetProperty("bytes").GetInt64(), started.Elapsed, firstServed,
            status.GetProperty("error").ValueKind == JsonValueKind.String ? status.GetProperty("error").GetString() : null,
            Count(status, "stale"), Count(status, "restarts"));
    }

    /// <summary>A count of the status, 0 when absent (a target of an older build).</summary>
    private static long Count(JsonElement status, string name) =>
        status.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;

    /// <summary>How often a migration without a terminal prints a progress line.</summary>
    internal static readonly TimeSpan ProgressLineEvery = TimeSpan.FromSeconds(5);

    private static void Update(ProgressTask task, JsonElement status, int rangeCount, TimeSpan elapsed)
    {
        task.Value = 1000.0 * Fraction(status) / rangeCount;
        task.Description = Markup.Escape(Describe(status, rangeCount, elapsed));
    }

    /// <summary>Ranges done plus the fraction of the current step's source log scanned.</summary>
    private static double Fraction(JsonElement status)
    {
        long planned = status.GetProperty("plannedLogBytes").GetInt64();
        double current = planned > 0 ? Math.Min(1.0, (double)status.GetProperty("scannedLogBytes").GetInt64() / planned) : 0;
        return status.GetProperty("done").GetArrayLength() + current;
    }

    /// <summary>"D/N ranges, R records, X MB/s" and any trouble reaching the source.</summary>
    internal static string Describe(JsonElement status, int rangeCount, TimeSpan elapsed)
    {
        long records = status.GetProperty("records").GetInt64();
        double mb = status.GetProperty("bytes").GetInt64() / 1e6;
        return string.Create(CultureInfo.InvariantCulture,
            $"{status.GetProperty("done").GetArrayLength()}/{rangeCount} ranges, {records:N0} records, {mb / Math.Max(elapsed.TotalSeconds, 1e-3):F1} MB/s")
            + (status.TryGetProperty("pullsEnded", out JsonElement ended) && ended.ValueKind == JsonValueKind.True ? ", pulled: checkpointing, then dropping the source's copy" : "")
            + SourceTrouble(status);
    }

    /// <summary>", the source has not answered for N s (why), retrying" while the target's pulls fail to reach the source; else empty.</summary>
    internal static string SourceTrouble(JsonElement status)
    {
        if (!status.TryGetProperty("sourceFailingSeconds", out JsonElement seconds) || seconds.ValueKind != JsonValueKind.Number)
            return "";
        string why = status.TryGetProperty("sourceFailure", out JsonElement failure) && failure.ValueKind == JsonValueKind.String ? failure.GetString()! : "";
        return string.Create(CultureInfo.InvariantCulture, $", the source has not answered for {seconds.GetDouble():F0} s ({why}), retrying");
    }
}
