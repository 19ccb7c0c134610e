using System.Diagnostics;

namespace Hybrid.Extensions;

/// <summary>How an invocation ended (or why it did not start).</summary>
public enum ExtensionStatus : byte
{
    /// <summary>Ran to its end; the response is valid.</summary>
    Ok = 0,

    /// <summary>No extension of that name is installed for the tenant.</summary>
    NotFound = 1,

    /// <summary>The extension threw (the error text says what).</summary>
    Faulted = 2,

    /// <summary>Stopped: the invocation used more CPU time than its budget.</summary>
    CpuBudgetExceeded = 3,

    /// <summary>Stopped: the invocation allocated more than its memory budget.</summary>
    MemoryBudgetExceeded = 4,

    /// <summary>Stopped: the invocation recursed deeper than its stack budget.</summary>
    StackBudgetExceeded = 5,

    /// <summary>Not started: the tenant has spent its CPU quota for now.</summary>
    Throttled = 6,

    /// <summary>Not started or stopped: the watchdog found this extension stuck and disabled it.</summary>
    Quarantined = 7,

    /// <summary>
    /// Stopped: the store evicted the memory under a value the invocation held in place (a race with eviction, possible
    /// only while the log's memory is full); it was stopped before it could read that memory again. Writes it made before
    /// stand, as with every stop. Invoking again reads the record afresh.
    /// </summary>
    Evicted = 8,
}

/// <summary>Per-invocation budgets and scheduling knobs. Defaults suit a 2-core machine serving µs requests.</summary>
public sealed record ExtensionLimits
{
    /// <summary>CPU time one invocation may use over all its steps.</summary>
    public TimeSpan Cpu { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Bytes one invocation may allocate in total (cumulative, not live).</summary>
    public long MemoryBytes { get; init; } = 8L << 20;

    /// <summary>Stack bytes an invocation may use below the point where its step started.</summary>
    public int StackBytes { get; init; } = 256 * 1024;

    /// <summary>
    /// Deepest call chain of extension methods. Small on purpose: a throw from a catch or finally block
    /// while unwinding nests the runtime's exception dispatch (~16 KiB of stack per level in .NET 10;
    /// about 95 levels overflow a 1.5 MiB thread and kill the process). 48 levels need under 1 MiB.
    /// </summary>
    public int MaxCallDepth { get; init; } = 48;

    /// <summary>Time slice after which the next preemption point yields.</summary>
    public TimeSpan Slice { get; init; } = TimeSpan.FromMicroseconds(50);

    /// <summary>
    /// Shortest slice when the worker has requests waiting (<see cref="ExtensionScheduler.WorkWaiting"/>): after it
    /// the next preemption point yields so they run, instead of waiting out the whole <see cref="Slice"/>. A step still
    /// gets at least this much per round, so a steady stream of short requests cannot starve an extension.
    /// </summary>
    public TimeSpan MinSlice { get; init; } = TimeSpan.FromMicroseconds(10);

    /// <summary>Largest response an invocation may write.</summary>
    public int MaxResponseBytes { get; init; } = 64 * 1024;

    internal long CpuTicks => (long)(Cpu.TotalSeconds * Stopwatch.Frequency);

    internal long SliceTicks => Math.Max(1, (long)(Slice.TotalSeconds * Stopwatch.Frequency));

    internal long MinSliceTicks => Math.Clamp((long)(MinSlice.TotalSeconds * Stopwatch.Frequency), 1, SliceTicks);
}
