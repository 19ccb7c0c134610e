using System.Diagnostics;
using System.Runtime;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>
/// One running extension invocation: its pooled context, its coroutine and its meters. Owned by the
/// scheduler that accepted it (its origin); any scheduler may step it, one at a time.
/// </summary>
internal sealed class Invocation
{
    private ExtensionAbortedException? _abort;

    internal Invocation(ExtensionScheduler origin, ExtensionLimits limits)
    {
        Origin = origin;
        Limits = limits;
        Context = new ExtensionContext(NullStore.Instance, 0, default, limits.MaxResponseBytes);
    }

    internal ExtensionScheduler Origin { get; }
    internal ExtensionLimits Limits { get; }
    internal ExtensionContext Context { get; }
    internal ExtensionHandle Handle { get; private set; } = null!;
    internal long Cookie { get; private set; }
    internal ExtensionTask Root;
    internal bool Started;
    internal long CpuTicks;
    internal int Resumptions;
    internal long StepStart;

    /// <summary>Host waits on the extension's behalf begun plus ended (odd: inside one); read by the watchdog.</summary>
    internal int HostWaits;
    internal long JitAtStepStart;
    internal long SliceEnd;
    internal long MinSliceEnd;
    internal long MemoryCharged;
    internal ExtensionStatus Status;
    internal string? Error;

    /// <summary>The highest write sequence of the stores its steps ran on (a stolen step writes through the thief's).</summary>
    internal long WriteSequence;

    /// <summary>Set once, by the meters or the watchdog (another thread); sticky until the invocation ends.</summary>
    internal ExtensionAbortedException? Abort => Volatile.Read(ref _abort);

    internal void Reset(ExtensionHandle handle, ReadOnlySpan<byte> args, long cookie)
    {
        Handle = handle;
        Cookie = cookie;
        Context.Reset(NullStore.Instance, handle.Tenant, args);
        Root = default;
        Started = false;
        CpuTicks = 0;
        Resumptions = 0;
        MemoryCharged = 0;
        WriteSequence = 0;
        Status = ExtensionStatus.Ok;
        Error = null;
        _abort = null;
    }

    /// <summary>Records the first abort verdict and returns the exception that carries it.</summary>
    internal ExtensionAbortedException Aborted(ExtensionStatus status, string message)
    {
        Interlocked.CompareExchange(ref _abort, new ExtensionAbortedException(status, message), null);
        return _abort!;
    }

    internal void RequestYield() => Context.YieldRequested = true;

    /// <summary>Marks the start of a step (wall clock and this thread's JIT time).</summary>
    internal void BeginStep(long now)
    {
        StepStart = now;
        SliceEnd = now + Limits.SliceTicks;
        MinSliceEnd = now + Limits.MinSliceTicks;
        JitAtStepStart = JitTicks();
    }

    /// <summary>
    /// Time this step has run, without the time the JIT spent compiling on this thread: a fresh
    /// extension's first call compiles its methods, and that is the host's cost, not the tenant's.
    /// </summary>
    internal long StepTicks(long now) => now - StepStart - (JitTicks() - JitAtStepStart);

    private static readonly double s_stopwatchTicksPerTimeSpanTick = (double)Stopwatch.Frequency / TimeSpan.TicksPerSecond;

    private static long JitTicks() => (long)(JitInfo.GetCompilationTime(currentThread: true).Ticks * s_stopwatchTicksPerTimeSpanTick);
}
