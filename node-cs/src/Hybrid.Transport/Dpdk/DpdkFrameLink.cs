using Hybrid.Transport.Datagram;

namespace Hybrid.Transport.Dpdk;

/// <summary>A DPDK port as an <see cref="IFrameLink"/>: the native shim copies frames between mbufs and our buffers.</summary>
internal sealed class DpdkFrameLink : IFrameLink
{
    private static readonly Lock s_ealGate = new();
    private static bool s_ealReady;
    private readonly HybPortHandle _port;

    public DpdkFrameLink(DpdkOptions options)
    {
        HybNative.EnsureLoaded();
        InitEalOnce(options.EalArgs);
        FrameBytes = options.FrameBytes;
        _port = HybNative.OpenPort(options.Vdev, new HybNative.PortConfig
        {
            FrameBytes = (uint)options.FrameBytes,
            RingSize = 1024,
            PoolSize = 8191,
            DropPerMillion = (uint)Math.Round(options.DropRate * 1_000_000),
        });
    }

    /// <summary>
    /// EAL initialises once per process and pins the calling thread, so it runs on a short-lived thread of its
    /// own: no application thread inherits the pinning. Later transports in the process reuse it.
    /// </summary>
    private static void InitEalOnce(IReadOnlyList<string> args)
    {
        lock (s_ealGate)
        {
            if (s_ealReady)
                return;
            Exception? failure = null;
            var thread = new Thread(() =>
            {
                try
                {
                    HybNative.InitEal(args);
                }
                catch (TransportException e)
                {
                    failure = e;
                }
            }, 1 << 20)
            { Name = "dpdk-eal-init" };
            thread.Start();
            thread.Join();
            if (failure is not null)
                throw failure;
            s_ealReady = true;
        }
    }

    public int FrameBytes { get; }

    /// <summary>True when the link is up (for memif: the peer process is connected).</summary>
    public bool LinkUp => HybNative.LinkUp(_port);

    /// <summary>The shim's counters.</summary>
    public HybNative.PortStats Stats => HybNative.Stats(_port);

    public void GetMac(Span<byte> mac) => HybNative.GetMac(_port, mac);

    public int Send(ReadOnlySpan<byte> frames, ReadOnlySpan<int> lengths, int stride) =>
        HybNative.Send(_port, frames, lengths, stride);

    public int Receive(Span<byte> frames, Span<int> lengths, int stride) =>
        HybNative.Receive(_port, frames, lengths, stride);

    public void Dispose() => _port.Dispose();
}
