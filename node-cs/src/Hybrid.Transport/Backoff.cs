namespace Hybrid.Transport;

/// <summary>
/// Spin-then-yield waiting for polled transports: a short busy spin keeps a hot ping-pong under a microsecond,
/// yielding lets other threads on a shared core run, and when both phases pass without progress the caller
/// blocks (doorbell) or sleeps. Allocation-free; reset after every success.
/// </summary>
internal struct Backoff
{
    /// <summary>Busy-spin rounds (each a few dozen cycles): about 20–50 µs in all.</summary>
    private const int SpinRounds = 2000;

    /// <summary><see cref="Thread.Yield"/> rounds after the spin: roughly a millisecond when the core is idle.</summary>
    private const int YieldRounds = 2000;

    private int _round;

    /// <summary>Waits one round; false once spinning and yielding are exhausted and the caller should block.</summary>
    public bool Wait()
    {
        if (_round < SpinRounds)
            Thread.SpinWait(10);
        else if (_round < SpinRounds + YieldRounds)
            Thread.Yield();
        else
            return false;
        _round++;
        return true;
    }

    /// <summary>True while still in the busy-spin phase (callers skip costly liveness checks then).</summary>
    public readonly bool Spinning => _round < SpinRounds;

    /// <summary>Starts over after progress.</summary>
    public void Reset() => _round = 0;
}
