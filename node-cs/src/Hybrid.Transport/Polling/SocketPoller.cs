using System.Diagnostics;
using System.Net.Sockets;
using Hybrid.Transport.Dpdk;

namespace Hybrid.Transport.Polling;

/// <summary>
/// Readiness events of kernel sockets, delivered on one thread of its own: an epoll set (edge-triggered) behind
/// <c>hyb_poller_*</c> of libhyb_transport. The node's socket front ends use it instead of .NET's socket engine so a
/// request costs one receive and one send (<see cref="NonBlockingSocket"/>), with no extra receive that finds
/// nothing before the socket is armed again, and the thread that saw the event can run the request at once.
/// </summary>
/// <remarks>
/// Edge-triggered: an event says something changed since the owner last looked. The owner reads until a short read
/// or would-block, sends until would-block, and gets a new event when more bytes arrive or room frees up. Events
/// can name a socket removed a moment before (they were collected by the same wait); owners tell them apart by
/// token.
/// </remarks>
public sealed class SocketPoller : IDisposable
{
    private readonly nint _poller;
    private readonly Action<ulong, PollEvents> _onEvent;
    private readonly long _spinTicks;
    private readonly int _cpu;
    private readonly Func<bool>? _spinWhen;
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _disposed;

    /// <summary>
    /// Creates the poller and starts its thread, which calls <paramref name="onEvent"/> with the token of every
    /// socket that became readable, writable or hung up, and what happened. <paramref name="stackBytes"/>: the thread's stack (0 = the
    /// default); a handler that runs requests inline needs what a worker needs. <paramref name="spin"/>: how long the
    /// thread keeps looking for events (without blocking) after a batch before it sleeps in the kernel; zero = sleep at
    /// once. <paramref name="cpu"/>: the one CPU the thread runs on (-1: the kernel places it; the caller checked that
    /// this process may use it). <paramref name="spinWhen"/>, asked after each batch: false sleeps at once instead of
    /// spinning (null: always spin).
    /// </summary>
    public SocketPoller(string name, Action<ulong, PollEvents> onEvent, int stackBytes = 0, TimeSpan spin = default, int cpu = -1, Func<bool>? spinWhen = null)
    {
        _cpu = cpu;
        _spinWhen = spinWhen;
        ArgumentOutOfRangeException.ThrowIfLessThan(spin, TimeSpan.Zero);
        HybNative.EnsureLoaded();
        _poller = HybNative.CreatePoller();
        _onEvent = onEvent;
        _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
        _thread = new Thread(Run, stackBytes) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>
    /// True when libhyb_transport (with the poller, ABI 2 or later) can be loaded; otherwise false and why, e.g.
    /// "libhyb_transport.so not found". Callers fall back to .NET's socket engine.
    /// </summary>
    public static bool IsAvailable(out string? reason)
    {
        try
        {
            HybNative.EnsureLoaded();
            reason = null;
            return true;
        }
        catch (TransportException e)
        {
            reason = e.Message;
            return false;
        }
    }

    /// <summary>Events handled so far (read racily; for tests and metrics).</summary>
    public long Events { get; private set; }

    /// <summary>Starts watching <paramref name="socket"/> under <paramref name="token"/> (any value but <see cref="ulong.MaxValue"/>).</summary>
    public void Add(Socket socket, ulong token) => HybNative.AddToPoller(_poller, Descriptor(socket), token);

    /// <summary>Stops watching <paramref name="socket"/> (call before closing it); false when it was not watched.</summary>
    public bool Remove(Socket socket) => HybNative.RemoveFromPoller(_poller, Descriptor(socket));

    /// <summary>The socket's file descriptor, for <see cref="NonBlockingSocket"/>.</summary>
    public static int Descriptor(Socket socket) => (int)socket.SafeHandle.DangerousGetHandle();

    private void Run()
    {
        Span<HybNative.PollEvent> events = stackalloc HybNative.PollEvent[HybNative.PollMaxEvents];
        if (_cpu >= 0)
            HybNative.PinThread(0, [_cpu]);
        while (!_stopping)
        {
            int n = _spinTicks > 0 && (_spinWhen is null || _spinWhen()) ? Spin(events) : 0;
            if (n == 0)
                n = HybNative.WaitPoller(_poller, events, -1);
            for (int i = 0; i < n; i++)
                _onEvent(events[i].Token, (PollEvents)events[i].Events);
            Events += n;
        }
    }

    /// <summary>
    /// Looks for events without blocking until some arrive or the spin time is up. A thread that sleeps after every
    /// batch must be woken for the next request, and the waker (the client's send, on its own core) pays for that
    /// wake-up; under steady load the next event is usually microseconds away.
    /// </summary>
    private int Spin(Span<HybNative.PollEvent> events)
    {
        long until = Stopwatch.GetTimestamp() + _spinTicks;
        int n;
        do
        {
            n = HybNative.WaitPoller(_poller, events, 0);
        }
        while (n == 0 && !_stopping && Stopwatch.GetTimestamp() < until);
        return n;
    }

    /// <summary>Stops the thread (after the current batch of events) and frees the epoll set; sockets stay open.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping = true;
        HybNative.WakePoller(_poller);
        if (Thread.CurrentThread != _thread)
            _thread.Join();
        HybNative.ClosePoller(_poller);
    }
}

/// <summary>What a <see cref="SocketPoller"/> event reports (<c>HYB_POLL_*</c>).</summary>
[Flags]
public enum PollEvents : uint
{
    /// <summary>Nothing.</summary>
    None = 0,

    /// <summary>Input arrived (or the end of it).</summary>
    In = 0x1,

    /// <summary>Room to send again.</summary>
    Out = 0x4,

    /// <summary>An error is pending (a reset).</summary>
    Error = 0x8,

    /// <summary>
    /// Hung up, or the peer shut down its side: no more input will come, so a short read no longer proves the input
    /// drained (the end of stream is reported by the next receive, with no new event).
    /// </summary>
    HangUp = 0x10,
}

/// <summary>
/// Non-blocking receive and send on a socket's descriptor (<c>hyb_sock_*</c>), for owners of sockets watched by a
/// <see cref="SocketPoller"/>. A reset peer or any other failure is a <see cref="SocketException"/>.
/// </summary>
public static class NonBlockingSocket
{
    /// <summary>Bytes received into <paramref name="buffer"/>; 0 at end of stream; -1 when nothing is there yet.</summary>
    public static int Receive(int descriptor, Span<byte> buffer) => HybNative.Receive(descriptor, buffer);

    /// <summary>Bytes of <paramref name="buffer"/> taken by the kernel (maybe fewer than all); -1 when there is no room.</summary>
    public static int Send(int descriptor, ReadOnlySpan<byte> buffer) => HybNative.Send(descriptor, buffer);
}
