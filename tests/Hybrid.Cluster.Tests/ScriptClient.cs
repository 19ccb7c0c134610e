using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// The child role <c>client-over SPEC [TENANT SECRET]</c>: sessions to one node over the message transport SPEC
/// (<see cref="TransportSpec.Parse"/>, dialling side; e.g. <c>memif:/tmp/x.sock</c>), all over one transport (a DPDK
/// port is one per process and carries every session), so a test can hold DPDK clients (which must not run inside the test
/// host) across a migration or as several tenants. The session <c>main</c> (as TENANT with SECRET, see <c>open</c>;
/// default: the default tenant without a secret) is opened at start; the
/// child prints <c>ready view=V</c>, then answers each stdin line with one <c>reply view=V RESULT...</c> line
/// (<see cref="NodeProcess.RequestAsync"/>), V being the view of the line's session after the command. A line
/// <c>@NAME COMMAND</c> runs COMMAND on session NAME, otherwise on <c>main</c>:
/// <list type="bullet">
/// <item><c>put [table=N] KEY=VALUE...</c> — writes every pair to table N (default 1) at once; a result per pair: its status.</item>
/// <item><c>get [table=N] KEY...</c> — reads every KEY of table N (default 1) at once; a result per key: <c>Ok:VALUE</c> or its status.</item>
/// <item><c>view</c> — no results, only the view.</item>
/// <item><c>open NAME TENANT SECRET</c> — opens session NAME as TENANT (HMAC challenge with the UTF-8 bytes of SECRET,
/// <c>-</c> = none); one result: <c>Ok</c> or the refusal's status (<c>Unauthorized</c>, <c>UnknownTenant</c>).</item>
/// <item><c>close NAME</c> — closes session NAME (goodbye); <c>Ok</c>.</item>
/// <item><c>install NAME FILE</c> — installs extension NAME from the C# source in FILE; <c>Ok:NAME[,NAME.ENTRY]...</c>
/// or its status (the node's errors go to stderr).</item>
/// <item><c>invoke NAME[:ARGS]...</c> — every invocation at once, ARGS as UTF-8; a result per invocation:
/// <c>Ok:RESPONSE</c> or <c>STATUS/REASON</c> (the node's error text goes to stderr).</item>
/// <item><c>list</c> — the session tenant's extension names; <c>uninstall NAME</c> — <c>True</c> or <c>False</c>.</item>
/// <item><c>repeat COMMAND</c> — runs COMMAND on the session again and again in the background until <c>stop ID</c>;
/// one result: <c>ID</c>. <c>stop ID</c> ends it after the current round and answers each distinct result with how
/// often it came: <c>RESULT=COUNT...</c> (sorted).</item>
/// </list>
/// Every session waits up to 90 s for a reply (an install compiles on the node). A request refused for the whole batch
/// or lost with the connection gives its status or <c>Error</c> (the reason goes to stderr). At the end of stdin (or a
/// <c>quit</c> line) the background commands stop, every session and then the transport are disposed, so a DPDK peer
/// hears goodbye before the port closes, and the child prints <c>bye</c>.
/// </summary>
internal sealed class ScriptClient
{
    private const string Main = "main";

    private readonly ITransport _transport;
    private readonly string _address;
    private readonly ConcurrentDictionary<string, HybridSession> _sessions = new();
    private readonly Dictionary<int, Repeat> _repeats = [];

    private ScriptClient(ITransport transport, string address)
    {
        _transport = transport;
        _address = address;
    }

    /// <summary>Runs the role; returns 0 after an orderly close.</summary>
    public static async Task<int> RunAsync(string spec, string tenant, string secret)
    {
        TransportSpec parsed = TransportSpec.Parse(spec, server: false);
        using (ITransport transport = TransportFactory.Create(parsed.Options))
        {
            var script = new ScriptClient(transport, parsed.Address);
            try
            {
                script._sessions[Main] = await script.ConnectAsync(tenant, Secret(secret));
                Console.Out.WriteLine("ready view=" + script._sessions[Main].View);
                Console.Out.Flush();
                while (await Console.In.ReadLineAsync() is { } line && line != "quit")
                {
                    string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    string name = Main;
                    if (words is [var first, .. var rest] && first.StartsWith('@'))
                        (name, words) = (first[1..], rest);
                    if (!script._sessions.TryGetValue(name, out HybridSession? session))
                    {
                        Console.Out.WriteLine($"{NodeProcess.ReplyPrefix}view=0 unknown-session");
                        Console.Out.Flush();
                        continue;
                    }
                    string[] results = await script.ExecuteAsync(session, words);
                    Console.Out.WriteLine($"{NodeProcess.ReplyPrefix}view={session.View} {string.Join(' ', results)}".TrimEnd());
                    Console.Out.Flush();
                }
            }
            finally
            {
                await script.CloseAllAsync();
            }
        }
        Console.Out.WriteLine("bye");
        Console.Out.Flush();
        return 0;
    }

    private Task<HybridSession> ConnectAsync(string tenant, byte[] secret) =>
        HybridSession.ConnectAsync(new HybridClientOptions { Transport = _transport, TransportAddress = _address, Tenant = tenant, Secret = secret, Timeout = TimeSpan.FromSeconds(90) });

    /// <summary>Stops the background commands, then says goodbye on every session.</summary>
    private async Task CloseAllAsync()
    {
        foreach (Repeat repeat in _repeats.Values)
            await repeat.StopAsync();
        foreach (HybridSession session in _sessions.Values)
            await session.DisposeAsync();
        _sessions.Clear();
    }

    private async Task<string[]> ExecuteAsync(HybridSession session, string[] words)
    {
        try
        {
            return words switch
            {
                ["put", .. var pairs] => await Task.WhenAll(Table(pairs, out ushort table).Select(p => p.Split('=', 2)).Select(p => PutAsync(session, table, p[0], p[^1]))),
                ["get", .. var keys] => await Task.WhenAll(Table(keys, out ushort table).Select(k => GetAsync(session, table, k))),
                ["view"] => [],
                ["open", var name, var tenant, var secret] => [await OpenAsync(name, tenant, Secret(secret))],
                ["close", var name] when _sessions.TryRemove(name, out HybridSession? closing) => [await CloseAsync(closing)],
                ["install", var name, var file] => [await InstallAsync(session, name, await File.ReadAllTextAsync(file))],
                ["invoke", .. var calls] => await Task.WhenAll(calls.Select(c => c.Split(':', 2)).Select(c => InvokeAsync(session, c[0], c.Length > 1 ? c[1] : ""))),
                ["list"] => [.. await session.ListExtensionsAsync()],
                ["uninstall", var name] => [(await session.UninstallExtensionAsync(name)).ToString()],
                ["repeat", .. var command] when command is not ([] or ["repeat", ..] or ["stop", ..]) => [StartRepeat(session, command)],
                ["stop", var id] when int.TryParse(id, CultureInfo.InvariantCulture, out int n) && _repeats.Remove(n, out Repeat? repeat) => await repeat.StopAsync(),
                _ => ["unknown-command"],
            };
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException)
        {
            return [Failed(string.Join(' ', words.Take(2)), e)];
        }
    }

    /// <summary>A secret as the script names it: UTF-8 text, <c>-</c> for none.</summary>
    private static byte[] Secret(string text) => text == "-" ? [] : Encoding.UTF8.GetBytes(text);

    private async Task<string> OpenAsync(string name, string tenant, byte[] secret)
    {
        try
        {
            HybridSession opened = await ConnectAsync(tenant, secret);
            if (_sessions.TryAdd(name, opened))
                return "Ok";
            await opened.DisposeAsync();
            return "session-exists";
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException)
        {
            return Failed("open " + name, e);
        }
    }

    private static async Task<string> CloseAsync(HybridSession session)
    {
        await session.DisposeAsync();
        return "Ok";
    }

    private static async Task<string> InstallAsync(HybridSession session, string name, string source)
    {
        ExtensionInstallResult installed = await session.InstallExtensionAsync(name, source);
        if (installed.Succeeded)
            return "Ok:" + string.Join(',', installed.Names);
        Console.Error.WriteLine($"install {name}: {installed.Status}: {string.Join(" | ", installed.Errors)}");
        return installed.Status.ToString();
    }

    private static async Task<string> InvokeAsync(HybridSession session, string name, string args)
    {
        ExtensionResult result = await session.InvokeAsync(name, Encoding.UTF8.GetBytes(args));
        if (result.Succeeded)
            return "Ok:" + Encoding.UTF8.GetString(result.Value);
        Console.Error.WriteLine($"invoke {name}: {result.Status}/{result.Reason}: {result.Error}");
        return $"{result.Status}/{result.Reason.ToString(CultureInfo.InvariantCulture)}";
    }

    private string StartRepeat(HybridSession session, string[] command)
    {
        int id = _repeats.Count == 0 ? 1 : _repeats.Keys.Max() + 1;
        _repeats[id] = new Repeat(() => ExecuteAsync(session, command));
        return id.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The items of a <c>put</c>/<c>get</c> after an optional leading <c>table=N</c>, and that table (default 1).</summary>
    private static string[] Table(string[] items, out ushort table)
    {
        table = 1;
        if (items is not [var first, .. var rest] || !first.StartsWith("table=", StringComparison.Ordinal))
            return items;
        table = ushort.Parse(first["table=".Length..], CultureInfo.InvariantCulture);
        return rest;
    }

    private static async Task<string> PutAsync(HybridSession session, ushort table, string key, string value)
    {
        try
        {
            return (await session.PutAsync(table, Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value))).Status.ToString();
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException)
        {
            return Failed(key, e);
        }
    }

    private static async Task<string> GetAsync(HybridSession session, ushort table, string key)
    {
        try
        {
            GetResult got = await session.GetAsync(table, Encoding.UTF8.GetBytes(key));
            return got.Status == Status.Ok ? "Ok:" + Encoding.UTF8.GetString(got.Value!) : got.Status.ToString();
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException)
        {
            return Failed(key, e);
        }
    }

    private static string Failed(string what, Exception e)
    {
        Console.Error.WriteLine($"{what}: {e.GetType().Name}: {e.Message}");
        return e is HybridProtocolException p ? p.Status.ToString() : "Error";
    }

    /// <summary>A command run round after round in the background, counting each distinct result, until stopped.</summary>
    private sealed class Repeat
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);
        private readonly Task _loop;

        public Repeat(Func<Task<string[]>> round) => _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                foreach (string result in await round())
                    _counts[result] = _counts.GetValueOrDefault(result) + 1;
            }
        });

        /// <summary>Stops after the current round; every distinct result with its count, sorted.</summary>
        public async Task<string[]> StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
            return [.. _counts.Select(c => $"{c.Key}={c.Value.ToString(CultureInfo.InvariantCulture)}").Order(StringComparer.Ordinal)];
        }
    }
}
