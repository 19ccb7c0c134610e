using System.Buffers.Binary;
using Hybrid.Node.Extensions;
using Hybrid.Node.Tests.Node;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.Extensions;

/// <summary>
/// <see cref="Hosting.HybridNodeOptions.Cpus"/> and background steps on a real node, read back from the kernel: the
/// worker's and the poller's allowed CPUs, and the worker's scheduling policy while a long invocation runs and after.
/// </summary>
public sealed class BackgroundStepTests
{
    /// <summary>The shipped CPU-bound example: args[0..8] iterations; the instrumentation puts a preemption point in it.</summary>
    private static readonly string LongLoop = Hybrid.Extensions.ExtensionExamples.Source("loop");

    [Fact]
    public async Task Pinned_workers_and_pollers_run_on_their_cpu_and_skip_background_steps()
    {
        int cpu = Hybrid.Transport.ThreadScheduling.AllowedCpus()[0];
        string only = cpu.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var node = await TestNode.StartAsync(workers: 1, configure: o => o with { Cpus = [cpu] });
        Assert.Contains(ThreadsNamed("hybrid-worker-0"), t => StatusField(t, "Cpus_allowed_list") == only);
        Assert.Contains(ThreadsNamed("hybrid-poller-0"), t => StatusField(t, "Cpus_allowed_list") == only);
        Assert.Equal("not needed: the workers are pinned to their own CPUs (HybridNodeOptions.Cpus)", NodeExtensions.Of(node.Node).BackgroundStepsRefusal);
        Assert.True(SpinWait.SpinUntil(() => NodeExtensions.Of(node.Node).Host.SchedulerThreadIds().Length == 1, TimeSpan.FromSeconds(5)));
        Assert.Equal([0], NodeExtensions.Of(node.Node).Host.SchedulerThreadIds()); // no thread id: no background steps
        await using var s = await node.ConnectAsync();
        Assert.Equal(Status.Ok, (await s.PutAsync(0, "k"u8, "v"u8)).Status);
        Assert.Equal(Status.Ok, (await s.GetAsync(0, "k"u8)).Status);
    }

    [Fact]
    public async Task A_worker_runs_long_invocations_later_steps_at_background_priority_and_returns_to_normal()
    {
        await using var node = await TestNode.StartAsync(workers: 1);
        if (!Hybrid.Transport.ThreadScheduling.CanUseBackground(out string? why))
        {
            // A container's root without CAP_SYS_NICE: the node must say why and keep every step at normal priority.
            Assert.Equal(why, NodeExtensions.Of(node.Node).BackgroundStepsRefusal);
            Console.WriteLine($"skipped: background steps not exercised here: {why}");
            return;
        }
        Assert.Null(NodeExtensions.Of(node.Node).BackgroundStepsRefusal);
        // The worker records its thread id as its thread starts.
        Assert.True(SpinWait.SpinUntil(() => NodeExtensions.Of(node.Node).Host.SchedulerThreadIds() is [> 0], TimeSpan.FromSeconds(5)));
        int worker = Assert.Single(NodeExtensions.Of(node.Node).Host.SchedulerThreadIds());
        Assert.Equal("hybrid-worker-0", Read($"/proc/self/task/{worker}/comm")?.Trim());
        await using var s = await node.ConnectAsync();
        Assert.True((await s.InstallExtensionAsync("long", LongLoop)).Succeeded);
        await s.PutAsync(0, "k"u8, "v"u8);
        var args = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(args, 500_000); // ~1.5 ms alone: some 30 slices of 50 µs

        var policies = new HashSet<int>();
        using var stop = new CancellationTokenSource();
        var watch = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                lock (policies)
                    policies.Add(Policy(worker));
            }
        });
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            var r = await s.InvokeAsync("long", args);
            // Its CPU budget is wall-clock time: on a machine busy enough it may run out, which is not what this tests.
            Assert.True(r.Status == Status.Ok || r.Reason == (ulong)Hybrid.Extensions.ExtensionStatus.CpuBudgetExceeded, $"{r.Status} {r.Reason}");
            Assert.Equal(Status.Ok, (await s.GetAsync(0, "k"u8)).Status);
            lock (policies)
            {
                if (policies.Contains(5))
                    break;
            }
        }
        stop.Cancel();
        await watch;
        Assert.Contains(5, policies); // SCHED_IDLE while it resumed the long invocations
        // Idle again: the worker left background priority before it went to sleep.
        var settled = DateTime.UtcNow.AddSeconds(5);
        while (Policy(worker) != 0 && DateTime.UtcNow < settled)
            await Task.Delay(10);
        Assert.Equal(0, Policy(worker));
    }

    private static IEnumerable<int> ThreadsNamed(string name) =>
        Directory.GetDirectories("/proc/self/task")
            .Select(d => int.Parse(Path.GetFileName(d), System.Globalization.CultureInfo.InvariantCulture))
            .Where(t => Read($"/proc/self/task/{t}/comm")?.Trim() == name)
            .ToList();

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null; // the thread ended
        }
    }

    private static string? StatusField(int tid, string field) =>
        Read($"/proc/self/task/{tid}/status")?.Split('\n').FirstOrDefault(l => l.StartsWith(field + ":", StringComparison.Ordinal))?.Split(':')[1].Trim();

    private static int Policy(int tid)
    {
        var line = Read($"/proc/self/task/{tid}/sched")?.Split('\n').FirstOrDefault(l => l.StartsWith("policy", StringComparison.Ordinal));
        return line is null ? -1 : int.Parse(line.Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
