using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;

namespace Hybrid.Transport.Dpdk;

/// <summary>
/// Every P/Invoke of the project, one-to-one with <c>transport-native/include/hyb_transport.h</c>
/// (Architecture Invariant: only this class declares native calls). Blittable arguments only; statuses become
/// <see cref="TransportException"/>s in <see cref="Check"/> and nowhere else.
/// </summary>
internal static unsafe partial class HybNative
{
    private const string Library = "hyb_transport";

    /// <summary>Must equal HYB_ABI_VERSION of the header this file mirrors.</summary>
    public const uint AbiVersion = 4;

    /// <summary>hyb_status_t.</summary>
    public enum Status
    {
        Ok = 0,
        EInval = -1,
        EEal = -2,
        EState = -3,
        ENoDev = -4,
        ENoMem = -5,
        EPort = -6,
        ETooBig = -7,
        EAgain = -8,
        EClosed = -9,
        ESys = -10,
    }

    /// <summary>hyb_poll_event_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollEvent
    {
        public ulong Token;
        public uint Events;
        public uint Reserved;
    }

    /// <summary>HYB_POLL_MAX_EVENTS.</summary>
    public const int PollMaxEvents = 256;

    /// <summary>hyb_port_config_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PortConfig
    {
        public uint FrameBytes;
        public uint RingSize;
        public uint PoolSize;
        public uint DropPerMillion;
    }

    /// <summary>hyb_port_stats_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PortStats
    {
        public ulong TxFrames;
        public ulong RxFrames;
        public ulong TxInjectedDrops;
        public ulong TxRingFull;
        public ulong RxOversize;
    }

    static HybNative() => NativeLibrary.SetDllImportResolver(typeof(HybNative).Assembly, Resolve);

    [LibraryImport(Library, EntryPoint = "hyb_abi_version")]
    public static partial uint AbiVersionOfLibrary();

    [LibraryImport(Library, EntryPoint = "hyb_status_name")]
    private static partial byte* StatusName(int status);

    [LibraryImport(Library, EntryPoint = "hyb_eal_init")]
    private static partial int EalInit(int argc, byte** argv);

    [LibraryImport(Library, EntryPoint = "hyb_port_open", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int PortOpen(string vdev, PortConfig* config, out nint port);

    [LibraryImport(Library, EntryPoint = "hyb_port_mac")]
    private static partial int PortMac(HybPortHandle port, byte* mac);

    [LibraryImport(Library, EntryPoint = "hyb_port_link_up")]
    private static partial int PortLinkUp(HybPortHandle port);

    [LibraryImport(Library, EntryPoint = "hyb_port_send")]
    private static partial int PortSend(HybPortHandle port, byte* frames, int* lengths, uint count, uint stride);

    [LibraryImport(Library, EntryPoint = "hyb_port_recv")]
    private static partial int PortRecv(HybPortHandle port, byte* frames, int* lengths, uint max, uint stride);

    [LibraryImport(Library, EntryPoint = "hyb_port_stats")]
    private static partial int PortStatsOf(HybPortHandle port, PortStats* stats);

    /// <summary>Releases a port; called only by <see cref="HybPortHandle.ReleaseHandle"/>.</summary>
    [LibraryImport(Library, EntryPoint = "hyb_port_close")]
    public static partial void PortClose(nint port);

    [LibraryImport(Library, EntryPoint = "hyb_poller_create", SetLastError = true)]
    private static partial int PollerCreate(out nint poller);

    [LibraryImport(Library, EntryPoint = "hyb_poller_add", SetLastError = true)]
    private static partial int PollerAdd(nint poller, int fd, ulong token);

    [LibraryImport(Library, EntryPoint = "hyb_poller_remove", SetLastError = true)]
    private static partial int PollerRemove(nint poller, int fd);

    [LibraryImport(Library, EntryPoint = "hyb_poller_wait", SetLastError = true)]
    private static partial int PollerWait(nint poller, PollEvent* events, int max, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "hyb_poller_wake", SetLastError = true)]
    private static partial int PollerWake(nint poller);

    [LibraryImport(Library, EntryPoint = "hyb_poller_close")]
    private static partial void PollerClose(nint poller);

    [LibraryImport(Library, EntryPoint = "hyb_sock_recv", SetLastError = true)]
    private static partial long SockRecv(int fd, byte* buffer, ulong length);

    [LibraryImport(Library, EntryPoint = "hyb_sock_send", SetLastError = true)]
    private static partial long SockSend(int fd, byte* buffer, ulong length);

    [LibraryImport(Library, EntryPoint = "hyb_thread_background", SetLastError = true)]
    private static partial int ThreadBackground(int background);

    [LibraryImport(Library, EntryPoint = "hyb_thread_pin", SetLastError = true)]
    private static partial int ThreadPin(int tid, int* cpus, int count);

    [LibraryImport(Library, EntryPoint = "hyb_thread_id")]
    private static partial int ThreadIdOfCaller();

    [LibraryImport(Library, EntryPoint = "hyb_fsync_dir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int FsyncDir(string path);

    /// <summary>Flushes a directory's entries to disk; false with the errno when the kernel refused.</summary>
    public static bool SyncDirectory(string path, out int errno)
    {
        bool ok = FsyncDir(path) == 0;
        errno = ok ? 0 : Marshal.GetLastPInvokeError();
        return ok;
    }

    /// <summary>
    /// Moves the calling thread to background CPU priority (SCHED_IDLE) or back to normal; false with the errno when
    /// the kernel refused (leaving SCHED_IDLE needs CAP_SYS_NICE).
    /// </summary>
    public static bool SetThreadBackground(bool background, out int errno)
    {
        bool ok = ThreadBackground(background ? 1 : 0) == 0;
        errno = ok ? 0 : Marshal.GetLastPInvokeError();
        return ok;
    }

    /// <summary>Lets thread <paramref name="tid"/> (0 = the caller) run only on <paramref name="cpus"/>.</summary>
    public static void PinThread(int tid, ReadOnlySpan<int> cpus)
    {
        fixed (int* p = cpus)
            CheckSystem(ThreadPin(tid, p, cpus.Length), $"hyb_thread_pin(CPUs {string.Join(',', cpus.ToArray())})");
    }

    /// <summary>The calling thread's kernel id (gettid).</summary>
    public static int ThreadId() => ThreadIdOfCaller();

    /// <summary>Creates an epoll set with its wake-up eventfd.</summary>
    public static nint CreatePoller()
    {
        CheckSystem(PollerCreate(out nint poller), "hyb_poller_create");
        return poller;
    }

    /// <summary>Watches <paramref name="fd"/> (edge-triggered) under <paramref name="token"/>.</summary>
    public static void AddToPoller(nint poller, int fd, ulong token) => CheckSystem(PollerAdd(poller, fd, token), "hyb_poller_add");

    /// <summary>Stops watching <paramref name="fd"/>; false when it was not watched (already closed).</summary>
    public static bool RemoveFromPoller(nint poller, int fd) => PollerRemove(poller, fd) == 0;

    /// <summary>Waits for events (at most <see cref="PollMaxEvents"/>); 0 on timeout or wake-up.</summary>
    public static int WaitPoller(nint poller, Span<PollEvent> events, int timeoutMs)
    {
        fixed (PollEvent* p = events)
            return CheckSystem(PollerWait(poller, p, Math.Min(events.Length, PollMaxEvents), timeoutMs), "hyb_poller_wait");
    }

    /// <summary>Makes the poller's current or next wait return.</summary>
    public static void WakePoller(nint poller) => CheckSystem(PollerWake(poller), "hyb_poller_wake");

    /// <summary>Frees the poller (its sockets stay open).</summary>
    public static void ClosePoller(nint poller) => PollerClose(poller);

    /// <summary>Non-blocking receive: bytes read, 0 at end of stream, -1 when it would block.</summary>
    public static int Receive(int fd, Span<byte> buffer)
    {
        long n;
        fixed (byte* p = buffer)
            n = SockRecv(fd, p, (ulong)buffer.Length);
        return n >= 0 ? (int)n : SocketFailure(n, "recv");
    }

    /// <summary>Non-blocking send without SIGPIPE: bytes taken, -1 when it would block.</summary>
    public static int Send(int fd, ReadOnlySpan<byte> buffer)
    {
        long n;
        fixed (byte* p = buffer)
            n = SockSend(fd, p, (ulong)buffer.Length);
        return n >= 0 ? (int)n : SocketFailure(n, "send");
    }

    private static int SocketFailure(long status, string what) => (Status)status switch
    {
        Status.EAgain => -1,
        Status.EClosed => throw new SocketException((int)SocketError.ConnectionReset),
        Status.ESys => throw new SocketException((int)SocketError.SocketError, $"{what}: errno {Marshal.GetLastPInvokeError()}"),
        _ => throw new SocketException((int)SocketError.SocketError, $"{what}: {(Status)status}"),
    };

    /// <summary><see cref="Check"/> for the calls that leave errno set on HYB_ESYS.</summary>
    private static int CheckSystem(int status, string what)
    {
        if (status == (int)Status.ESys)
            throw new TransportException(TransportError.Unavailable, $"{what} failed: errno {Marshal.GetLastPInvokeError()}");
        return Check(status, what);
    }

    /// <summary>
    /// Turns a negative status into a <see cref="TransportException"/>; returns non-negative values unchanged.
    /// <paramref name="hint"/> replaces the status's general hint when the caller knows better.
    /// </summary>
    public static int Check(int status, string what, string? hint = null)
    {
        if (status >= 0)
            return status;
        string name = Marshal.PtrToStringUTF8((nint)StatusName(status)) ?? "HYB_UNKNOWN";
        hint ??= (Status)status switch
        {
            Status.EEal => " (EAL refused to start: are we root? are the EAL arguments valid? see stderr)",
            Status.EState => " (EAL initialises once per process)",
            Status.ENoDev => " (the vdev did not produce a port: driver missing or bad parameters)",
            _ => "",
        };
        throw new TransportException(TransportError.Unavailable, $"{what} failed with {name}{hint}");
    }

    /// <summary>Loads the library and checks its ABI version; throws a clear error when it is missing or stale.</summary>
    public static void EnsureLoaded()
    {
        uint version;
        try
        {
            version = AbiVersionOfLibrary();
        }
        catch (DllNotFoundException e)
        {
            throw new TransportException(TransportError.Unavailable,
                "libhyb_transport.so not found: build transport-native (dotnet fsi build.fsx build) or set HYB_TRANSPORT_LIB", e);
        }
        if (version != AbiVersion)
            throw new TransportException(TransportError.Unavailable, $"libhyb_transport ABI {version}, this assembly needs {AbiVersion}");
    }

    /// <summary>Initialises EAL with <paramref name="args"/> (program name prepended).</summary>
    public static void InitEal(IReadOnlyList<string> args)
    {
        var all = new List<string> { "hybrid" };
        all.AddRange(args);
        var handles = new List<GCHandle>(all.Count);
        var argv = new byte*[all.Count + 1];
        try
        {
            for (int i = 0; i < all.Count; i++)
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(all[i] + "\0");
                var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
                handles.Add(handle);
                argv[i] = (byte*)handle.AddrOfPinnedObject();
            }
            fixed (byte** p = argv)
                Check(EalInit(all.Count, p), "hyb_eal_init(" + string.Join(' ', args) + ")");
        }
        finally
        {
            foreach (var handle in handles)
                handle.Free();
        }
    }

    public static HybPortHandle OpenPort(string vdev, PortConfig config)
    {
        int status = PortOpen(vdev, &config, out nint raw);
        // The one af_packet failure a correct command line still meets: see VethPair.
        string? hint = status == (int)Status.ENoDev && vdev.StartsWith("net_af_packet", StringComparison.Ordinal)
            ? ": af_packet could not open the interface. Is it there and up? If the EAL log above says 'could not set " +
              "PACKET_FANOUT ... Invalid argument', another af_packet process in this network namespace uses the same fanout " +
              "group id, which DPDK derives from (pid ^ ifindex) & 0xffff: start this process again (a new pid), or give every " +
              "af_packet interface an ifindex with the same low 16 bits ('ip link add NAME index K*65536+C ...') so that no " +
              "two processes' ids can collide"
            : null;
        Check(status, $"hyb_port_open({vdev})", hint);
        return new HybPortHandle(raw);
    }

    public static void GetMac(HybPortHandle port, Span<byte> mac)
    {
        fixed (byte* p = mac)
            Check(PortMac(port, p), "hyb_port_mac");
    }

    public static bool LinkUp(HybPortHandle port) => Check(PortLinkUp(port), "hyb_port_link_up") == 1;

    public static int Send(HybPortHandle port, ReadOnlySpan<byte> frames, ReadOnlySpan<int> lengths, int stride)
    {
        fixed (byte* f = frames)
        fixed (int* l = lengths)
            return Check(PortSend(port, f, l, (uint)lengths.Length, (uint)stride), "hyb_port_send");
    }

    public static int Receive(HybPortHandle port, Span<byte> frames, Span<int> lengths, int stride)
    {
        int max = Math.Min(lengths.Length, frames.Length / stride);
        fixed (byte* f = frames)
        fixed (int* l = lengths)
            return Check(PortRecv(port, f, l, (uint)max, (uint)stride), "hyb_port_recv");
    }

    public static PortStats Stats(HybPortHandle port)
    {
        PortStats stats;
        Check(PortStatsOf(port, &stats), "hyb_port_stats");
        return stats;
    }

    /// <summary>
    /// Finds libhyb_transport.so: <c>HYB_TRANSPORT_LIB</c>, then beside the assembly, then
    /// <c>transport-native/build/</c> in any parent folder (a checkout after <c>build.fsx build</c>).
    /// </summary>
    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library)
            return 0;
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("HYB_TRANSPORT_LIB") is { Length: > 0 } explicitPath)
            candidates.Add(explicitPath);
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "libhyb_transport.so"));
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            candidates.Add(Path.Combine(dir.FullName, "transport-native", "build", "libhyb_transport.so"));
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out nint handle))
                return handle;
        }
        return 0;
    }
}
