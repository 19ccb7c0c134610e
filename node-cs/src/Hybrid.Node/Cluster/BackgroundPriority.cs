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
/// </summary>
public static class BackgroundPriority
{
    /// <summary>
    /// Lowers the calling thread (for the rest of its life); false where that is not possible (not Linux, no
    /// /proc), in which case the thread keeps competing with client work on equal terms.
    /// </summary>
    public static bool LowerCurrentThread()
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
