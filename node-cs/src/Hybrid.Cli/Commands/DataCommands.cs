using System.CommandLine;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Cli.Commands;

/// <summary>
/// <c>hybrid get|put|del KEY [VALUE]</c>: one request over the native protocol, to one node or (--cluster, --metadata)
/// to the key's owner in a cluster; keys and values are UTF-8 text.
/// </summary>
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
        get.SetAction((result, _) => WithTarget(common, result, key, async target =>
        {
            var r = await target.GetAsync(result.GetValue(common.Table)).ConfigureAwait(false);
            if (r.Found)
                Console.WriteLine(Encoding.UTF8.GetString(r.Value!));
            else
                Console.Error.WriteLine(target.Explain(r.Status));
            return ExitCode(r.Status);
        }));

        var put = new Command("put", "Write a key and print the new version");
        put.Arguments.Add(key);
        put.Arguments.Add(value);
        common.AddTo(put);
        put.SetAction((result, _) => WithTarget(common, result, key, async target =>
        {
            var r = await target.PutAsync(result.GetValue(common.Table), Encoding.UTF8.GetBytes(result.GetValue(value)!)).ConfigureAwait(false);
            Console.WriteLine(r.Succeeded ? $"OK version {r.Version}" : target.Explain(r.Status));
            return ExitCode(r.Status);
        }));

        var del = new Command("del", "Delete a key");
        del.Arguments.Add(key);
        common.AddTo(del);
        del.SetAction((result, _) => WithTarget(common, result, key, async target =>
        {
            var r = await target.DeleteAsync(result.GetValue(common.Table)).ConfigureAwait(false);
            Console.WriteLine(r.Succeeded ? "OK" : target.Explain(r.Status));
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

    /// <summary>
    /// What a rejection means, in one line: a NotOwner from a node asked directly says that the node is a cluster's
    /// and how to reach the key's owner instead.
    /// </summary>
    internal static string Explain(Status status, string? node, byte[] key) => status == Status.NotOwner && node is not null
        ? $"(NotOwner) {node} does not own slot {ClusterSlot.Of(key)} of this key: it is a node of a cluster; pass --cluster DIR "
            + "(hybrid cluster start --dir) or --metadata SPEC to send each key to its owner"
        : $"({status})";

    private static async Task<int> WithTarget(CommonOptions common, ParseResult result, Argument<string> keyArgument, Func<KeyTarget, Task<int>> action)
    {
        byte[] key = Encoding.UTF8.GetBytes(result.GetValue(keyArgument)!);
        try
        {
            if (common.ClusterMetadataSpec(result) is { } spec)
            {
                await using ClusterConnection cluster = await CommonOptions.ConnectClusterAsync(spec, common.ClientOptions(result)).ConfigureAwait(false);
                return await action(new KeyTarget(key, null, cluster.Client, null)).ConfigureAwait(false);
            }
            HybridClientOptions options = common.ClientOptions(result);
            string node = options.EndPoint.ToString() ?? "the node";
            try
            {
                await using var session = await HybridSession.ConnectAsync(options).ConfigureAwait(false);
                return await action(new KeyTarget(key, session, null, node)).ConfigureAwait(false);
            }
            catch (HybridProtocolException e) when (e.Status == Status.NotOwner)
            {
                // A node of a cluster refuses a whole batch for a slot it does not own.
                Console.Error.WriteLine(Explain(e.Status, node, key));
                return ExitCode(e.Status);
            }
            catch (Exception e) when (e is OperationCanceledException or System.Net.Sockets.SocketException)
            {
                // Said with the node's address ("The operation was canceled." against a node that does not answer).
                Console.Error.WriteLine(e is OperationCanceledException
                    ? $"hybrid: {node} did not answer within {options.Timeout.TotalSeconds:F0} s"
                    : $"hybrid: cannot reach {node}: {e.Message}");
                return 2;
            }
        }
        catch (Exception e) when (e is HybridProtocolException or HybridConnectionException or System.Net.Sockets.SocketException or OperationCanceledException
            or Hybrid.Cluster.MetadataUnavailableException or InvalidOperationException or IOException or ArgumentException or System.Text.Json.JsonException)
        {
            Console.Error.WriteLine($"hybrid: {e.Message}");
            return 2;
        }
    }

    /// <summary>Where one key's request goes: a node's session, or the key's owner through a cluster client.</summary>
    private sealed class KeyTarget(byte[] key, HybridSession? session, ClusterClient? cluster, string? node)
    {
        public Task<GetResult> GetAsync(ushort table) => cluster?.GetAsync(table, key) ?? session!.GetAsync(table, key).AsTask();

        public Task<WriteResult> PutAsync(ushort table, byte[] value) => cluster?.PutAsync(table, key, value) ?? session!.PutAsync(table, key, value).AsTask();

        public Task<WriteResult> DeleteAsync(ushort table) => cluster?.DeleteAsync(table, key) ?? session!.DeleteAsync(table, key).AsTask();

        public string Explain(Status status) => DataCommands.Explain(status, node, key);
    }
}
