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
            Assert.All(errors, e => Assert.True(e is HybridConnectionException, $"expected a timeout, got {e}"));
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

    [Fact]
    public async Task BreakLink_WhenAnInlineContinuationDisposesTheSession_FailsEachRequestOnceWithTheConnectionError()
    {
        await using var node = new FakeNode();
        int received = 0;
        node.OnBatch = (connection, _) =>
        {
            if (Interlocked.Increment(ref received) == 2)
                connection.Close(); // both frames in flight: the connection drops before either reply
            return Task.CompletedTask;
        };
        var session = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = node.EndPoint, InlineCompletions = true, MaxBatchOps = 1 });
        Task<Exception?> first = FailThenDispose(session, session.PutAsync(0, "a"u8, "1"u8));
        Task<Exception?> second = Outcome(session.PutAsync(0, "b"u8, "2"u8));

        // Before the fix the continuation's dispose re-entered the failing loop: the first request was failed a
        // second time (InvalidOperationException out of the dispose) and the second got ObjectDisposedException.
        Assert.IsType<HybridConnectionException>(await first.WaitAsync(Wait));
        Assert.IsType<HybridConnectionException>(await second.WaitAsync(Wait));

        static async Task<Exception?> FailThenDispose(HybridSession session, ValueTask<WriteResult> put)
        {
            try
            {
                await put.ConfigureAwait(false); // InlineCompletions: the catch below runs inside the session's failure path
                return null;
            }
            catch (HybridConnectionException e)
            {
                await session.DisposeAsync().ConfigureAwait(false);
                return e;
            }
        }
    }

    /// <summary>Routing whose refresh the test holds until it releases it; counts the calls.</summary>
    private sealed class GatedRouting : IRoutingMap
    {
        internal TaskCompletionSource Called { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ValueTask RefreshAsync(EndPoint node, ulong nodeView, CancellationToken cancellationToken)
        {
            Called.TrySetResult();
            return new ValueTask(Release.Task);
        }
    }

    /// <summary>A node that moved to view 2: batches stamped with an older view are rejected with ViewChanged.</summary>
    private static FakeNode ViewTwoNode()
    {
        var node = new FakeNode();
        node.OnBatch = (connection, batch) =>
        {
            if (batch.Header.View >= 2)
                return node.Execute(connection, batch);
            node.View = 2;
            return node.Reject(connection, batch, Status.ViewChanged);
        };
        return node;
    }

    [Fact]
    public async Task Resend_AfterViewChanged_GoesBeforeALaterWriteToTheSameKey()
    {
        await using var node = ViewTwoNode();
        var routing = new GatedRouting();
        await using var session = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = node.EndPoint, Routing = routing });

        var first = session.PutAsync(0, "k"u8, "1"u8).AsTask();
        await routing.Called.Task.WaitAsync(Wait); // rejected; its resend waits for the refresh
        var second = session.PutAsync(0, "k"u8, "2"u8).AsTask();
        await Task.Delay(300);
        Assert.False(second.IsCompleted, "a later write went out while an earlier one to the same key waited for its resend");
        routing.Release.SetResult();

        Assert.Equal(Status.Ok, (await first.WaitAsync(Wait)).Status);
        Assert.Equal(Status.Ok, (await second.WaitAsync(Wait)).Status);
        Assert.Equal(["1", "2"], node.Executed.Where(r => r.Key == "k").Select(r => r.Value));
    }

    /// <summary>Routing whose refresh throws, or never completes.</summary>
    private sealed class BrokenRouting(bool hang) : IRoutingMap
    {
        public ValueTask RefreshAsync(EndPoint node, ulong nodeView, CancellationToken cancellationToken) =>
            hang ? new ValueTask(new TaskCompletionSource().Task) : throw new InvalidOperationException("routing source away");
    }

    [Fact]
    public async Task Timeout_FailsAWriteInFlightAsOutcomeUnknown_NotAsNotSent()
    {
        // The node read the write and never answered: it may have run, so the caller must not be told it is safe to
        // send again (a plain TimeoutException was outside the client's documented HybridConnectionException contract).
        var stall = new TaskCompletionSource();
        await using var node = new FakeNode();
        node.OnBatch = (_, _) => stall.Task;
        await using var session = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = node.EndPoint, Timeout = TimeSpan.FromMilliseconds(500) });
        Exception? error = await Outcome(session.PutAsync(0, "k"u8, "v"u8)).WaitAsync(Wait);
        stall.TrySetResult();
        var timeout = Assert.IsType<HybridTimeoutException>(error);
        Assert.IsAssignableFrom<HybridConnectionException>(timeout);
        Assert.IsNotType<HybridNotSentException>(error);
        Assert.Contains("outcome", timeout.Message);
    }

    [Fact]
    public async Task Timeout_OfAnInstall_IsInstallTimeout_ForTheCompileOnTheNode()
    {
        // A node's first compile loads the compiler: an install to a fresh node on a busy machine took over the 10 s
        // Timeout, and `hybrid ext install --cluster` failed with "no reply" though the node installed it (CI).
        var stall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var node = new FakeNode();
        node.OnBatch = async (connection, batch) =>
        {
            // An install compiles for 1.5 s; the frames behind it wait for it (as a node holds them), and "behind" then
            // takes 300 ms more (over the client timer's 250 ms period); "k" never answers.
            await (batch.Requests[0] switch
            {
                { Op: OpCode.Install } => Task.Delay(TimeSpan.FromSeconds(1.5)),
                { Key: "behind" } => Task.Delay(TimeSpan.FromMilliseconds(300)),
                { Key: "k" } => stall.Task,
                _ => Task.CompletedTask,
            });
            await node.Execute(connection, batch);
        };
        try
        {
            // Timeout 1 s: under the install's 1.5 s, and well over the 300 ms "behind" takes after the install's reply.
            var options = new HybridClientOptions { EndPoint = node.EndPoint, Timeout = TimeSpan.FromSeconds(1), InstallTimeout = TimeSpan.FromSeconds(20) };
            await using (var session = await HybridSession.ConnectAsync(options))
                Assert.Equal(Status.Ok, (await session.InstallExtensionAsync("x", "class X {}").AsTask().WaitAsync(Wait)).Status);
            await using (var session = await HybridSession.ConnectAsync(options))
            {
                // A put sent behind the install waits for it on the node: it has the install's deadline while the install
                // is in flight, and its own Timeout from the install's reply on, not from its send (else its timeout
                // broke the session, the install with it; a CI run once timed it out just after the install's reply).
                var install = session.InstallExtensionAsync("x", "class X {}").AsTask();
                await Task.Delay(100);
                var behind = session.PutAsync(0, "behind"u8, "v"u8).AsTask();
                Assert.Equal(Status.Ok, (await install.WaitAsync(Wait)).Status);
                Assert.Equal(Status.Ok, (await behind.WaitAsync(Wait)).Status);
            }
            await using (var session = await HybridSession.ConnectAsync(options))
                Assert.IsType<HybridTimeoutException>(await Outcome(session.PutAsync(0, "k"u8, "v"u8)).WaitAsync(Wait));
            await using (var session = await HybridSession.ConnectAsync(options with { InstallTimeout = TimeSpan.FromMilliseconds(100) }))
                Assert.IsType<HybridTimeoutException>(await Outcome(session.InstallExtensionAsync("x", "class X {}")).WaitAsync(Wait));
        }
        finally
        {
            stall.TrySetResult();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Resend_WhenTheRoutingRefreshThrowsOrHangs_FailsTheRejectedRequestsAndTheSessionGoesOn(bool hang)
    {
        await using var node = ViewTwoNode();
        await using var session = await HybridSession.ConnectAsync(new HybridClientOptions
        {
            EndPoint = node.EndPoint,
            Routing = new BrokenRouting(hang),
            Timeout = TimeSpan.FromSeconds(1),
        });

        // Before the fix the request waited forever (a throw also ended the receive loop).
        var error = await Outcome(session.PutAsync(0, "k"u8, "1"u8)).WaitAsync(Wait);
        Assert.IsType<HybridNotSentException>(error);
        Assert.Empty(node.Executed);

        // The session adopted view 2 from the rejection and goes on.
        Assert.Equal(Status.Ok, (await session.PutAsync(0, "k"u8, "2"u8).AsTask().WaitAsync(Wait)).Status);
        Assert.Equal(["2"], node.Executed.Select(r => r.Value));
    }

    [Fact]
    public async Task Dispose_WhileTheSessionReconnects_ClosesTheNewConnection()
    {
        var hello = new TaskCompletionSource();
        var reconnecting = new TaskCompletionSource();
        await using var node = new FakeNode();
        node.BeforeHello = index =>
        {
            if (index == 0)
                return Task.CompletedTask;
            reconnecting.TrySetResult();
            return hello.Task;
        };
        node.OnBatch = (connection, _) =>
        {
            connection.Close(); // the first connection drops with the first batch in flight
            return Task.CompletedTask;
        };
        var session = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = node.EndPoint });
        Assert.IsType<HybridConnectionException>(await Outcome(session.PutAsync(0, "a"u8, "1"u8)).WaitAsync(Wait));

        var unsent = Outcome(session.PutAsync(0, "b"u8, "2"u8)); // starts the reconnect
        await reconnecting.Task.WaitAsync(Wait);
        var disposing = session.DisposeAsync().AsTask();
        hello.SetResult(); // the handshake completes after the dispose
        await disposing.WaitAsync(Wait);

        // Before the fix the reconnect installed the new connection in the disposed session and nobody closed it.
        await node.Connections[1].ClientClosed.Task.WaitAsync(Wait);
        Assert.IsType<HybridNotSentException>(await unsent.WaitAsync(Wait));
    }

    [Fact]
    public async Task Put_WithAKeyOver64KiB_ThrowsArgumentExceptionAndTheSharedFrameStaysIntact()
    {
        await using var node = new FakeNode();
        await using var session = await HybridSession.ConnectAsync(new HybridClientOptions { EndPoint = node.EndPoint, Linger = TimeSpan.FromMilliseconds(300) });

        var good = session.PutAsync(0, "a"u8, "1"u8).AsTask(); // waits in the open frame for the linger
        Assert.Throws<ArgumentException>(() => session.PutAsync(0, new byte[70_000], "2"u8));
        var batch = new HybridBatch();
        batch.Put(0, "b"u8.ToArray(), "3"u8.ToArray());
        batch.Put(0, new byte[ushort.MaxValue + 1], "4"u8.ToArray());
        await Assert.ThrowsAsync<ArgumentException>(async () => await session.ExecuteAsync(batch));

        // Before the fix the partial request stayed in the frame: the node closed the connection and this failed too.
        Assert.Equal(Status.Ok, (await good.WaitAsync(Wait)).Status);
        Assert.Equal(["a"], node.Executed.Select(r => r.Key));
    }
}
