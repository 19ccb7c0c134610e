using Hybrid.Node.Hosting;

namespace Hybrid.Cluster.Tests;

/// <summary><see cref="NodeWarmUp"/>: its scratch migrations are real ones, and a stop ends them cleanly.</summary>
public sealed class NodeWarmUpTests
{
    [Fact]
    public async Task A_round_moves_the_range_there_and_back_and_every_read_meanwhile_sees_the_value_written_before_it()
    {
        string dir = ScratchDirectory();
        // One round = two Rocksteady moves; each reads every key once while its range is pulled.
        long reads = await NodeWarmUp.RunAsync(workers: 2, SocketEngine.Auto, TimeSpan.Zero, minRounds: 1, records: 400, directory: dir);
        Assert.Equal(2 * 400, reads);
        Assert.False(Directory.Exists(dir), "the scratch directory outlived the warm-up");
    }

    [Fact]
    public async Task A_cancelled_warm_up_stops_with_OperationCanceled_and_leaves_no_scratch_directory()
    {
        string dir = ScratchDirectory();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            NodeWarmUp.RunAsync(workers: 1, SocketEngine.Auto, TimeSpan.FromMinutes(5), records: 400, directory: dir, cancellationToken: cancel.Token));
        Assert.False(Directory.Exists(dir), "the scratch directory outlived the cancelled warm-up");
    }

    [Fact]
    public async Task What_a_killed_warm_up_left_in_its_directory_is_cleared_first()
    {
        string dir = ScratchDirectory();
        // As a process killed mid-warm-up leaves it: the scratch cluster's metadata exists already.
        Directory.CreateDirectory(Path.Combine(dir, "metadata"));
        await File.WriteAllTextAsync(Path.Combine(dir, "metadata", "metadata.db"), "left by a killed node");
        long reads = await NodeWarmUp.RunAsync(workers: 1, SocketEngine.Auto, TimeSpan.Zero, minRounds: 1, records: 200, directory: dir);
        Assert.Equal(2 * 200, reads);
        Assert.False(Directory.Exists(dir));
    }

    private static string ScratchDirectory() => Path.Combine(Path.GetTempPath(), "hybrid-warmup-test-" + Guid.NewGuid().ToString("N"));
}
