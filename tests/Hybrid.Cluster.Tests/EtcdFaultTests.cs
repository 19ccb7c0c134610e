using System.Text.Json;
using Hybrid.Client;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// kill -9 of etcd (the cluster's metadata) during a migration, with both nodes in their own processes on the etcd
/// store and a cluster client writing throughout. The nodes keep serving while etcd is down (only decisions wait);
/// once etcd is back on its data directory the migration finishes, every acknowledged write is readable with its
/// latest value, each range has one owner, and the target's trace replays through the checker.
/// </summary>
public sealed class EtcdFaultTests(ITestOutputHelper output) : ClusterProcessTests
{
    private EtcdProcess? _etcd;

    protected override string StoreSpec => "etcd:" + _etcd!.ClientUrl;

    protected override async Task PrepareAsync()
    {
        Assert.True(EtcdProcess.FindBinary() is not null, "etcd is not installed: apt-get install -y etcd-server");
        _etcd = await EtcdProcess.StartAsync(dataDirectory: Path.Combine(Dir.Path, "etcd"));
    }

    protected override async Task CleanUpAsync()
    {
        if (_etcd is not null)
            await _etcd.DisposeAsync();
    }

    [Theory]
    [InlineData("Begin")] // killed right after the migration was asked for: its first decisions meet the outage
    [InlineData("Pulling")] // killed while the target pulls: the pulls go on, FinishPulls waits
    public async Task Etcd_killed_during_a_migration_loses_no_acknowledged_write_and_the_migration_finishes(string when)
    {
        await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(Metadata.Typed));
        var load = new AckedWrites(client, 3000);
        await load.LoadAsync();
        load.Start(lanes: 4);

        await StartMigrationAsync();
        if (when == "Pulling")
            await WaitForPullingAsync();
        long writesBefore = load.Writes;
        await _etcd!.KillAsync();
        output.WriteLine($"etcd killed ({when}) after {writesBefore} acknowledged writes");
        // The data path does not need the metadata: writes keep being acknowledged while etcd is down.
        await WaitAsync(() => Task.FromResult(load.Writes >= writesBefore + 20), "writes while etcd is down", TimeSpan.FromSeconds(60));
        await Task.Delay(500);
        long writesWhileDown = load.Writes - writesBefore;
        await _etcd.RestartAsync();
        output.WriteLine($"etcd back; {writesWhileDown} writes acknowledged while it was down");

        await WaitAsync(async () => (await ControlAsync("n2", "{\"op\":\"status\"}")).GetProperty("finished").ValueKind != JsonValueKind.Null,
            "the migration to finish", TimeSpan.FromSeconds(120));
        await load.StopAsync();
        JsonElement status = await ControlAsync("n2", "{\"op\":\"status\"}");
        output.WriteLine($"{load.Writes} acknowledged writes, {load.Failed} failed, {client.Resends} resends; target: {status}");
        Assert.Equal(JsonValueKind.Null, status.GetProperty("error").ValueKind);
        AssertMigrated();
        Assert.Empty(await load.MismatchesAsync());
        AssertTraceConforms("n2");
    }
}
