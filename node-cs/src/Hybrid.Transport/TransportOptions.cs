namespace Hybrid.Transport;

/// <summary>Which transport carries the messages.</summary>
public enum TransportKind
{
    /// <summary>Kernel TCP with a 4-byte length prefix per message.</summary>
    Tcp,

    /// <summary>Two single-producer/single-consumer rings in a memory-mapped file; same host only.</summary>
    SharedMemory,

    /// <summary>DPDK raw Ethernet frames (net_memif or net_af_packet) carrying the datagram RPC.</summary>
    Dpdk,
}

/// <summary>
/// Configuration of a transport. The node and the client read it from their own configuration and pass it to
/// <see cref="TransportFactory.Create"/>; nothing else chooses a transport.
/// </summary>
public sealed record TransportOptions
{
    /// <summary>The transport to create.</summary>
    public TransportKind Kind { get; init; } = TransportKind.Tcp;

    /// <summary>Largest message either side may send; must cover the protocol's largest frame.</summary>
    public int MaxMessageBytes { get; init; } = 4 << 20;

    /// <summary>Bytes of each shared-memory ring (one per direction); a power of two, at least 64 KiB. Larger messages are streamed through in chunks.</summary>
    public int ShmRingBytes { get; init; } = 1 << 20;

    /// <summary>How long a dial waits for the listener's answer.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>DPDK settings, read only when <see cref="Kind"/> is <see cref="TransportKind.Dpdk"/>.</summary>
    public DpdkOptions Dpdk { get; init; } = new();

    /// <summary>Parses <c>tcp</c>, <c>shm</c> or <c>dpdk</c> (case-insensitive).</summary>
    public static TransportKind ParseKind(string name) => name.ToLowerInvariant() switch
    {
        "tcp" => TransportKind.Tcp,
        "shm" or "sharedmemory" => TransportKind.SharedMemory,
        "dpdk" => TransportKind.Dpdk,
        _ => throw new ArgumentException($"unknown transport '{name}' (expected tcp, shm or dpdk)", nameof(name)),
    };

    /// <summary>Throws when a setting is out of range.</summary>
    public void Validate()
    {
        if (MaxMessageBytes is < 1 or > (1 << 30))
            throw new ArgumentOutOfRangeException(nameof(MaxMessageBytes), MaxMessageBytes, "must be 1 B .. 1 GiB");
        if (ShmRingBytes < (64 << 10) || (ShmRingBytes & (ShmRingBytes - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(ShmRingBytes), ShmRingBytes, "must be a power of two >= 64 KiB");
        if (Kind == TransportKind.Dpdk)
            Dpdk.Validate();
    }
}

/// <summary>
/// DPDK settings. One DPDK transport owns one port (one virtual device) in its process; EAL initialises once
/// per process, so a process hosts at most one DPDK transport.
/// </summary>
public sealed record DpdkOptions
{
    /// <summary>
    /// EAL arguments (without the program name), e.g. <c>--no-huge -m 256 --no-pci --file-prefix hyb1 --lcores 0@(0-1)</c>.
    /// Each process needs its own <c>--file-prefix</c>.
    /// </summary>
    public IReadOnlyList<string> EalArgs { get; init; } = ["--no-huge", "-m", "256", "--no-pci", "--lcores", "0@(0-1)"];

    /// <summary>
    /// The virtual device, e.g. <c>net_memif0,role=server,socket=/run/hyb.sock</c> or
    /// <c>net_af_packet0,iface=veth0</c>. Exactly one port results.
    /// </summary>
    public string Vdev { get; init; } = "";

    /// <summary>Largest Ethernet frame (without FCS) sent on the port.</summary>
    public int FrameBytes { get; init; } = 1514;

    /// <summary>Probability (0..1) that the native shim drops a frame it was asked to send: fault injection for tests.</summary>
    public double DropRate { get; init; }

    /// <summary>A request without a whole reply after this long is sent again.</summary>
    public TimeSpan RetransmitTimeout { get; init; } = TimeSpan.FromMilliseconds(2);

    /// <summary>A peer silent for this long (no reply, no keepalive) is declared gone.</summary>
    public TimeSpan PeerTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Throws when a setting is out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Vdev))
            throw new ArgumentException("DPDK needs a vdev, e.g. net_memif0,role=server,socket=/run/hyb.sock", nameof(Vdev));
        if (FrameBytes is < 256 or > 9000)
            throw new ArgumentOutOfRangeException(nameof(FrameBytes), FrameBytes, "must be 256..9000");
        if (DropRate is < 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(DropRate), DropRate, "must be in [0, 1)");
        if (RetransmitTimeout <= TimeSpan.Zero || PeerTimeout <= RetransmitTimeout)
            throw new ArgumentOutOfRangeException(nameof(PeerTimeout), PeerTimeout, "need 0 < RetransmitTimeout < PeerTimeout");
    }
}
