using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Hybrid.Extensions;

/// <summary>
/// Where installs are compiled. In process (<see cref="InProcessCompiler"/>) the node keeps Roslyn loaded and warm:
/// ~60 MiB resident from the first install on, more as its caches grow, whatever the number of tenants. Out of process
/// (<see cref="CompilerProcess"/>) the node never loads Roslyn or Cecil: a child process compiles, verifies and
/// instruments, and hands back the image, which the node loads as before.
/// </summary>
internal interface ICompilerBackend : IDisposable
{
    /// <summary>Compiles, verifies and instruments one source: its image or the rejections.</summary>
    (byte[]? Image, IReadOnlyList<string> Errors) Compile(string name, string source);

    /// <summary>Compiles already-verified sources into one pack (see <see cref="ExtensionCompiler.CompilePack"/>).</summary>
    (CompiledPack? Pack, IReadOnlyList<string> Left) CompilePack(IReadOnlyList<(string Hash, string Name, string Source)> members);
}

/// <summary>Content hashes of sources: kept apart from the compiler so that hashing never loads Roslyn.</summary>
internal static class ContentHash
{
    /// <summary>Bumped whenever the allowlist or instrumentation changes: it is part of the content hash.</summary>
    public const string PipelineVersion = "hybrid-ext-2";

    /// <summary>The content hash under which a source is compiled, loaded and persisted.</summary>
    public static string Of(string source) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(PipelineVersion + "\n" + source)));
}

/// <summary>Compiles on the calling thread, in this process.</summary>
internal sealed class InProcessCompiler : ICompilerBackend
{
    public (byte[]? Image, IReadOnlyList<string> Errors) Compile(string name, string source)
    {
        var (module, errors) = ExtensionCompiler.Compile(name, source);
        return (module?.Image, errors);
    }

    public (CompiledPack? Pack, IReadOnlyList<string> Left) CompilePack(IReadOnlyList<(string Hash, string Name, string Source)> members) =>
        ExtensionCompiler.CompilePack(members);

    public void Dispose()
    {
    }
}

/// <summary>
/// Compiles in a child process started from <see cref="ProcessStartInfo"/> (which must run
/// <see cref="CompilerServer.Run"/> over its standard input and output, e.g. <c>hybrid ext compiler</c>). One
/// request at a time; a child that died is started again at the next request. The child's images are trusted as
/// the in-process compiler's are: it is the server's own binary.
/// </summary>
internal sealed class CompilerProcess : ICompilerBackend
{
    private readonly Lock _lock = new();
    private readonly Func<CompilerChannel> _connect;
    private CompilerChannel? _channel;
    private BinaryWriter? _writer;
    private BinaryReader? _reader;

    /// <summary>A connection to a compiler: requests go to <c>Requests</c>, answers come from <c>Responses</c>.</summary>
    internal sealed record CompilerChannel(Stream Requests, Stream Responses, Func<bool> Alive, Action Stop);

    internal CompilerProcess(ProcessStartInfo start, TimeSpan timeout)
        : this(() => StartProcess(start), timeout)
    {
    }

    /// <summary>With any way of reaching a compiler (tests serve <see cref="CompilerServer.Run"/> over pipes).</summary>
    internal CompilerProcess(Func<CompilerChannel> connect, TimeSpan timeout)
    {
        _connect = connect;
        Timeout = timeout;
    }

    /// <summary>
    /// How long one request may take before the child is stopped and the request refused: a 465-character source of
    /// nested lambdas over overloads took Roslyn minutes (4x per level of nesting), and held every other install.
    /// </summary>
    internal TimeSpan Timeout { get; }

    public (byte[]? Image, IReadOnlyList<string> Errors) Compile(string name, string source) => Call(w =>
    {
        w.Write((byte)1);
        w.Write(name);
        w.Write(source);
    }, r => r.ReadBoolean() ? (CompilerServer.ReadBytes(r), []) : ((byte[]?)null, CompilerServer.ReadStrings(r)), Timeout,
        () => (null, [FormattableString.Invariant($"{name}.cs(1,1): compiling took longer than {Timeout.TotalSeconds:0.#} s, the limit: simplify the source (deeply nested lambdas or overloads make the compiler's work grow exponentially)")]));

    public (CompiledPack? Pack, IReadOnlyList<string> Left) CompilePack(IReadOnlyList<(string Hash, string Name, string Source)> members) => Call(w =>
    {
        w.Write((byte)2);
        w.Write(members.Count);
        foreach (var (hash, name, source) in members)
        {
            w.Write(hash);
            w.Write(name);
            w.Write(source);
        }
    }, r =>
    {
        CompiledPack? pack = r.ReadBoolean() ? new CompiledPack(r.ReadString(), CompilerServer.ReadBytes(r), CompilerServer.ReadStrings(r)) : null;
        return (pack, (IReadOnlyList<string>)CompilerServer.ReadStrings(r));
    }, Timeout * Math.Max(1, members.Count), () => (null, [.. members.Select(m => m.Hash)])); // each member compiled alone within Timeout

    /// <summary>One request and its response; <paramref name="timedOut"/>'s answer when it takes longer than <paramref name="timeout"/>.</summary>
    private T Call<T>(Action<BinaryWriter> request, Func<BinaryReader, T> response, TimeSpan timeout, Func<T> timedOut)
    {
        lock (_lock)
        {
            for (var attempt = 0; ; attempt++)
            {
                var expired = 0;
                CompilerChannel? channel = null;
                // Stops the child from a timer thread: the blocked read below then ends (its stream closed).
                using var deadline = new Timer(_ =>
                {
                    if (Interlocked.Exchange(ref expired, 1) == 0)
                        channel?.Stop();
                });
                try
                {
                    if (_channel is null || !_channel.Alive())
                    {
                        Stop();
                        _channel = _connect();
                        _writer = new BinaryWriter(_channel.Requests, Encoding.UTF8, leaveOpen: true);
                        _reader = new BinaryReader(_channel.Responses, Encoding.UTF8, leaveOpen: true);
                    }
                    channel = _channel;
                    deadline.Change(timeout, System.Threading.Timeout.InfiniteTimeSpan);
                    request(_writer!);
                    _writer!.Flush();
                    T answer = response(_reader!);
                    if (Interlocked.Exchange(ref expired, 1) == 0)
                        return answer;
                    Stop(); // the timer fired as the answer came: that child is being stopped
                    return answer;
                }
                catch (Exception e) when (e is IOException or EndOfStreamException or InvalidOperationException or ObjectDisposedException
                    && (Volatile.Read(ref expired) == 1 || attempt == 0))
                {
                    Stop();
                    if (Volatile.Read(ref expired) == 1)
                        return timedOut(); // never asked again: it would take as long
                    // The child died (or was killed) mid-request: start a new one and ask again, once.
                }
            }
        }
    }

    private static CompilerChannel StartProcess(ProcessStartInfo start)
    {
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.UseShellExecute = false;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start the extension compiler '{start.FileName}'");
        var stopped = 0;
        return new CompilerChannel(process.StandardInput.BaseStream, process.StandardOutput.BaseStream, () => !process.HasExited, () =>
        {
            // Once: a compile over its time is stopped from a timer, and then again by the request it failed.
            if (Interlocked.Exchange(ref stopped, 1) != 0)
                return;
            try
            {
                process.StandardInput.Close();   // the server's input ends: it exits
                if (!process.WaitForExit(2000))
                {
                    process.Kill();
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                // Already gone.
            }
            process.Dispose();
        });
    }

    private void Stop()
    {
        // The reader and writer own nothing (leaveOpen): the channel's streams go with it.
        _writer = null;
        _reader = null;
        _channel?.Stop();
        _channel = null;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            Stop();
        }
    }
}

/// <summary>
/// The child side of <see cref="CompilerProcess"/>: reads requests from its input until it closes and answers each
/// on its output. Requests: 1 = compile one (name, source), 2 = compile a pack (count,
/// then hash, name, source each). Strings are <see cref="BinaryWriter"/> strings, byte arrays length-prefixed.
/// </summary>
public static class CompilerServer
{
    /// <summary>Serves until the input closes; returns the process exit code.</summary>
    public static int Run(Stream input, Stream output)
    {
        using var reader = new BinaryReader(input, Encoding.UTF8, leaveOpen: true);
        using var writer = new BinaryWriter(output, Encoding.UTF8, leaveOpen: true);
        while (true)
        {
            int kind;
            try
            {
                kind = reader.ReadByte();
            }
            catch (EndOfStreamException)
            {
                return 0;
            }
            switch (kind)
            {
                case 1:
                    var (module, errors) = ExtensionCompiler.Compile(reader.ReadString(), reader.ReadString());
                    writer.Write(module is not null);
                    if (module is not null)
                    {
                        WriteBytes(writer, module.Image);
                    }
                    else
                    {
                        WriteStrings(writer, errors);
                    }
                    break;
                case 2:
                    var members = new (string, string, string)[reader.ReadInt32()];
                    for (var i = 0; i < members.Length; i++)
                    {
                        members[i] = (reader.ReadString(), reader.ReadString(), reader.ReadString());
                    }
                    var (pack, left) = ExtensionCompiler.CompilePack(members);
                    writer.Write(pack is not null);
                    if (pack is not null)
                    {
                        writer.Write(pack.Id);
                        WriteBytes(writer, pack.Image);
                        WriteStrings(writer, pack.Members);
                    }
                    WriteStrings(writer, left);
                    break;
                default:
                    return 2;
            }
            writer.Flush();
        }
    }

    internal static byte[] ReadBytes(BinaryReader r) => r.ReadBytes(r.ReadInt32());

    internal static string[] ReadStrings(BinaryReader r)
    {
        var strings = new string[r.ReadInt32()];
        for (var i = 0; i < strings.Length; i++)
        {
            strings[i] = r.ReadString();
        }
        return strings;
    }

    private static void WriteBytes(BinaryWriter w, byte[] bytes)
    {
        w.Write(bytes.Length);
        w.Write(bytes);
    }

    private static void WriteStrings(BinaryWriter w, IReadOnlyCollection<string> strings)
    {
        w.Write(strings.Count);
        foreach (var s in strings)
        {
            w.Write(s);
        }
    }
}
