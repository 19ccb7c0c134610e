using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;
using Hybrid.Transport;

namespace Hybrid.Cluster.Tests;

/// <summary>
/// The child role <c>client-over SPEC</c>: one <see cref="HybridSession"/> to one node over the message transport SPEC
/// (<see cref="TransportSpec.Parse"/>, dialling side; e.g. <c>memif:/tmp/x.sock</c>), opened at start and kept until
/// stdin ends, so a test can hold a DPDK client (which must not run inside the test host) across a migration. It prints
/// <c>ready view=V</c>, then answers each stdin line with one <c>reply view=V RESULT...</c> line
/// (<see cref="NodeProcess.RequestAsync"/>), V being the session's view after the command:
/// <list type="bullet">
/// <item><c>put KEY=VALUE...</c> — writes every pair to table 1 at once; a result per pair: its status.</item>
/// <item><c>get KEY...</c> — reads every KEY of table 1 at once; a result per key: <c>Ok:VALUE</c> or its status.</item>
/// <item><c>view</c> — no results, only the view.</item>
/// </list>
/// A request refused for the whole batch or lost with the connection gives its status or <c>Error</c> (the reason goes to
/// stderr). At the end of stdin (or a <c>quit</c> line) the session and then the transport are disposed, so a DPDK peer
/// hears goodbye before the port closes, and the child prints <c>bye</c>.
/// </summary>
internal static class ScriptClient
{
    /// <summary>Runs the role; returns 0 after an orderly close.</summary>
    public static async Task<int> RunAsync(string spec)
    {
        TransportSpec parsed = TransportSpec.Parse(spec, server: false);
        using (ITransport transport = TransportFactory.Create(parsed.Options))
        {
            await using HybridSession session = await HybridSession.ConnectAsync(new HybridClientOptions { Transport = transport, TransportAddress = parsed.Address });
            Console.Out.WriteLine("ready view=" + session.View);
            Console.Out.Flush();
            while (await Console.In.ReadLineAsync() is { } line && line != "quit")
            {
                string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                string[] results = words switch
                {
                    ["put", .. var pairs] => await Task.WhenAll(pairs.Select(p => p.Split('=', 2)).Select(p => PutAsync(session, p[0], p[^1]))),
                    ["get", .. var keys] => await Task.WhenAll(keys.Select(k => GetAsync(session, k))),
                    ["view"] => [],
                    _ => ["unknown-command"],
                };
                Console.Out.WriteLine($"{NodeProcess.ReplyPrefix}view={session.View} {string.Join(' ', results)}".TrimEnd());
                Console.Out.Flush();
            }
        }
        Console.Out.WriteLine("bye");
        Console.Out.Flush();
        return 0;
    }

    private static async Task<string> PutAsync(HybridSession session, string key, string value)
    {
        try
        {
            return (await session.PutAsync(1, Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(value))).Status.ToString();
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or TimeoutException)
        {
            return Failed(key, e);
        }
    }

    private static async Task<string> GetAsync(HybridSession session, string key)
    {
        try
        {
            GetResult got = await session.GetAsync(1, Encoding.UTF8.GetBytes(key));
            return got.Status == Status.Ok ? "Ok:" + Encoding.UTF8.GetString(got.Value!) : got.Status.ToString();
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or TimeoutException)
        {
            return Failed(key, e);
        }
    }

    private static string Failed(string key, Exception e)
    {
        Console.Error.WriteLine($"{key}: {e.GetType().Name}: {e.Message}");
        return e is HybridProtocolException p ? p.Status.ToString() : "Error";
    }
}
