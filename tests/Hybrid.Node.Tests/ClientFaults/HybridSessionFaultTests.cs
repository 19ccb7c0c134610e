using System.Net;
using System.Text;
using Hybrid.Client;
using Hybrid.Protocol;

namespace Hybrid.Node.Tests.ClientFaults;

/// <summary>
/// <see cref="HybridSession"/> against a scripted <see cref="FakeNode"/>: a node that stops reading, connections that
/// drop, rejections whose routing refresh is slow, fails or hangs, a dispose in the middle of a reconnect, an oversized key.
/// </summary>
public class HybridSessionFaultTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    /// <summary>The exception a request ended with (null: it succeeded).</summary>
    internal static async Task<Exception?> Outcome<T>(ValueTask<T> pending)
    {
        try
        {
            await pending.ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    [Fact]
    public async Task Send_WhenTheNodeStopsReading_NeverBlocksTheCallerAndTheTimeoutFailsTheRequests()
    {
        var stall = new TaskCompletionSource();
        var node = new FakeNode();
        node.OnBatch = (_, _) => stall.Task; // reads one frame, then nothing more: the client's sends back up
        HybridSession? session = null;
        try
        {
            session = await HybridSession.ConnectAsync(new HybridClientOptions
            {
                EndPoint = node.EndPoint,
                Timeout = TimeSpan.FromSeconds(1),
                MaxInFlightBatches = 64,
            });
            var value = new byte[256 * 1024]; // 64 frames of 256 KiB: far more than the socket buffers hold
            var outcomes = new List<Task<Exception?>>();
            var submit = Task.Run(() =>
            {
                for (int i = 0; i < 64; i++)
                    outcomes.Add(Outcome(session.PutAsync(0, Encoding.UTF8.GetBytes("k" + i), value)));
            });
            // Before the fix the caller's flush blocked in socket.Send under the session lock, and so did the timer.
            await submit.WaitAsync(Wait);
            Exception?[] errors = await Task.WhenAll(outcomes).WaitAsync(Wait);
            Assert.All(errors, e => Assert.True(e is TimeoutException or HybridConnectionException, $"expected a timeout, got {e}"));
        }
        finally
        {
            // The node goes first: closing its end unblocks a send stuck in the kernel (before the fix), so the
            // session's dispose, which needs the session lock, can finish.
            stall.TrySetResult();
            await node.DisposeAsync();
            if (session is not null)
                await session.DisposeAsync();
        }
    }
}
