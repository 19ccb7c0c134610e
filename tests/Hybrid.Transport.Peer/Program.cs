using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Hybrid.Transport.Peer;

/// <summary>
/// A child process for transport tests and the transport benchmark. DPDK's EAL initialises once per process
/// and pins a thread, so DPDK peers never run inside the test host: the tests start two of these.
/// Every line it prints that matters starts with a keyword (<c>ready</c>, <c>executed</c>, <c>error</c>,
/// <c>session-end</c>, <c>bench</c>, <c>ok</c>, <c>fail</c>); DPDK's own log lines are ignored by readers.
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "bench-all")
            return await BenchAll.RunAsync(args[1..]);
        var peer = PeerArgs.Parse(args);
        try
        {
            using var transport = TransportFactory.Create(peer.TransportOptions());
            return peer.Mode switch
            {
                "serve" => await ServeAsync(transport, peer),
                "client" => await ClientAsync(transport, peer),
                _ => throw new ArgumentException($"unknown mode {peer.Mode}"),
            };
        }
        catch (TransportException e)
        {
            Say($"error {e.Error} {e.Message} {e.InnerException?.Message}");
            return 2;
        }
    }

    private static void Say(string line)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }

    /// <summary>The server: <see cref="KvService"/> behind the listener, one task per session; it keeps running when a session dies.</summary>
    private static async Task<int> ServeAsync(ITransport transport, PeerArgs peer)
    {
        await using var listener = transport.Listen(peer.Address);
        var service = new KvService();
        Say($"ready {listener.Address}");
        while (true)
        {
            var connection = await listener.AcceptAsync();
            _ = Task.Run(async () =>
            {
                await using (connection)
                {
                    var error = await service.ServeAsync(connection);
                    Say($"session-end {error}");
                }
            });
        }
    }

    private static async Task<byte[]> CallAsync(ITransportConnection connection, byte[] request)
    {
        await connection.SendAsync(request);
        using var reply = await connection.ReceiveAsync();
        return reply.Span.ToArray();
    }

    private static async Task<int> ClientAsync(ITransport transport, PeerArgs peer)
    {
        var connection = await transport.ConnectAsync(peer.Address);
        return peer.Get("scenario", "kv") switch
        {
            "kv" => await KvAsync(connection, peer.GetInt("count", 200), peer.Get("tag", "k")),
            "kill" => await SurviveKillAsync(transport, connection, peer),
            "bench" => await BenchAsync(connection, peer.GetInt("count", 20000)),
            string s => throw new ArgumentException($"unknown scenario {s}"),
        };
    }

    /// <summary>Writes distinct keys, reads a sample back, and prints the server's execution counter.</summary>
    private static async Task<int> KvAsync(ITransportConnection connection, int count, string tag)
    {
        using (connection)
        {
            for (int i = 0; i < count; i++)
            {
                var reply = await CallAsync(connection, Encoding.UTF8.GetBytes($"W {tag}{i} value-{i}-{new string('x', i % 3000)}"));
                if (Encoding.UTF8.GetString(reply) != "ok")
                    return Fail($"write {i} answered {Encoding.UTF8.GetString(reply)}");
            }
            for (int i = 0; i < count; i += 13)
            {
                string value = Encoding.UTF8.GetString(await CallAsync(connection, Encoding.UTF8.GetBytes($"R {tag}{i}")));
                if (value != $"value-{i}-{new string('x', i % 3000)}")
                    return Fail($"read {tag}{i} returned '{value}'");
            }
            var executed = BinaryPrimitives.ReadInt32LittleEndian(await CallAsync(connection, "C"u8.ToArray()));
            Say($"executed {executed}");
            if (connection is Datagram.DatagramSession session)
                Say($"retransmissions {session.Retransmissions}");
        }
        Say("ok");
        return 0;
    }

    /// <summary>
    /// Does a few writes, prints <c>ready</c>, waits for <c>go</c> on stdin (the test has killed the server by
    /// then), then shows that the next request fails with a clear error and that the process is still healthy.
    /// </summary>
    private static async Task<int> SurviveKillAsync(ITransport transport, ITransportConnection connection, PeerArgs peer)
    {
        for (int i = 0; i < 10; i++)
            await CallAsync(connection, Encoding.UTF8.GetBytes($"W kill{i} v"));
        Say("ready");
        if (Console.In.ReadLine() != "go")
            return Fail("expected go");
        try
        {
            await CallAsync(connection, "W after-kill v"u8.ToArray());
            return Fail("a request to a killed server succeeded");
        }
        catch (TransportException e)
        {
            Say($"error {e.Error} {e.Message}");
        }
        connection.Dispose();
        try
        {
            using var again = await transport.ConnectAsync(peer.Address);
            return Fail("reconnected to a killed server");
        }
        catch (TransportException e)
        {
            Say($"reconnect {e.Error}");
        }
        Say("alive");
        return 0;
    }

    /// <summary>Ping-pong of 32-byte messages: round-trip p50/p99 and messages per second.</summary>
    private static async Task<int> BenchAsync(ITransportConnection connection, int count)
    {
        using (connection)
        {
            var message = new byte[32];
            message[0] = (byte)'E';
            var samples = new long[count];
            for (int i = 0; i < count / 10; i++)
                await RoundTripAsync(connection, message);
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < count; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                await RoundTripAsync(connection, message);
                samples[i] = Stopwatch.GetTimestamp() - t0;
            }
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            Array.Sort(samples);
            double Us(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
            Say(string.Create(CultureInfo.InvariantCulture,
                $"bench p50_us={Us(samples[count / 2]):F2} p99_us={Us(samples[count * 99 / 100]):F2} msgs_per_s={count / seconds:F0}"));
        }
        return 0;
    }

    private static async ValueTask RoundTripAsync(ITransportConnection connection, byte[] message)
    {
        await connection.SendAsync(message);
        using var reply = await connection.ReceiveAsync();
        if (reply.Length != message.Length)
            throw new InvalidOperationException("echo mismatch");
    }

    private static int Fail(string why)
    {
        Say($"fail {why}");
        return 1;
    }
}
