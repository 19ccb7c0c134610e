using System.Runtime.CompilerServices;
using System.Text;

namespace Hybrid.Node.Resp;

/// <summary>The RESP commands this node understands.</summary>
public enum RespCommand : byte
{
    /// <summary>Not a command this node knows.</summary>
    Unknown,
    Get,
    Set,
    Del,
    Exists,
    MGet,
    MSet,
    Incr,
    IncrBy,
    Decr,
    DecrBy,
    Append,
    StrLen,
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Info,
    Command,
    Client,
    Config,
    Quit,
    Cluster,
    DbSize,
    ReadOnly,
    ReadWrite,
    FCall,
    FCallRo,
    Function,
}

/// <summary>What Redis's COMMAND reply says about one command, plus its arity for the arity check.</summary>
/// <param name="Name">Lower-case name, as Redis prints it.</param>
/// <param name="Arity">Redis arity: n = exactly n arguments (name included), -n = at least n.</param>
/// <param name="Flags">Redis command flags (write, readonly, fast...).</param>
/// <param name="FirstKey">Index of the first key argument, 0 when the command has no key.</param>
/// <param name="LastKey">Index of the last key argument (-1 = the last argument).</param>
/// <param name="KeyStep">Distance between key arguments.</param>
/// <param name="Group">Redis documentation group (string, connection, server...).</param>
/// <param name="Summary">One-line description for COMMAND DOCS.</param>
public sealed record RespCommandInfo(string Name, int Arity, string[] Flags, int FirstKey, int LastKey, int KeyStep, string Group, string Summary);

/// <summary>Maps command names (any case) to <see cref="RespCommand"/> without allocating, and describes each command.</summary>
public static class RespCommandTable
{
    private const int MaxNameLength = 16;

    private static readonly RespCommandInfo[] s_infos = BuildInfos();

    /// <summary>Every known command's description, indexed by <see cref="RespCommand"/>; [0] is <see cref="RespCommand.Unknown"/>.</summary>
    public static IReadOnlyList<RespCommandInfo> Infos => s_infos;

    /// <summary>The description of <paramref name="command"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static RespCommandInfo Info(RespCommand command) => s_infos[(int)command];

    /// <summary>True when <paramref name="argCount"/> (the name included) satisfies the command's arity.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ArityOk(RespCommand command, int argCount)
    {
        var arity = s_infos[(int)command].Arity;
        return arity >= 0 ? argCount == arity : argCount >= -arity;
    }

    /// <summary>Finds the command named <paramref name="name"/> (ASCII, case-insensitive).</summary>
    public static RespCommand Lookup(ReadOnlySpan<byte> name)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            return RespCommand.Unknown;
        }
        Span<byte> up = stackalloc byte[MaxNameLength];
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            up[i] = c is >= (byte)'a' and <= (byte)'z' ? (byte)(c - 32) : c;
        }
        var u = up[..name.Length];
        return u.Length switch
        {
            3 when u.SequenceEqual("GET"u8) => RespCommand.Get,
            3 when u.SequenceEqual("SET"u8) => RespCommand.Set,
            3 when u.SequenceEqual("DEL"u8) => RespCommand.Del,
            4 when u.SequenceEqual("MGET"u8) => RespCommand.MGet,
            4 when u.SequenceEqual("MSET"u8) => RespCommand.MSet,
            4 when u.SequenceEqual("INCR"u8) => RespCommand.Incr,
            4 when u.SequenceEqual("DECR"u8) => RespCommand.Decr,
            4 when u.SequenceEqual("PING"u8) => RespCommand.Ping,
            4 when u.SequenceEqual("ECHO"u8) => RespCommand.Echo,
            4 when u.SequenceEqual("AUTH"u8) => RespCommand.Auth,
            4 when u.SequenceEqual("INFO"u8) => RespCommand.Info,
            4 when u.SequenceEqual("QUIT"u8) => RespCommand.Quit,
            5 when u.SequenceEqual("HELLO"u8) => RespCommand.Hello,
            5 when u.SequenceEqual("FCALL"u8) => RespCommand.FCall,
            6 when u.SequenceEqual("EXISTS"u8) => RespCommand.Exists,
            6 when u.SequenceEqual("INCRBY"u8) => RespCommand.IncrBy,
            6 when u.SequenceEqual("DECRBY"u8) => RespCommand.DecrBy,
            6 when u.SequenceEqual("APPEND"u8) => RespCommand.Append,
            6 when u.SequenceEqual("STRLEN"u8) => RespCommand.StrLen,
            6 when u.SequenceEqual("SELECT"u8) => RespCommand.Select,
            6 when u.SequenceEqual("CLIENT"u8) => RespCommand.Client,
            6 when u.SequenceEqual("CONFIG"u8) => RespCommand.Config,
            6 when u.SequenceEqual("DBSIZE"u8) => RespCommand.DbSize,
            6 when u.SequenceEqual("UNLINK"u8) => RespCommand.Del,
            7 when u.SequenceEqual("COMMAND"u8) => RespCommand.Command,
            7 when u.SequenceEqual("CLUSTER"u8) => RespCommand.Cluster,
            8 when u.SequenceEqual("READONLY"u8) => RespCommand.ReadOnly,
            8 when u.SequenceEqual("FCALL_RO"u8) => RespCommand.FCallRo,
            8 when u.SequenceEqual("FUNCTION"u8) => RespCommand.Function,
            9 when u.SequenceEqual("READWRITE"u8) => RespCommand.ReadWrite,
            _ => RespCommand.Unknown,
        };
    }

    /// <summary>True when <paramref name="arg"/> equals the upper-case ASCII <paramref name="upper"/>, ignoring case.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool EqualsUpper(ReadOnlySpan<byte> arg, ReadOnlySpan<byte> upper) =>
        arg.Length == upper.Length && Ascii.EqualsIgnoreCase(arg, upper);

    private static RespCommandInfo[] BuildInfos()
    {
        string[] write = ["write", "denyoom"];
        string[] writeFast = ["write", "denyoom", "fast"];
        string[] readFast = ["readonly", "fast"];
        string[] conn = ["noscript", "loading", "stale", "fast"];
        string[] admin = ["noscript", "loading", "stale"];
        var infos = new RespCommandInfo[Enum.GetValues<RespCommand>().Length];
        infos[(int)RespCommand.Unknown] = new("unknown", 0, [], 0, 0, 0, "generic", "");
        infos[(int)RespCommand.Get] = new("get", 2, readFast, 1, 1, 1, "string", "Returns the string value of a key.");
        infos[(int)RespCommand.Set] = new("set", -3, write, 1, 1, 1, "string", "Sets the string value of a key (NX/XX; no expiry).");
        infos[(int)RespCommand.Del] = new("del", -2, ["write"], 1, -1, 1, "generic", "Deletes one or more keys.");
        infos[(int)RespCommand.Exists] = new("exists", -2, readFast, 1, -1, 1, "generic", "Determines whether one or more keys exist.");
        infos[(int)RespCommand.MGet] = new("mget", -2, readFast, 1, -1, 1, "string", "Atomically returns the string values of one or more keys.");
        infos[(int)RespCommand.MSet] = new("mset", -3, write, 1, -1, 2, "string", "Sets the string values of one or more keys.");
        infos[(int)RespCommand.Incr] = new("incr", 2, writeFast, 1, 1, 1, "string", "Increments the integer value of a key by one.");
        infos[(int)RespCommand.IncrBy] = new("incrby", 3, writeFast, 1, 1, 1, "string", "Increments the integer value of a key by a number.");
        infos[(int)RespCommand.Decr] = new("decr", 2, writeFast, 1, 1, 1, "string", "Decrements the integer value of a key by one.");
        infos[(int)RespCommand.DecrBy] = new("decrby", 3, writeFast, 1, 1, 1, "string", "Decrements a number from the integer value of a key.");
        infos[(int)RespCommand.Append] = new("append", 3, writeFast, 1, 1, 1, "string", "Appends a string to the value of a key.");
        infos[(int)RespCommand.StrLen] = new("strlen", 2, readFast, 1, 1, 1, "string", "Returns the length of a string value.");
        infos[(int)RespCommand.Ping] = new("ping", -1, ["fast"], 0, 0, 0, "connection", "Returns the server's liveliness response.");
        infos[(int)RespCommand.Echo] = new("echo", 2, ["fast"], 0, 0, 0, "connection", "Returns the given string.");
        infos[(int)RespCommand.Hello] = new("hello", -1, conn, 0, 0, 0, "connection", "Handshakes with the server (RESP2/RESP3, AUTH tenant secret).");
        infos[(int)RespCommand.Auth] = new("auth", -2, conn, 0, 0, 0, "connection", "Authenticates the connection as a tenant: AUTH tenant secret.");
        infos[(int)RespCommand.Select] = new("select", 2, conn, 0, 0, 0, "connection", "Selects the database (only 0 exists).");
        infos[(int)RespCommand.Info] = new("info", -1, admin, 0, 0, 0, "server", "Returns information and statistics about the server.");
        infos[(int)RespCommand.Command] = new("command", -1, admin, 0, 0, 0, "server", "Returns detailed information about all commands.");
        infos[(int)RespCommand.Client] = new("client", -2, admin, 0, 0, 0, "connection", "Connection commands (SETNAME, GETNAME, SETINFO, ID, INFO, LIST).");
        infos[(int)RespCommand.Config] = new("config", -2, admin, 0, 0, 0, "server", "Configuration commands (GET only).");
        infos[(int)RespCommand.Quit] = new("quit", -1, conn, 0, 0, 0, "connection", "Closes the connection.");
        infos[(int)RespCommand.Cluster] = new("cluster", -2, admin, 0, 0, 0, "cluster", "Cluster commands (SLOTS, SHARDS, KEYSLOT, INFO, MYID).");
        infos[(int)RespCommand.DbSize] = new("dbsize", 1, ["readonly", "fast"], 0, 0, 0, "server", "Returns the number of keys of the tenant.");
        infos[(int)RespCommand.ReadOnly] = new("readonly", 1, conn, 0, 0, 0, "cluster", "Accepted for cluster clients; no replicas yet.");
        infos[(int)RespCommand.ReadWrite] = new("readwrite", 1, conn, 0, 0, 0, "cluster", "Accepted for cluster clients.");
        infos[(int)RespCommand.FCall] = new("fcall", -3, ["noscript", "stale", "skip_monitor", "may_replicate", "no_mandatory_keys"], 0, 0, 0, "scripting",
            "Invokes the tenant's extension: FCALL name numkeys [key ...] [arg ...] (keys and args are passed concatenated).");
        infos[(int)RespCommand.FCallRo] = new("fcall_ro", -3, ["noscript", "stale", "skip_monitor", "no_mandatory_keys"], 0, 0, 0, "scripting",
            "Invokes the tenant's extension (same as FCALL here: extensions are not split into read-only ones).");
        infos[(int)RespCommand.Function] = new("function", -2, ["noscript"], 0, 0, 0, "scripting",
            "FUNCTION LIST: the tenant's installed extensions (install them with hybrid ext install).");
        return infos;
    }
}
