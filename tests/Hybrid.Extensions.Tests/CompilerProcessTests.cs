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
        using var compiler = new CompilerProcess(pipes.Connect);
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
        using var compiler = new CompilerProcess(pipes.Connect);
        Assert.NotNull(compiler.Compile("n", Numbered(1)).Image);
        pipes.Kill!();
        Assert.NotNull(compiler.Compile("n", Numbered(2)).Image);
        Assert.Equal(2, pipes.Connections);
    }
}
