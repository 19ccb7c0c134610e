using Hybrid.Transport.Dpdk;

namespace Hybrid.Transport;

/// <summary>
/// The calling thread's priority in the kernel's scheduler (<c>hyb_thread_*</c> of libhyb_transport). A thread at
/// background priority (Linux SCHED_IDLE) runs only on CPU time no thread of normal priority wants, and the kernel
/// preempts it the moment one wakes up on its CPU, where a thread of normal priority may keep the CPU for the rest
/// of its slice (up to a scheduler tick, 4 ms here) before the woken thread runs.
/// </summary>
public static class ThreadScheduling
{
    private static readonly Lazy<string?> Refusal = new(Probe);

    /// <summary>
    /// True when threads of this process can move to background priority and back: libhyb_transport loads and the
    /// process may leave SCHED_IDLE again (root, or CAP_SYS_NICE). Otherwise false and why. Probed once, on a thread
    /// of its own (a thread that could enter but not leave stays at background priority).
    /// </summary>
    public static bool CanUseBackground(out string? reason)
    {
        reason = Refusal.Value;
        return reason is null;
    }

    /// <summary>
    /// Moves the calling thread to background priority (<paramref name="background"/>) or back to normal priority.
    /// Only after <see cref="CanUseBackground"/> said true. False when the kernel refused.
    /// </summary>
    public static bool SetBackground(bool background) => HybNative.SetThreadBackground(background, out _);

    /// <summary>
    /// Lets the calling thread run only on <paramref name="cpus"/> (threads it creates afterwards inherit that).
    /// Throws a <see cref="TransportException"/> naming the CPUs when libhyb_transport is missing or the kernel refuses
    /// (a CPU this process may not use).
    /// </summary>
    public static void PinCurrentThread(ReadOnlySpan<int> cpus)
    {
        HybNative.EnsureLoaded();
        HybNative.PinThread(0, cpus);
    }

    /// <summary>
    /// Lets every thread this process has now run only on <paramref name="cpus"/> (threads created later inherit it
    /// from their creator). For a benchmark that keeps its load generator off the cores it gave a node.
    /// </summary>
    public static void PinProcess(ReadOnlySpan<int> cpus)
    {
        HybNative.EnsureLoaded();
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                HybNative.PinThread(int.Parse(Path.GetFileName(task), System.Globalization.CultureInfo.InvariantCulture), cpus);
            }
            catch (TransportException) when (!Directory.Exists(task))
            {
                // the thread ended meanwhile
            }
        }
    }

    /// <summary>The CPUs the calling thread may run on (<c>Cpus_allowed_list</c> of <c>/proc/thread-self/status</c>), ascending.</summary>
    public static int[] AllowedCpus()
    {
        foreach (var line in File.ReadLines("/proc/thread-self/status"))
        {
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                return ParseCpuList(line["Cpus_allowed_list:".Length..].Trim());
        }
        throw new InvalidOperationException("no Cpus_allowed_list in /proc/thread-self/status");
    }

    /// <summary>A CPU list as taskset and the kernel write it: numbers and ranges, comma-separated (<c>0,2-3</c>).</summary>
    public static int[] ParseCpuList(string text)
    {
        var cpus = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            int dash = part.IndexOf('-', StringComparison.Ordinal);
            int first = int.Parse(dash < 0 ? part : part[..dash], System.Globalization.CultureInfo.InvariantCulture);
            int last = dash < 0 ? first : int.Parse(part[(dash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            if (last < first)
                throw new ArgumentException($"CPU range {part} runs backwards");
            for (int cpu = first; cpu <= last; cpu++)
                cpus.Add(cpu);
        }
        return [.. cpus];
    }

    /// <summary>The calling thread's kernel id, which names its <c>/proc/self/task/&lt;id&gt;</c> files.</summary>
    public static int CurrentThreadId() => HybNative.ThreadId();

    private static string? Probe()
    {
        try
        {
            HybNative.EnsureLoaded();
        }
        catch (TransportException e)
        {
            return e.Message;
        }
        return OnProbeThread(() =>
            !HybNative.SetThreadBackground(true, out int errno) ? $"the kernel refused SCHED_IDLE (errno {errno})"
            : !HybNative.SetThreadBackground(false, out errno) ? $"the kernel refused leaving SCHED_IDLE (errno {errno}): it needs CAP_SYS_NICE or root"
            : null);
    }

    /// <summary>
    /// Null when this process may run a thread on each of <paramref name="cpus"/>, else which one may not and why:
    /// checked by pinning a short-lived thread to each in turn, so nothing of the caller's is pinned.
    /// </summary>
    public static string? CheckCpus(IReadOnlyList<int> cpus) => OnProbeThread(() =>
    {
        foreach (int cpu in cpus)
        {
            try
            {
                PinCurrentThread([cpu]);
            }
            catch (TransportException e)
            {
                return $"CPU {cpu} is not one this process may run on ({e.Message})";
            }
        }
        return null;
    });

    /// <summary>Runs <paramref name="probe"/> on a short-lived thread of its own (what it does to its thread dies with it).</summary>
    private static string? OnProbeThread(Func<string?> probe)
    {
        string? result = null;
        var thread = new Thread(() => result = probe()) { IsBackground = true, Name = "hybrid-sched-probe" };
        thread.Start();
        thread.Join();
        return result;
    }
}
