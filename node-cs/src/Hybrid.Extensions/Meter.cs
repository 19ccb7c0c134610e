using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Hybrid.Extensions;

/// <summary>
/// The budget checks that instrumentation inserts into extension IL. Public only because
/// instrumented code in another assembly must call it; extension source cannot name it (the
/// extension compilation does not reference this assembly).
/// </summary>
/// <remarks>
/// Fast path: one thread-static decrement per check. Every <see cref="FuelQuantum"/> checks the slow
/// path reads the clock, stops the invocation when its CPU budget is spent, and asks it to yield when
/// its time slice has ended (or, past the minimum slice, when the worker has requests waiting). Once an invocation is aborted, the abort is sticky: fuel stays at zero so
/// every later check (in finally blocks, filters, catch handlers) throws again.
/// </remarks>
public static class Meter
{
    /// <summary>Checks between two clock reads (a few microseconds of tight loop).</summary>
    public const int FuelQuantum = 1024;

    [ThreadStatic]
    private static int t_fuel;

    [ThreadStatic]
    private static nuint t_stackLimit;

    [ThreadStatic]
    private static Invocation? t_invocation;

    [ThreadStatic]
    private static int t_depth;

    [ThreadStatic]
    private static int t_maxDepth;

    [ThreadStatic]
    private static IExtensionStepStore? t_stepStore;

    [ThreadStatic]
    private static Func<bool>? t_workWaiting;

    /// <summary>At every method entry: fuel, call depth and stack bytes. Returns the frame's depth (kept in a local).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Enter()
    {
        var depth = ++t_depth;
        if (--t_fuel <= 0 || depth > t_maxDepth || StackPointer() < t_stackLimit)
        {
            Slow();
        }
        return depth;
    }

    /// <summary>Before every <c>ret</c>: the caller's depth.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Leave(int depth) => t_depth = depth - 1;

    /// <summary>
    /// In the compiler's async catch-all (and at finally starts of images instrumented before
    /// <see cref="RestoreInFinally"/>): frames unwound by an exception did not run <see cref="Leave"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Restore(int depth) => t_depth = depth;

    /// <summary>
    /// At finally/fault starts: restores the depth, and answers true when the invocation was stopped, so the block is
    /// skipped (the instrumentation branches to its end). A stopped invocation runs no finally block: one that ran
    /// would stop again at its first meter check, and each such throw nests another exception dispatch (about 16 KiB
    /// of stack) on the one unwinding; nested finally blocks in a deep call chain overflowed the stack and took the
    /// process down. Also checks the stack: an extension's own throws from handlers nest dispatches too.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool RestoreInFinally(int depth)
    {
        t_depth = depth;
        if (t_invocation is not { } invocation)
        {
            return false;
        }
        if (invocation.Abort is not null)
        {
            return true;
        }
        CheckHandlerStack(invocation);
        return false;
    }

    /// <summary>
    /// At catch and filter starts: restores the depth, and an aborted invocation cannot be resumed by catching. Checks
    /// the stack too (see <see cref="RestoreInFinally"/>).
    /// </summary>
    public static void RestoreInCatch(int depth)
    {
        t_depth = depth;
        if (t_invocation is not { } invocation)
        {
            return;
        }
        if (invocation.Abort is { } abort)
        {
            throw abort;
        }
        CheckHandlerStack(invocation);
    }

    /// <summary>At a handler start: exception dispatches nested while unwinding use the stack too.</summary>
    private static void CheckHandlerStack(Invocation invocation)
    {
        if (StackPointer() < t_stackLimit)
        {
            throw Fail(invocation, ExtensionStatus.StackBudgetExceeded, $"stack deeper than {invocation.Limits.StackBytes} bytes (exception handlers nested while unwinding)");
        }
    }

    /// <summary>At every backward branch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check()
    {
        if (--t_fuel <= 0)
        {
            Slow();
        }
    }

    /// <summary>Before <c>newarr</c>: charges <paramref name="count"/> elements of <paramref name="elementSize"/> bytes.</summary>
    public static void ChargeArray(nint count, int elementSize) => Charge(24 + ((long)Math.Max(0, count) * elementSize));

    /// <summary>Before <c>newobj</c> of a class or <c>box</c>: charges a fixed object size.</summary>
    public static void ChargeObject(int size) => Charge(size);

    /// <summary>After a call that returned a string.</summary>
    public static void ChargeString(string? value) => Charge(value is null ? 0 : 22 + (2L * value.Length));

    /// <summary>After a call that returned an array.</summary>
    public static void ChargeArrayObject(Array? value) => Charge(value is null ? 0 : 24 + (8L * value.LongLength));

    private static void Charge(long bytes)
    {
        var invocation = t_invocation ?? throw NoInvocation();
        invocation.MemoryCharged += bytes;
        if (invocation.MemoryCharged > invocation.Limits.MemoryBytes)
        {
            throw Fail(invocation, ExtensionStatus.MemoryBudgetExceeded,
                $"allocated more than {invocation.Limits.MemoryBytes} bytes");
        }
        if (invocation.Abort is { } abort)
        {
            throw abort;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Slow()
    {
        var invocation = t_invocation ?? throw NoInvocation();
        if (invocation.Abort is { } abort)
        {
            t_fuel = 0;
            throw abort;
        }
        if (t_depth > t_maxDepth)
        {
            // Each nested exception dispatch (a throw from a catch or finally while unwinding) takes ~16 KiB
            // of stack in .NET 10, so the call depth, not only the stack bytes, must stay small.
            throw Fail(invocation, ExtensionStatus.StackBudgetExceeded, $"call depth over {t_maxDepth}");
        }
        if (StackPointer() < t_stackLimit)
        {
            throw Fail(invocation, ExtensionStatus.StackBudgetExceeded, $"stack deeper than {invocation.Limits.StackBytes} bytes");
        }
        t_fuel = FuelQuantum;
        // A quantum of extension code ran: the store lets go of what it holds for reads (the storage epoch).
        t_stepStore?.PauseStep();
        var now = Stopwatch.GetTimestamp();
        if (invocation.CpuTicks + invocation.StepTicks(now) > invocation.Limits.CpuTicks)
        {
            throw OverCpuBudget(invocation);
        }
        if (now >= invocation.SliceEnd || (now >= invocation.MinSliceEnd && t_workWaiting is { } waiting && waiting()))
        {
            invocation.RequestYield();
        }
    }

    /// <summary>The invocation's CPU budget is spent: the returned exception is to be thrown (and every later check throws it).</summary>
    internal static ExtensionAbortedException OverCpuBudget(Invocation invocation) => Fail(invocation, ExtensionStatus.CpuBudgetExceeded,
        $"ran longer than {Stopwatch.GetElapsedTime(0, invocation.Limits.CpuTicks).TotalMilliseconds} ms of CPU");

    /// <summary>
    /// Stops the invocation running on this thread from host code (a store call made for it found it cannot go on): the
    /// returned exception is to be thrown, and every later meter check of the invocation throws it again.
    /// </summary>
    internal static ExtensionAbortedException Stop(ExtensionStatus status, string message) =>
        t_invocation is { } invocation ? Fail(invocation, status, message) : new ExtensionAbortedException(status, message);

    private static ExtensionAbortedException Fail(Invocation invocation, ExtensionStatus status, string message)
    {
        t_fuel = 0;
        return invocation.Aborted(status, message);
    }

    private static ExtensionAbortedException NoInvocation() =>
        new(ExtensionStatus.Faulted, "extension code ran outside a scheduler step");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe nuint StackPointer()
    {
        byte marker;
        return (nuint)(&marker);
    }

    /// <summary>
    /// The host blocked inside this step for <paramref name="stopwatchTicks"/> on the extension's behalf (a record read
    /// from disk synchronously): that wait is not the tenant's CPU, so it leaves the CPU budget (the time slice still
    /// ends on time, so the worker's other work is not delayed further). Host only; no-op outside a step.
    /// </summary>
    internal static void ExcludeWait(long stopwatchTicks)
    {
        if (t_invocation is { } invocation && stopwatchTicks > 0)
        {
            invocation.StepStart += stopwatchTicks;
        }
    }

    /// <summary>
    /// The host starts blocking on the extension's behalf (a record read or write completed synchronously): the watchdog
    /// does not count the thread's sleep until <see cref="EndHostWait"/> as the extension being stuck. Returns the start.
    /// </summary>
    internal static long BeginHostWait()
    {
        if (t_invocation is { } invocation)
        {
            Interlocked.Increment(ref invocation.HostWaits);
        }
        return System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <summary>Ends the host wait begun at <paramref name="started"/>; its time leaves the CPU budget (<see cref="ExcludeWait"/>).</summary>
    internal static void EndHostWait(long started)
    {
        if (t_invocation is { } invocation)
        {
            Interlocked.Increment(ref invocation.HostWaits);
        }
        ExcludeWait(System.Diagnostics.Stopwatch.GetTimestamp() - started);
    }

    /// <summary>Arms the meters of this thread for one step of an invocation (scheduler only).</summary>
    internal static void Begin(Invocation invocation, IExtensionStepStore? stepStore = null, Func<bool>? workWaiting = null)
    {
        t_invocation = invocation;
        t_stepStore = stepStore;
        t_workWaiting = workWaiting;
        t_fuel = invocation.Abort is null ? FuelQuantum : 0;
        t_depth = 0;
        t_maxDepth = invocation.Limits.MaxCallDepth;
        var sp = StackPointer();
        var budget = (nuint)invocation.Limits.StackBytes;
        t_stackLimit = sp > budget ? sp - budget : 0;
    }

    /// <summary>Disarms the meters after a step (scheduler only).</summary>
    internal static void End()
    {
        t_invocation = null;
        t_stepStore = null;
        t_workWaiting = null;
        t_fuel = 0;
        t_maxDepth = 0;
        t_stackLimit = nuint.MaxValue;
    }
}

/// <summary>
/// Stops an extension invocation: CPU, memory or stack budget spent, or a watchdog verdict.
/// Extension code cannot catch it: catch clauses that could are rejected at install, and every
/// catch handler and filter rethrows it first (<see cref="Meter.RestoreInCatch"/>).
/// </summary>
public sealed class ExtensionAbortedException : Exception
{
    /// <summary>Creates the exception with the status the invocation ends with.</summary>
    public ExtensionAbortedException(ExtensionStatus status, string message)
        : base(message) => Status = status;

    /// <summary>The status reported for the invocation.</summary>
    public ExtensionStatus Status { get; }
}
