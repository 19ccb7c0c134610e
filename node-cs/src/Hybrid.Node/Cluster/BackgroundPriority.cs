using System.Diagnostics;

namespace Hybrid.Node.Cluster;

/// <summary>
/// Puts the calling thread below client work in the OS scheduler, for migration's background pulls on both sides.
/// .NET's <see cref="Thread.Priority"/> does nothing on Linux (every SCHED_OTHER thread has priority 0); the nice
/// value is what CFS weighs, and on Linux it is per thread: <c>setpriority(PRIO_PROCESS, tid)</c>, which
/// <see cref="Process.PriorityClass"/> calls for the process whose id it is given, renices only the thread with that
/// id (see setpriority(2), NOTES). So the thread looks up its own id in <c>/proc/thread-self</c> and sets
/// <see cref="ProcessPriorityClass.BelowNormal"/> (nice 10: about a tenth of a core's time while client work wants
/// the core, all of it when nothing else runs) on that id. Raising the nice value needs no privilege.
/// <para>
/// Off unless <c>HYBRID_BACKGROUND_NICE=on</c>. A preempted low-priority thread can hold FASTER's epoch protection
/// (inside a scan chunk or an apply) while normal-priority threads spin waiting for the epoch to advance: priority
/// inversion. Side by side (<c>hybrid bench migrate --records 1000000 --quiet-seconds 3</c>, 64 clients, load 6-10 from
/// other work) one pair of runs had nice 10 3x slower (pulls 6.7 vs 21.4 MB/s, clients' p99.9 during 1,055 vs 223 ms),
/// the next pair had it slightly faster (18.9 vs 15.6 MB/s, 214 vs 275 ms): not settled, so the safe setting is the
/// default. The decision warm-up, which never holds the epoch, uses <see cref="Renice"/> directly.
/// </para>
/// </summary>
public static class BackgroundPriority
{
    /// <summary><c>HYBRID_BACKGROUND_NICE=on</c> puts background threads at nice 10 (see above for why it is off by default).</summary>
    private static readonly bool s_on = string.Equals(Environment.GetEnvironmentVariable("HYBRID_BACKGROUND_NICE"), "on", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Lowers the calling thread (for the rest of its life) when the switch is on; false when it is off or that is not
    /// possible (not Linux, no /proc), in which case the thread competes with client work on equal terms.
    /// </summary>
    public static bool LowerCurrentThread() => s_on && Renice();

    /// <summary>Puts the calling thread (only) at nice 10, whatever the switch says; false where that is not possible.</summary>
    public static bool Renice()
    {
        if (!OperatingSystem.IsLinux())
            return false;
        try
        {
            // "/proc/thread-self" -> "<pid>/task/<tid>"
            string? link = new FileInfo("/proc/thread-self").LinkTarget;
            if (link is null || !int.TryParse(link.AsSpan(link.LastIndexOf('/') + 1), out int tid))
                return false;
            using var thread = Process.GetProcessById(tid);
            thread.PriorityClass = ProcessPriorityClass.BelowNormal;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
