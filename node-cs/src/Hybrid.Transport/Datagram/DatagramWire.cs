using System.Buffers.Binary;

namespace Hybrid.Transport.Datagram;

/// <summary>Frame kinds of the datagram RPC (docs/transport.md, "Datagram RPC").</summary>
internal enum FrameKind : byte
{
    Hello = 1,
    HelloAck = 2,
    Request = 3,
    Reply = 4,
    Goodbye = 5,
    GoodbyeAck = 6,
    KeepAlive = 7,
    Reset = 8,
}

/// <summary>
/// The frame layout, all little-endian after the Ethernet header:
/// <c>[dst mac 6][src mac 6][ethertype 0x88B5 2]</c> then
/// <c>0 u8 kind · 1 u8 version · 2 u16 service · 4 u32 seq · 8 u64 session · 16 u32 message length ·
/// 20 u16 fragment index · 22 u16 fragment count · 24 payload</c>.
/// </summary>
internal readonly ref struct DatagramFrame
{
    /// <summary>IEEE "local experimental" ethertype: never routed, ignored by every kernel stack.</summary>
    public const ushort EtherType = 0x88B5;

    public const byte Version = 1;
    public const int EthernetBytes = 14;
    public const int HeaderBytes = EthernetBytes + 24;

    private readonly ReadOnlySpan<byte> _frame;

    private DatagramFrame(ReadOnlySpan<byte> frame) => _frame = frame;

    /// <summary>Parses a received frame; false for anything that is not ours (other ethertypes, other versions, runts).</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out DatagramFrame parsed)
    {
        parsed = new DatagramFrame(frame);
        return frame.Length >= HeaderBytes &&
               BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == EtherType &&
               frame[EthernetBytes + 1] == Version;
    }

    public ReadOnlySpan<byte> SourceMac => _frame.Slice(6, 6);

    public FrameKind Kind => (FrameKind)_frame[EthernetBytes];

    public ushort Service => BinaryPrimitives.ReadUInt16LittleEndian(_frame[(EthernetBytes + 2)..]);

    public uint Seq => BinaryPrimitives.ReadUInt32LittleEndian(_frame[(EthernetBytes + 4)..]);

    public ulong Session => BinaryPrimitives.ReadUInt64LittleEndian(_frame[(EthernetBytes + 8)..]);

    public int MessageLength => BinaryPrimitives.ReadInt32LittleEndian(_frame[(EthernetBytes + 16)..]);

    public int FragmentIndex => BinaryPrimitives.ReadUInt16LittleEndian(_frame[(EthernetBytes + 20)..]);

    public int FragmentCount => BinaryPrimitives.ReadUInt16LittleEndian(_frame[(EthernetBytes + 22)..]);

    public ReadOnlySpan<byte> Payload => _frame[HeaderBytes..];

    /// <summary>Writes a header into <paramref name="frame"/> (at least <see cref="HeaderBytes"/> long).</summary>
    public static void Write(Span<byte> frame, ReadOnlySpan<byte> dstMac, ReadOnlySpan<byte> srcMac, FrameKind kind,
        ushort service, uint seq, ulong session, int messageLength, int fragmentIndex, int fragmentCount)
    {
        dstMac.CopyTo(frame);
        srcMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], EtherType);
        var h = frame[EthernetBytes..];
        h[0] = (byte)kind;
        h[1] = Version;
        BinaryPrimitives.WriteUInt16LittleEndian(h[2..], service);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], seq);
        BinaryPrimitives.WriteUInt64LittleEndian(h[8..], session);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], messageLength);
        BinaryPrimitives.WriteUInt16LittleEndian(h[20..], (ushort)fragmentIndex);
        BinaryPrimitives.WriteUInt16LittleEndian(h[22..], (ushort)fragmentCount);
    }
}
