using System.Diagnostics;

namespace Hybrid.Transport;

/// <summary>
/// Spin-then-yield waiting for polled transports: a busy spin keeps a hot ping-pong near a microsecond,
/// yielding lets other threads on a shared core run, and when both phases pass without progress the caller
/// blocks (doorbell) or naps. The phases are measured in time, not rounds, so a cheap poll (a shared-memory
/// ring) and a costly one (a DPDK port) wait equally long. Allocation-free; reset after every success.
/// </summary>
/// <remarks>
/// Measured on this project's machine kind (2 KVM vCPUs): <c>Thread.SpinWait(10)</c> takes ~550 ns and
/// <c>Stopwatch.GetTimestamp</c> 60–80 ns. A spin round of <c>SpinWait(10)</c> made a waiter notice a message
/// ~275 ns late on average, a third of the shared-memory ring's whole round trip; one <c>SpinWait(1)</c>
/// (~50–80 ns, still a <c>pause</c> for the other hyperthread) per round and a clock read only every
/// <see cref="RoundsPerClockRead"/> rounds keep the pickup delay near the cost of one poll.
/// </remarks>
internal struct Backoff
{
    /// <summary>How long to busy-spin before yielding: covers a round trip even when the peer is descheduled briefly.</summary>
    private static readonly long s_spinTicks = Stopwatch.Frequency / 2000;

    /// <summary>Spin plus yield time before the caller blocks.</summary>
    private static readonly long s_yieldTicks = Stopwatch.Frequency / 200;

    /// <summary>Spin rounds between clock reads (a clock read costs as much as a spin round); a yield round reads it every time.</summary>
    private const int RoundsPerClockRead = 64;

    private long _start;
    private int _round;
    private bool _spinning;

    /// <summary>Waits one round; false once spinning (0.5 ms) and yielding (to 5 ms) are exhausted and the caller should block.</summary>
    public bool Wait()
    {
        if (_start == 0)
        {
            _start = Stopwatch.GetTimestamp();
            _spinning = true;
        }
        else if (!_spinning || ++_round % RoundsPerClockRead == 0)
        {
            long elapsed = Stopwatch.GetTimestamp() - _start;
            if (elapsed > s_yieldTicks)
                return false;
            _spinning = elapsed < s_spinTicks;
        }
        if (_spinning)
            Thread.SpinWait(1);
        else
            Thread.Yield();
        return true;
    }

    /// <summary>True while still in the busy-spin phase (callers skip costly liveness checks then).</summary>
    public readonly bool Spinning => _start == 0 || _spinning;

    /// <summary>Starts over after progress.</summary>
    public void Reset()
    {
        _start = 0;
        _round = 0;
    }
}
