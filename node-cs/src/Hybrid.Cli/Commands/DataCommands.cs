using System.CommandLine;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Cli.Commands;

/// <summary><c>hybrid get|put|del KEY [VALUE]</c>: one request over the native protocol; keys and values are UTF-8 text.</summary>
internal static class DataCommands
{
    /// <summary>The three commands. Exit code 0 = Ok, 1 = NotFound, 2 = any other outcome.</summary>
    public static IEnumerable<Command> Create()
    {
        var common = new CommonOptions();
        var key = new Argument<string>("key") { Description = "Key (UTF-8)" };
        var value = new Argument<string>("value") { Description = "Value (UTF-8)" };

        var get = new Command("get", "Read a key and print its value");
        get.Arguments.Add(key);
        common.AddTo(get);
        get.SetAction((result, _) => WithSession(common, result, async session =>
        {
            var r = await session.GetAsync(result.GetValue(common.Table), Encoding.UTF8.GetBytes(result.GetValue(key)!)).ConfigureAwait(false);
            if (r.Found)
                Console.WriteLine(Encoding.UTF8.GetString(r.Value!));
            else
                Console.Error.WriteLine($"({r.Status})");
            return ExitCode(r.Status);
        }));

        var put = new Command("put", "Write a key and print the new version");
        put.Arguments.Add(key);
        put.Arguments.Add(value);
        common.AddTo(put);
        put.SetAction((result, _) => WithSession(common, result, async session =>
        {
            var r = await session.PutAsync(result.GetValue(common.Table), Encoding.UTF8.GetBytes(result.GetValue(key)!),
                Encoding.UTF8.GetBytes(result.GetValue(value)!)).ConfigureAwait(false);
            Console.WriteLine(r.Succeeded ? $"OK version {r.Version}" : $"({r.Status})");
            return ExitCode(r.Status);
        }));

        var del = new Command("del", "Delete a key");
        del.Arguments.Add(key);
        common.AddTo(del);
        del.SetAction((result, _) => WithSession(common, result, async session =>
        {
            var r = await session.DeleteAsync(result.GetValue(common.Table), Encoding.UTF8.GetBytes(result.GetValue(key)!)).ConfigureAwait(false);
            Console.WriteLine(r.Succeeded ? "OK" : $"({r.Status})");
            return ExitCode(r.Status);
        }));
        return [get, put, del];
    }

    /// <summary>0 for Ok, 1 for NotFound, 2 otherwise (scripts test for a missing key with exit code 1).</summary>
    internal static int ExitCode(Status status) => status switch
    {
        Status.Ok => 0,
        Status.NotFound => 1,
        _ => 2,
    };

    private static async Task<int> WithSession(CommonOptions common, ParseResult result, Func<HybridSession, Task<int>> action)
    {
        try
        {
            await using var session = await HybridSession.ConnectAsync(common.ClientOptions(result)).ConfigureAwait(false);
            return await action(session).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            Console.Error.WriteLine($"hybrid: {e.Message}");
            return 2;
        }
    }
}
