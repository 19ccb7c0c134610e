using System.IO.Pipes;

namespace Hybrid.Extensions.Tests;

/// <summary>Compiling through the compiler protocol (what <c>hybrid ext compiler</c> serves to a node), here over pipes.</summary>
public sealed class CompilerProcessTests
{
    private static string Numbered(int i) => $$"""
        using Hybrid.Extensions.Abstractions;
        public static class N
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx) { ctx.WriteInt64({{i}}); return ExtensionTask.CompletedTask; }
        }
        """;

    /// <summary>A compiler server on a thread, reached through a pair of anonymous pipes; counts the connections made.</summary>
    private sealed class PipeCompiler
    {
        public int Connections;
        public Action? Kill;

        public CompilerProcess.CompilerChannel Connect()
        {
            Interlocked.Increment(ref Connections);
            var requests = new AnonymousPipeServerStream(PipeDirection.Out);
            var requestsIn = new AnonymousPipeClientStream(PipeDirection.In, requests.ClientSafePipeHandle);
            var responses = new AnonymousPipeServerStream(PipeDirection.In);
            var responsesOut = new AnonymousPipeClientStream(PipeDirection.Out, responses.ClientSafePipeHandle);
            var server = new Thread(() =>
            {
                try
                {
                    CompilerServer.Run(requestsIn, responsesOut);
                }
                catch (IOException)
                {
                    // The client went away.
                }
                responsesOut.Dispose();
            })
            { IsBackground = true };
            server.Start();
            var alive = true;
            // The compiler exits (its input ends) and is seen dead, as a child process that was killed.
            Kill = () =>
            {
                alive = false;
                requests.Dispose();
                server.Join();
            };
            return new CompilerProcess.CompilerChannel(requests, responses, () => alive, () =>
            {
                requests.Dispose();
                server.Join();
                responses.Dispose();
                requestsIn.Dispose();
            });
        }
    }

    [Fact]
    public void InstallsAndPacks_CompileThroughTheProtocol_WithTheSameResultsAndErrors()
    {
        var pipes = new PipeCompiler();
        using var compiler = new CompilerProcess(pipes.Connect, TimeSpan.FromSeconds(60));
        var (image, errors) = compiler.Compile("n", Numbered(1));
        Assert.NotNull(image);
        Assert.Empty(errors);

        var (bad, badErrors) = compiler.Compile("bad", "public static class B { static int s; }");
        Assert.Null(bad);
        Assert.Contains(badErrors, e => e.StartsWith("bad.cs(", StringComparison.Ordinal));

        var members = new[] { 1, 2 }.Select(i => (ContentHash.Of(Numbered(i)), "n", Numbered(i))).ToList();
        var (pack, left) = compiler.CompilePack(members);
        Assert.NotNull(pack);
        Assert.Equal(members.Select(m => m.Item1).Order(), pack.Members.Order());
        Assert.Empty(left);
        Assert.Equal(ExtensionCompiler.CompilePack(members).Pack!.Image, pack.Image);   // deterministic either way
        Assert.Equal(1, pipes.Connections);
    }

    [Fact]
    public void ACompilerThatDied_IsReplacedAtTheNextRequest()
    {
        var pipes = new PipeCompiler();
        using var compiler = new CompilerProcess(pipes.Connect, TimeSpan.FromSeconds(60));
        Assert.NotNull(compiler.Compile("n", Numbered(1)).Image);
        pipes.Kill!();
        Assert.NotNull(compiler.Compile("n", Numbered(2)).Image);
        Assert.Equal(2, pipes.Connections);
    }

    [Fact]
    public void ACompileOverItsTime_IsRefused_AndTheNextRequestGetsANewCompiler()
    {
        // A 465-character source of nested lambdas took Roslyn minutes and held every tenant's installs: the child is
        // stopped at the timeout and the install refused, never sent again. Here the first compiler never answers.
        var pipes = new PipeCompiler();
        var first = true;
        CompilerProcess.CompilerChannel Connect()
        {
            if (!first)
                return pipes.Connect();
            first = false;
            var requests = new AnonymousPipeServerStream(PipeDirection.Out);
            var requestsIn = new AnonymousPipeClientStream(PipeDirection.In, requests.ClientSafePipeHandle);
            var responses = new AnonymousPipeServerStream(PipeDirection.In);
            var responsesOut = new AnonymousPipeClientStream(PipeDirection.Out, responses.ClientSafePipeHandle);
            var drain = new Thread(() => requestsIn.CopyTo(Stream.Null)) { IsBackground = true }; // reads, never answers
            drain.Start();
            return new CompilerProcess.CompilerChannel(requests, responses, () => true, () =>
            {
                requests.Dispose();
                responsesOut.Dispose(); // the blocked read ends, as when a killed child's output closes
                drain.Join();
                responses.Dispose();
                requestsIn.Dispose();
            });
        }
        // The compile after the stopped one runs under the same limit, in this process: the compiler is warmed up first
        // (a clean-clone CI run on a loaded machine once took longer than the limit for the compiler's first compile).
        using (var warm = new CompilerProcess(new PipeCompiler().Connect, TimeSpan.FromMinutes(2)))
            Assert.NotNull(warm.Compile("warm", Numbered(3)).Image);
        using var compiler = new CompilerProcess(Connect, TimeSpan.FromSeconds(3));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (image, errors) = compiler.Compile("bomb", Numbered(1));
        Assert.Null(image);
        Assert.StartsWith("bomb.cs(1,1): compiling took longer than 3 s, the limit", Assert.Single(errors));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"{watch.Elapsed}");
        Assert.NotNull(compiler.Compile("n", Numbered(2)).Image);
        Assert.Equal(1, pipes.Connections);
    }
}
