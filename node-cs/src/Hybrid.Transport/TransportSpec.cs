using System.Globalization;

namespace Hybrid.Transport;

/// <summary>
/// A transport named in one string, as the CLI takes it (<c>hybrid server --transport</c>, <c>hybrid bench
/// --transport</c>): <c>KIND:WHERE[@SERVICE]</c>.
/// <list type="bullet">
/// <item><c>shm:/tmp/hybrid-7100.sock</c> — shared-memory rings; WHERE is the Unix socket path both sides use.</item>
/// <item><c>memif:/tmp/hyb-memif.sock[@7100]</c> — DPDK <c>net_memif</c>; the node is the memif server, the client
/// the memif client of that socket; SERVICE (default 7100) is the datagram RPC service number.</item>
/// <item><c>af_packet:IFACE[@7100]</c> — DPDK <c>net_af_packet</c> on a network interface (one end of a veth pair).</item>
/// <item><c>tcp:127.0.0.1:7101</c> — length-prefixed messages over TCP (not the node's native socket port).</item>
/// </list>
/// A bare <c>shm</c> or <c>memif</c> means the default path (<see cref="DefaultShmPath"/>, <see cref="DefaultMemifSocket"/>),
/// so <c>hybrid server --transport shm</c> and <c>hybrid bench --transport shm</c> meet without naming it.
/// DPDK specs get EAL arguments for this machine kind with a per-process <c>--file-prefix</c>.
/// </summary>
/// <param name="Name">The kind as written (<c>shm</c>, <c>memif</c>, <c>af_packet</c>, <c>tcp</c>): a listener name.</param>
/// <param name="Options">Transport options to pass to <see cref="TransportFactory.Create"/>.</param>
/// <param name="Address">The address to listen at or dial.</param>
public sealed record TransportSpec(string Name, TransportOptions Options, string Address)
{
    /// <summary>The Unix socket of a bare <c>shm</c> spec.</summary>
    public const string DefaultShmPath = "/tmp/hybrid-7100.sock";

    /// <summary>The memif socket of a bare <c>memif</c> spec.</summary>
    public const string DefaultMemifSocket = "/tmp/hybrid-memif-7100.sock";

    /// <summary>The datagram service number when a DPDK spec names none.</summary>
    public const string DefaultService = "7100";

    /// <summary>EAL arguments used for DPDK specs (no hugepages, no PCI, both CPUs allowed), plus a unique file prefix.</summary>
    public static IReadOnlyList<string> EalArgs(string filePrefix) =>
        ["--no-huge", "-m", "256", "--no-pci", "--no-telemetry", "--file-prefix", filePrefix, "--lcores", "0@(0-1)", "--log-level", "lib.eal:error"];

    /// <summary>
    /// Parses <paramref name="spec"/> for the listening side (<paramref name="server"/> true: the node) or the
    /// dialling side. Throws <see cref="ArgumentException"/> with the expected forms on anything else.
    /// </summary>
    public static TransportSpec Parse(string spec, bool server)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        if (spec.Equals("shm", StringComparison.OrdinalIgnoreCase))
            spec = "shm:" + DefaultShmPath;
        else if (spec.Equals("memif", StringComparison.OrdinalIgnoreCase))
            spec = "memif:" + DefaultMemifSocket;
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || colon == spec.Length - 1)
            throw new ArgumentException($"transport '{spec}': expected shm:PATH, memif:SOCKET[@SERVICE], af_packet:IFACE[@SERVICE] or tcp:HOST:PORT");
        string kind = spec[..colon].ToLowerInvariant();
        string where = spec[(colon + 1)..];
        string prefix = string.Create(CultureInfo.InvariantCulture, $"hyb-{(server ? "node" : "client")}-{Environment.ProcessId}");
        switch (kind)
        {
            case "shm":
                return new TransportSpec(kind, new TransportOptions { Kind = TransportKind.SharedMemory }, where);
            case "tcp":
                return new TransportSpec(kind, new TransportOptions { Kind = TransportKind.Tcp }, where);
            case "memif":
            case "af_packet":
                {
                    int at = where.LastIndexOf('@');
                    string service = at >= 0 ? where[(at + 1)..] : DefaultService;
                    string target = at >= 0 ? where[..at] : where;
                    if (!ushort.TryParse(service, NumberStyles.None, CultureInfo.InvariantCulture, out _) || target.Length == 0)
                        throw new ArgumentException($"transport '{spec}': expected {kind}:{(kind == "memif" ? "SOCKET" : "IFACE")}[@SERVICE 0..65535]");
                    string vdev = kind == "memif"
                        ? $"net_memif0,role={(server ? "server" : "client")},socket={target}"
                        : $"net_af_packet0,iface={target}";
                    var options = new TransportOptions
                    {
                        Kind = TransportKind.Dpdk,
                        Dpdk = new DpdkOptions { Vdev = vdev, EalArgs = EalArgs(prefix) },
                    };
                    return new TransportSpec(kind, options, service);
                }
            default:
                throw new ArgumentException($"transport '{spec}': unknown kind '{kind}' (shm, memif, af_packet, tcp)");
        }
    }
}
