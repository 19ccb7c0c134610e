using Hybrid.Transport.Datagram;

namespace Hybrid.Transport.Dpdk;

/// <summary>
/// DPDK raw frames (net_memif or net_af_packet) carrying the datagram RPC. Poll mode: the threads that wait
/// on its connections move the frames. Addresses are service numbers (<c>"7100"</c>).
/// </summary>
internal sealed class DpdkTransport(TransportOptions options)
    : DatagramTransport(new DpdkFrameLink(options.Dpdk), options, "dpdk")
{
}
