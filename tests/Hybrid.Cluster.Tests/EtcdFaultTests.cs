using System.Text.Json;
using Hybrid.Client;
using Xunit.Abstractions;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// kill -9 of etcd (the cluster's metadata) during a migration (right after it was asked for, while the target pulls,
/// and right after each of its decisions), with both nodes in their own processes on the etcd
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
        await AssertFinishedAndNothingLostAsync(client, load);
    }

    /// <summary>
    /// kill -9 of etcd right after the target (the coordinator) published each migration decision, while it is held
    /// there before carrying out the decision's effects (<see cref="StallingMetadataStore"/>): the decision is in etcd,
    /// and the next one meets the outage (after RemoveLineage, the last, only the drop and the load do), so every phase
    /// of the migration meets an etcd crash, not only the two above.
    /// </summary>
    [Theory]
    [InlineData("BeginMigration")]
    [InlineData("TransferOwnership")]
    [InlineData("Checkpoint")]
    [InlineData("DropSource")]
    [InlineData("RemoveLineage")]
    public async Task Etcd_killed_right_after_a_migration_decision_loses_no_acknowledged_write_and_the_migration_finishes(string decision)
    {
        await using ClusterClient client = await ClusterClient.ConnectAsync(new ClusterRoutingSource(Metadata.Typed));
        var load = new AckedWrites(client, 2000);
        await load.LoadAsync();
        string phases = await StartMigrationHeldAfterAsync(decision, load);
        // The premise of the writes-while-down check below: the client's map names the owners the published decisions
        // gave (it reads the map while requests of the handed-over ranges wait). A client whose map is older than the
        // outage learns the new owner only from the store, after it is back: that case is not tested here.
        await WaitAsync(() => Task.FromResult(new[] { "r1", "r2" }.All(r => client.Routing.Owner[r] == Metadata.Current.Owner(r))),
            "the client's map to name the published owners", TimeSpan.FromSeconds(30));
        await _etcd!.KillAsync();
        long writesBefore = load.Writes;
        output.WriteLine($"etcd killed right after {decision}: {phases}");
        // The data path does not need the metadata: writes go on while etcd is down, at every phase. (Right after
        // TransferOwnership the target may still refuse the moved ranges for a moment, before it adopts its view; the
        // client holds the map that names it, and retries.) One run in an earlier session acknowledged no write
        // during this outage and the requirement was dropped for a while; a defect that can cause that was found since
        // and fixed: rejected requests waited for reads of the map, one after another, each read waiting out etcd's deadline
        // (ClusterClientFaultTests.Requests_RejectedWhileTheMapCannotBeRead...). That it caused that run is not proven.
        await WaitAsync(() => Task.FromResult(load.Writes >= writesBefore + 20), "writes while etcd is down", TimeSpan.FromSeconds(60));
        // The held decider goes on to its next step, which waits for etcd (it says so): a decision, or finding the peer
        // port of a node it has not called yet. RemoveLineage is the last decision: what follows it (the source's drop)
        // needs no etcd, so the outage just lasts a moment longer under the load.
        if (decision == "RemoveLineage")
            await Task.Delay(TimeSpan.FromSeconds(1));
        else
            await WaitAsync(() => Task.FromResult(NodeOf("n2").Log.Contains("waits for the metadata store", StringComparison.Ordinal)),
                "n2's next decision to wait for etcd", TimeSpan.FromSeconds(30));
        await _etcd.RestartAsync();
        output.WriteLine($"etcd back; {load.Writes - writesBefore} writes acknowledged while it was down");
        await AssertFinishedAndNothingLostAsync(client, load);
    }

    /// <summary>
    /// Waits for the migration to finish, stops <paramref name="load"/>, then checks: no error, every range at its
    /// new owner, every acknowledged write readable with its latest value, the target's trace accepted.
    /// </summary>
    private async Task AssertFinishedAndNothingLostAsync(ClusterClient client, AckedWrites load)
    {
        await WaitAsync(async () =>
        {
            try
            {
                return (await ControlAsync("n2", "{\"op\":\"status\"}")).GetProperty("finished").ValueKind != JsonValueKind.Null;
            }
            catch (MetadataUnavailableException)
            {
                return false; // this process's etcd client may still be backing off from the outage
            }
        }, "the migration to finish", TimeSpan.FromSeconds(120));
        await load.StopAsync();
        JsonElement status = await ControlAsync("n2", "{\"op\":\"status\"}");
        output.WriteLine($"{load.Writes} acknowledged writes, {load.Failed} failed, {load.Refused} refused, {client.Resends} resends; target: {status}");
        Assert.Equal(JsonValueKind.Null, status.GetProperty("error").ValueKind);
        AssertMigrated();
        await AssertNoLostWritesAsync(load);
        AssertTraceConforms("n2");
    }

    /// <summary>Writes its arguments' second half under its first byte, in table 0 (a write through an extension).</summary>
    private const string PutRest = """
        using Hybrid.Extensions.Abstractions;
        public static class PutRest
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                ctx.Put(0, ctx.Args.Slice(0, 1), ctx.Args.Slice(1));
                return ExtensionTask.CompletedTask;
            }
        }
        """;

    [Fact]
    public async Task Nodes_that_lived_through_an_etcd_outage_still_adopt_new_tenants_and_catalog_extensions()
    {
        // Both node processes follow the tenants and the extension catalog through watches on etcd; kill etcd under them.
        await _etcd!.KillAsync();
        await Task.Delay(1500);
        await _etcd.RestartAsync();

        byte[] secret = "after-the-outage"u8.ToArray();
        await new ClusterTenants(Store, Root).CreateAsync("late", secret);
        var routes = new ClusterRoutingSource(Metadata.Typed);
        var options = new HybridClientOptions { Tenant = "late", Secret = secret, Timeout = TimeSpan.FromSeconds(30) };
        await using ClusterClient late = await ClusterClient.ConnectAsync(routes, options);
        // Every range is n1's; install at n2 alone (its own session), so n1 can only have it from the catalog.
        NodeInfo n2 = (await Metadata.Typed.ListLiveNodesAsync()).Single(n => n.Id == "n2");
        HybridSession? opened = null;
        await WaitAsync(async () =>
        {
            try
            {
                opened = await HybridSession.ConnectAsync(options with { EndPoint = System.Net.IPEndPoint.Parse(n2.Endpoint) });
                return true;
            }
            catch (HybridProtocolException e) when (e.Status == Hybrid.Protocol.Status.UnknownTenant)
            {
                return false; // not adopted yet
            }
        }, "n2 to adopt the tenant created after the outage", TimeSpan.FromSeconds(30));
        await using HybridSession atN2 = opened!;
        ExtensionInstallResult installed = await atN2.InstallExtensionAsync("putrest", PutRest);
        Assert.True(installed.Succeeded, string.Join("\n", installed.Errors));

        byte[] key = "k"u8.ToArray();
        await WaitAsync(async () => (await late.InvokeAsync("putrest", key, "kvalue"u8.ToArray())).Status == Hybrid.Protocol.Status.Ok,
            "n1 to install the extension n2 recorded", TimeSpan.FromSeconds(30));
        GetResult written = await late.GetAsync(0, key);
        Assert.Equal((Hybrid.Protocol.Status.Ok, "value"), (written.Status, System.Text.Encoding.UTF8.GetString(written.Value ?? [])));
    }
}
