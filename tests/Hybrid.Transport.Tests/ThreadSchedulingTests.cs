namespace Hybrid.Transport.Tests;

/// <summary>
/// <see cref="ThreadScheduling"/> against the kernel: what it sets is read back from the thread's own
/// <c>/proc/self/task/&lt;id&gt;</c> files.
/// </summary>
public sealed class ThreadSchedulingTests
{
    [Fact]
    public void Background_is_SCHED_IDLE_and_normal_is_SCHED_OTHER_again_or_the_refusal_names_the_capability()
    {
        // Leaving SCHED_IDLE needs CAP_SYS_NICE: root has it, except in a container that drops it. There the probe
        // must say so (and the node then runs every step at normal priority, BackgroundStepTests).
        if (!ThreadScheduling.CanUseBackground(out string? reason))
        {
            Assert.Contains("needs CAP_SYS_NICE or root", reason, StringComparison.Ordinal);
            Console.WriteLine($"skipped: SCHED_IDLE and back not exercised here: {reason}");
            return;
        }
        var policies = new List<int>();
        RunOnThread(() =>
        {
            int tid = ThreadScheduling.CurrentThreadId();
            policies.Add(Policy(tid));
            Assert.True(ThreadScheduling.SetBackground(true));
            policies.Add(Policy(tid));
            Assert.True(ThreadScheduling.SetBackground(false));
            policies.Add(Policy(tid));
        });
        Assert.Equal([0, 5, 0], policies); // SCHED_OTHER, SCHED_IDLE, SCHED_OTHER
    }

    [Fact]
    public void Pinning_limits_the_thread_to_the_given_cpu_and_a_cpu_out_of_range_is_refused_by_name()
    {
        int cpu = ThreadScheduling.AllowedCpus()[0];
        string? allowed = null;
        RunOnThread(() =>
        {
            ThreadScheduling.PinCurrentThread([cpu]);
            allowed = Status(ThreadScheduling.CurrentThreadId(), "Cpus_allowed_list");
        });
        Assert.Equal(cpu.ToString(System.Globalization.CultureInfo.InvariantCulture), allowed);
        Assert.Equal([0, 2, 3, 4, 7], ThreadScheduling.ParseCpuList("0,2-4,7"));
        var e = Assert.Throws<TransportException>(() => RunOnThread(() => ThreadScheduling.PinCurrentThread([1023])));
        Assert.Contains("hyb_thread_pin(CPUs 1023)", e.Message);
    }

    private static void RunOnThread(Action action)
    {
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    private static int Policy(int tid)
    {
        var line = File.ReadLines($"/proc/self/task/{tid}/sched").First(l => l.StartsWith("policy", StringComparison.Ordinal));
        return int.Parse(line.Split(':')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Status(int tid, string field) =>
        File.ReadLines($"/proc/self/task/{tid}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal)).Split(':')[1].Trim();
}
