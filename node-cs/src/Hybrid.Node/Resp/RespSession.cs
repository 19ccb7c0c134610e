using System.Text;
using Hybrid.Node.Hosting;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// The protocol state of one RESP connection: parses commands from the receive buffer, executes them
/// against the worker's <see cref="IKvSession"/> under the connection's tenant, and appends the replies
/// to the output buffer it is given. Transport-agnostic: the node's worker (<see cref="RespFrontEnd"/>)
/// owns the socket, feeds received bytes to <see cref="Process"/> and sends the output once per batch.
/// </summary>
/// <remarks>
/// Lifecycle of a request: bytes arrive → <see cref="Process"/> → <see cref="RespParser.TryParse"/> records the
/// arguments as slices of the receive buffer → <see cref="RespCommandTable.Lookup"/> → arity, AUTH and slot checks →
/// one storage call → the reply is appended to the output. A whole pipeline is processed before one send.
/// A storage call that goes pending (record on disk) parks the connection: <see cref="Process"/> returns
/// <see cref="ProcessOutcome.Parked"/>, the host hands the result to <see cref="OnCompleted(in StoreResult, ReadOnlySpan{byte}, FrameBuffer)"/>,
/// sends, and calls <see cref="Process"/> again with the input left (a multi-key command resumes at its next key).
/// WARNING: nothing on that path may allocate per request; rare commands (INFO, COMMAND, errors) may.
/// Not thread-safe: one connection is served by one thread at a time.
/// </remarks>
public sealed partial class RespSession : IDisposable
{
    /// <summary>The table RESP keys live in (one keyspace per tenant, like Redis db 0).</summary>
    public const uint RespTable = 0;

    private readonly RespServerContext _context;
    private readonly RespParser _parser;
    private RespTenant? _tenant;
    private IKvSession _kv = null!;
    private ulong _pendingContext;
    private string? _clientName;
    private string? _libName;
    private string? _libVersion;
    private readonly long _openedTicks = System.Diagnostics.Stopwatch.GetTimestamp();
    private long _lastActive = System.Diagnostics.Stopwatch.GetTimestamp();
    private long _commands;
    private RespServerContext.TenantCounts? _counts;

    /// <summary>Creates the state of a new connection (counted in INFO clients until <see cref="Dispose"/>).</summary>
    public RespSession(RespServerContext context)
    {
        _context = context;
        _parser = new RespParser(context.Limits);
        ClientId = context.NextClientId();
        context.ConnectionOpened(this);
        // As the native protocol: the default tenant without AUTH only while it has no secret (an operator who gave it
        // one meant it to be needed; RESP skipped it and served the tenant to anyone on the machine).
        if (!context.RequireAuth && context.Tenants.DefaultTenant is { } open)
        {
            Become(open);
        }
    }

    /// <summary>The reply writer (bound to the output buffer of the current call).</summary>
    public RespWriter Output { get; } = new(s_unbound);

    private static readonly FrameBuffer s_unbound = new(1);

    /// <summary>True after QUIT or a protocol violation: send the output, then close the connection.</summary>
    public bool ShouldClose { get; private set; }

    /// <summary>Failed AUTHs (or HELLO ... AUTH) in a row after which a connection is closed, its last error sent.</summary>
    public const int MaxFailedAuths = 3;

    private int _failedAuths;

    /// <summary>The tenant a single-argument <c>AUTH secret</c> authenticates (Redis's default user).</summary>
    public const string DefaultTenantName = "default";

    /// <summary>Commands executed by this connection so far (for per-batch metrics).</summary>
    public long CommandCount { get; private set; }

    /// <summary>This connection's id (CLIENT ID, HELLO).</summary>
    public long ClientId { get; }

    /// <summary>The client's address (CLIENT LIST <c>addr</c>), when the connection has one.</summary>
    public string? RemoteAddress { get; set; }

    /// <summary>
    /// When the connection last sent commands (<see cref="System.Diagnostics.Stopwatch"/> ticks; CLIENT LIST
    /// <c>idle</c>): set by the host with the time it already took for the call, so the request path reads no clock for it.
    /// </summary>
    public long LastActive
    {
        get => Volatile.Read(ref _lastActive);
        set => Volatile.Write(ref _lastActive, value);
    }

    /// <summary>The authenticated tenant, or null while AUTH is still required.</summary>
    public RespTenant? Tenant => _tenant;

    /// <summary>
    /// The slots owned in the view of the worker running this call (set per call by the host): in a cluster, a key
    /// outside them is not executed. <see cref="Hosting.OwnedSlots.All"/> outside a cluster.
    /// </summary>
    public OwnedSlots OwnedSlots { get; set; } = OwnedSlots.All;

    /// <summary>Quota admission for commands with keys (null: no quotas). Charged once per command, never on a resumed one.</summary>
    public IRespAdmission? Admission { get; set; }

    /// <summary>Raised after AUTH or HELLO AUTH changed the tenant (the node mirrors it into its connection context).</summary>
    public Action<RespTenant>? TenantChanged { get; set; }

    /// <summary>True when a write was executed since the last <see cref="TakeWroteFlag"/> (Sync durability waits for it).</summary>
    public bool WroteSinceFlush { get; private set; }

    /// <summary>Returns and clears <see cref="WroteSinceFlush"/>.</summary>
    public bool TakeWroteFlag()
    {
        var wrote = WroteSinceFlush;
        WroteSinceFlush = false;
        return wrote;
    }

    /// <summary>
    /// Executes the complete commands at the start of <paramref name="input"/>, appending replies to
    /// <paramref name="output"/>, until the input holds only a partial command, the connection must close,
    /// or a storage call went pending (<see cref="ProcessOutcome.Parked"/>).
    /// </summary>
    /// <param name="input">Received bytes not consumed yet (a partial command is offered again later, with more bytes).</param>
    /// <param name="kv">The calling worker's storage session (used only during this call).</param>
    /// <param name="output">Where replies go.</param>
    /// <param name="pendingContext">The storage context a pending operation's completion must carry back to this connection.</param>
    /// <param name="consumed">Bytes fully handled.</param>
    public ProcessOutcome Process(ReadOnlySpan<byte> input, IKvSession kv, FrameBuffer output, ulong pendingContext, out int consumed)
    {
        _kv = kv;
        _pendingContext = pendingContext;
        Output.Bind(output);
        consumed = 0;
        var commands = 0;
        var outcome = ProcessOutcome.Continue;
        // Lookahead: the index buckets, then the records, of the keys of the next pipelined commands are prefetched
        // (PrefetchWindow), so the memory misses of a pipeline overlap instead of coming one per command.
        int ahead = _tenant is null ? int.MaxValue : 0;
        var window = new PrefetchWindow();
        while (consumed < input.Length)
        {
            window.Records(kv, commands);
            while (window.WantsMore(commands) && ahead < input.Length)
                ahead = PrefetchNext(input, ahead, ref window);
            if (output.Length >= _context.Limits.MaxReplyBytes)
            {
                // The replies so far go out first: the rest of the pipeline waits in the input (the connection runs this
                // again once they are sent), so a client that sends without reading cannot pile up replies here.
                break;
            }
            var command = input[consumed..];
            // Before AUTH, small limits (a command split across receives keeps its tenant: AUTH runs only when complete).
            _parser.Limits = _tenant is null ? RespLimits.Unauthenticated : _context.Limits;
            var status = _parser.TryParse(command, out var length);
            if (status == RespParseStatus.Incomplete)
            {
                break;
            }
            if (status == RespParseStatus.ProtocolError)
            {
                Output.WriteError("ERR " + _parser.Error);
                ShouldClose = true;
                break;
            }
            if (_parser.ArgCount > 0)
            {
                Execute(_parser.Args(command));
                commands++;
            }
            if (_parked != Parked.No)
            {
                // A multi-key command resumes at its next key: it stays in the input until it finished.
                if (_parked == Parked.Command)
                {
                    consumed += length;
                }
                outcome = ProcessOutcome.Parked;
                break;
            }
            consumed += length;
            if (ShouldClose)
            {
                break;
            }
        }
        CommandCount += commands;
        _commands += commands;
        if (_commands >= 4096)
            FlushCommands();
        return ShouldClose && outcome != ProcessOutcome.Parked ? ProcessOutcome.Close : outcome;
    }

    /// <summary>
    /// Adds the key of the command at <paramref name="at"/> to the prefetch window (a multibulk command with a key
    /// as its second argument) and returns where the next command starts; <see cref="int.MaxValue"/> when that is not
    /// known (a partial or inline command, or anything unusual: the real parser deals with it, and the lookahead stops).
    /// Only a hint: it changes nothing but the CPU caches.
    /// </summary>
    private int PrefetchNext(ReadOnlySpan<byte> input, int at, ref PrefetchWindow window)
    {
        if (!RespScan.TryCommand(input, at, out var name, out var key, out int next))
            return int.MaxValue;
        if (!key.IsEmpty && RespCommandTable.Lookup(name) is RespCommand.Get or RespCommand.Set or RespCommand.Incr or RespCommand.IncrBy
                or RespCommand.Decr or RespCommand.DecrBy or RespCommand.Append or RespCommand.StrLen)
            window.Add(_kv, TenantId, RespTable, key);
        else
            window.Skip();
        return next;
    }

    /// <summary>
    /// <see cref="Process"/> for a host whose storage session serves only this connection during the call
    /// (tests, tools): a parked operation is completed at once by waiting for it (no other
    /// connection's completion can be taken), then processing goes on. Never returns <see cref="ProcessOutcome.Parked"/>.
    /// </summary>
    public ProcessOutcome ProcessWaiting(ReadOnlySpan<byte> input, IKvSession kv, FrameBuffer output, out int consumed)
    {
        consumed = 0;
        while (true)
        {
            var outcome = Process(input[consumed..], kv, output, 0, out var n);
            consumed += n;
            if (outcome != ProcessOutcome.Parked)
            {
                return outcome;
            }
            kv.CompletePending(this, wait: true);
        }
    }

    /// <summary>The connection now acts as <paramref name="tenant"/>: its counts (INFO) move there.</summary>
    private void Become(RespTenant tenant)
    {
        FlushCommands(); // what ran so far ran as the tenant before
        if (_counts is not null)
            Interlocked.Decrement(ref _counts.Connected);
        _tenant = tenant;
        _counts = _context.CountsOf(tenant.Id);
        Interlocked.Increment(ref _counts.Connected);
        Interlocked.Increment(ref _counts.Received);
    }

    private void FlushCommands()
    {
        _context.AddCommands(_commands);
        if (_counts is not null)
            Interlocked.Add(ref _counts.Commands, _commands);
        _commands = 0;
    }

    /// <summary>Counts the connection as closed.</summary>
    public void Dispose()
    {
        FlushCommands();
        if (_counts is not null)
            Interlocked.Decrement(ref _counts.Connected);
        _context.ConnectionClosed(this);
    }

    private void Execute(RespArgs args)
    {
        var command = RespCommandTable.Lookup(args[0]);
        if (command == RespCommand.Unknown)
        {
            WriteUnknownCommand(args);
            return;
        }
        if (!RespCommandTable.ArityOk(command, args.Count))
        {
            Output.WriteError($"ERR wrong number of arguments for '{RespCommandTable.Info(command).Name}' command");
            return;
        }
        if (_tenant is null && command is not (RespCommand.Auth or RespCommand.Hello or RespCommand.Quit))
        {
            Output.WriteError("NOAUTH Authentication required."u8);
            return;
        }
        if (Admission is { } admission && _parked == Parked.No && _resumeArg == 0 && !Admit(admission, command, args))
        {
            return;
        }
        switch (command)
        {
            case RespCommand.Get: Get(args); break;
            case RespCommand.Set: Set(args); break;
            case RespCommand.Del: Del(args); break;
            case RespCommand.Exists: Exists(args); break;
            case RespCommand.MGet: MGet(args); break;
            case RespCommand.MSet: MSet(args); break;
            case RespCommand.Incr: IncrementBy(args, 1); break;
            case RespCommand.Decr: IncrementBy(args, -1); break;
            case RespCommand.IncrBy: IncrementBy(args, 0); break;
            case RespCommand.DecrBy: IncrementBy(args, 0, negate: true); break;
            case RespCommand.Append: Append(args); break;
            case RespCommand.StrLen: StrLen(args); break;
            case RespCommand.Ping: Ping(args); break;
            case RespCommand.Echo: Output.WriteBulk(args[1]); break;
            case RespCommand.DbSize: Output.WriteInteger(_context.Store?.TenantRecords(_tenant!.Id) ?? 0); break;
            case RespCommand.Hello: Hello(args); break;
            case RespCommand.Auth: Auth(args); break;
            case RespCommand.Select: Select(args); break;
            case RespCommand.Info: Info(args); break;
            case RespCommand.Command: Command(args); break;
            case RespCommand.Client: Client(args); break;
            case RespCommand.Config: Config(args); break;
            case RespCommand.Cluster: Cluster(args); break;
            case RespCommand.ReadOnly:
            case RespCommand.ReadWrite: Output.WriteOk(); break;
            case RespCommand.FCall or RespCommand.FCallRo: FCall(args); break;
            case RespCommand.Function: Function(args); break;
            case RespCommand.Quit:
                Output.WriteOk();
                ShouldClose = true;
                break;
        }
    }

    private void WriteUnknownCommand(RespArgs args)
    {
        // Redis: "unknown command 'x', with args beginning with: 'a' 'b' " (args cut at 128 characters).
        var sb = new StringBuilder("ERR unknown command '").Append(Sanitize(args[0], 128)).Append("', with args beginning with: ");
        var argsStart = sb.Length;
        for (var i = 1; i < args.Count && sb.Length - argsStart < 128; i++)
        {
            sb.Append('\'').Append(Sanitize(args[i], 128 - (sb.Length - argsStart))).Append("' ");
        }
        Output.WriteError(sb.ToString());
    }

    /// <summary>Text of an argument for an error message: at most <paramref name="max"/> characters, no CR/LF.</summary>
    private static string Sanitize(ReadOnlySpan<byte> arg, int max)
    {
        var text = Encoding.UTF8.GetString(arg[..Math.Min(arg.Length, Math.Max(max, 0))]);
        return text.Replace('\r', ' ').Replace('\n', ' ');
    }

    private void Ping(RespArgs args)
    {
        if (args.Count > 2)
        {
            Output.WriteError("ERR wrong number of arguments for 'ping' command"u8);
        }
        else if (args.Count == 2)
        {
            Output.WriteBulk(args[1]);
        }
        else
        {
            Output.WriteSimpleString("PONG"u8);
        }
    }

    private void Auth(RespArgs args)
    {
        if (args.Count > 3)
        {
            Output.WriteError("ERR syntax error"u8);
            return;
        }
        var tenant = args.Count == 3 ? Encoding.UTF8.GetString(args[1]) : DefaultTenantName;
        if (TryAuthenticate(tenant, args[args.Count - 1]))
        {
            Output.WriteOk();
        }
    }

    private bool TryAuthenticate(string tenant, ReadOnlySpan<byte> secret)
    {
        var found = _context.Tenants.Authenticate(tenant, secret);
        if (found is null)
        {
            Output.WriteError("WRONGPASS invalid username-password pair or user is disabled."u8);
            // A connection may guess only a few times (Redis lets one pipeline tens of thousands of guesses a second).
            if (++_failedAuths >= MaxFailedAuths)
                ShouldClose = true;
            return false;
        }
        _failedAuths = 0;
        Become(found);
        TenantChanged?.Invoke(found);
        return true;
    }

    private void Hello(RespArgs args)
    {
        var protocol = Output.Protocol;
        var i = 1;
        if (args.Count > 1)
        {
            if (!TryParseInt64(args[1], out var requested))
            {
                Output.WriteError("ERR Protocol version is not an integer or out of range"u8);
                return;
            }
            if (requested is < 2 or > 3)
            {
                Output.WriteError("NOPROTO unsupported protocol version"u8);
                return;
            }
            protocol = (int)requested;
            i = 2;
        }
        string? name = null;
        for (; i < args.Count; i++)
        {
            if (RespCommandTable.EqualsUpper(args[i], "AUTH"u8) && i + 2 < args.Count)
            {
                if (!TryAuthenticate(Encoding.UTF8.GetString(args[i + 1]), args[i + 2]))
                {
                    return;
                }
                i += 2;
            }
            else if (RespCommandTable.EqualsUpper(args[i], "SETNAME"u8) && i + 1 < args.Count)
            {
                if (!PlainWord(args[++i]))
                {
                    Output.WriteError(NameRefusal);
                    return;
                }
                name = Encoding.UTF8.GetString(args[i]);
            }
            else
            {
                Output.WriteError($"ERR Syntax error in HELLO option '{Sanitize(args[i], 64)}'");
                return;
            }
        }
        if (_tenant is null)
        {
            Output.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"u8);
            return;
        }
        if (name is not null)
        {
            _clientName = name;
        }
        Output.Protocol = protocol;
        Output.WriteMapHeader(7);
        Output.WriteBulk("server"u8);
        Output.WriteBulk("redis"u8);
        Output.WriteBulk("version"u8);
        Output.WriteBulk(RedisVersion);
        Output.WriteBulk("proto"u8);
        Output.WriteInteger(protocol);
        Output.WriteBulk("id"u8);
        Output.WriteInteger(ClientId);
        Output.WriteBulk("mode"u8);
        Output.WriteBulk(_context.ClusterEnabled ? "cluster"u8 : "standalone"u8);
        Output.WriteBulk("role"u8);
        Output.WriteBulk("master"u8);
        Output.WriteBulk("modules"u8);
        Output.WriteArrayHeader(0);
    }

    private void Select(RespArgs args)
    {
        if (!TryParseInt64(args[1], out var db))
        {
            Output.WriteError("ERR value is not an integer or out of range"u8);
        }
        else if (db != 0)
        {
            Output.WriteError("ERR DB index is out of range"u8);
        }
        else
        {
            Output.WriteOk();
        }
    }

    /// <summary>Parses a Redis integer argument as Redis does: optional '-', no '+', spaces or leading zeros, fits in a long.</summary>
    internal static bool TryParseInt64(ReadOnlySpan<byte> text, out long value) => Hybrid.Storage.IntegerText.TryParse(text, out value);
}
