using System.Runtime.InteropServices;

namespace Hybrid.Storage;

/// <summary>Kinds of operation-log entries.</summary>
internal enum LogEntryKind : byte
{
    /// <summary>A record's state after a write: key and stored value (meta + data). Replay installs it if newer.</summary>
    Record = 1,

    /// <summary>A version floor raise; <see cref="LogEntryHeader.Arg"/> is the floor.</summary>
    Floor = 2,

    /// <summary>A slot range dropped; <see cref="LogEntryHeader.SlotLo"/>..<see cref="LogEntryHeader.SlotHi"/>.</summary>
    Drop = 3,
}

/// <summary>
/// Header of every operation-log entry, followed by two length-prefixed byte strings (key, value; empty for
/// Floor and Drop). Entries hold results, not operations, so replaying one twice or out of order is harmless:
/// a record is installed only over an older version.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct LogEntryHeader
{
    public LogEntryKind Kind;
    public byte Reserved1;
    public ushort Reserved2;
    public ushort SlotLo;
    public ushort SlotHi;
    public ulong Arg;

    public const int Size = 16;
}
