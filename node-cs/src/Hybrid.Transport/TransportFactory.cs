using Hybrid.Transport.Dpdk;
using Hybrid.Transport.SharedMemory;
using Hybrid.Transport.Tcp;

namespace Hybrid.Transport;

/// <summary>The one place a transport is chosen: by <see cref="TransportOptions.Kind"/>.</summary>
public static class TransportFactory
{
    /// <summary>Creates the configured transport. A DPDK transport starts its port here (EAL init, once per process).</summary>
    /// <exception cref="TransportException"><see cref="TransportError.Unavailable"/> when DPDK cannot start.</exception>
    public static ITransport Create(TransportOptions options)
    {
        options.Validate();
        return options.Kind switch
        {
            TransportKind.Tcp => new TcpTransport(options),
            TransportKind.SharedMemory => new ShmTransport(options),
            TransportKind.Dpdk => new DpdkTransport(options),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.Kind, "unknown transport kind"),
        };
    }
}
