using System.Text;
using Hybrid.Protocol;

namespace Hybrid.Client;

/// <summary>The outcome of an extension install.</summary>
/// <param name="Status">Ok, InstallRejected, or a session-level failure (QuotaExceeded, InternalError...).</param>
/// <param name="Names">Ok: the invocation names the install registered (<c>name</c> and <c>name.entry</c>).</param>
/// <param name="Errors">InstallRejected: the node's errors, each <c>file(line,col): ...</c>.</param>
/// <param name="Compiled">False when the node already had the identical source loaded and shared it.</param>
public sealed record ExtensionInstallResult(Status Status, IReadOnlyList<string> Names, IReadOnlyList<string> Errors, bool Compiled)
{
    /// <summary>True when the extension is installed.</summary>
    public bool Succeeded => Status == Status.Ok;
}

/// <summary>The outcome of an extension invocation.</summary>
/// <param name="Status">Ok, NotFound, QuotaExceeded (the tenant's extension CPU quota) or ExtensionFailed.</param>
/// <param name="Reason">ExtensionFailed / QuotaExceeded: why (2 faulted, 3 CPU budget, 4 memory budget, 5 stack budget, 6 throttled, 7 quarantined).</param>
/// <param name="Value">Ok: the extension's response; otherwise the node's error text (UTF-8).</param>
public readonly record struct ExtensionResult(Status Status, ulong Reason, byte[] Value)
{
    /// <summary>True when the extension ran to its end.</summary>
    public bool Succeeded => Status == Status.Ok;

    /// <summary>The error text of a failed invocation (empty when it succeeded).</summary>
    public string Error => Succeeded ? "" : Encoding.UTF8.GetString(Value);
}

/// <summary>Tenant extensions (docs/extensions.md): install C# source on the node, invoke it next to the data.</summary>
public sealed partial class HybridSession
{
    /// <summary>
    /// Installs (or replaces) extension <paramref name="name"/> of the session's tenant from C# source. The node
    /// compiles and verifies it off its workers (tens of ms), so this call takes that long.
    /// </summary>
    public async ValueTask<ExtensionInstallResult> InstallExtensionAsync(string name, string source)
    {
        var op = Submit(OpCode.Install, 0, Encoding.UTF8.GetBytes(name), Encoding.UTF8.GetBytes(source), 0);
        var result = await new ValueTask<GetResult>(op, op.Token).ConfigureAwait(false);
        var lines = Lines(result.Value);
        return result.Status == Status.Ok
            ? new ExtensionInstallResult(result.Status, lines, [], result.Version != 0)
            : new ExtensionInstallResult(result.Status, [], lines, false);
    }

    /// <summary>Invokes <paramref name="name"/> (<c>install</c> or <c>install.entry</c>) with <paramref name="args"/>.</summary>
    public ValueTask<ExtensionResult> InvokeAsync(string name, ReadOnlySpan<byte> args)
    {
        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(name.Length)];
        return InvokeCore(utf8[..Encoding.UTF8.GetBytes(name, utf8)], args);
    }

    /// <summary>Invokes an extension named by UTF-8 bytes (no encoding per call: for hot loops).</summary>
    public ValueTask<ExtensionResult> InvokeAsync(ReadOnlyMemory<byte> utf8Name, ReadOnlyMemory<byte> args) => InvokeCore(utf8Name.Span, args.Span);

    /// <summary>Removes install <paramref name="name"/> of the session's tenant; false when there was none.</summary>
    public async ValueTask<bool> UninstallExtensionAsync(string name)
    {
        var op = Submit(OpCode.Uninstall, 0, Encoding.UTF8.GetBytes(name), default, 0);
        var result = await new ValueTask<GetResult>(op, op.Token).ConfigureAwait(false);
        return result.Status switch
        {
            Status.Ok => true,
            Status.NotFound => false,
            _ => throw new HybridProtocolException(result.Status, $"uninstall failed: {result.Status} {Encoding.UTF8.GetString(result.Value ?? [])}"),
        };
    }

    /// <summary>The session tenant's invocation names, sorted.</summary>
    public async ValueTask<IReadOnlyList<string>> ListExtensionsAsync()
    {
        var op = Submit(OpCode.ListExtensions, 0, default, default, 0);
        var result = await new ValueTask<GetResult>(op, op.Token).ConfigureAwait(false);
        if (result.Status != Status.Ok)
            throw new HybridProtocolException(result.Status, $"list failed: {result.Status}");
        return Lines(result.Value);
    }

    private ValueTask<ExtensionResult> InvokeCore(ReadOnlySpan<byte> utf8Name, ReadOnlySpan<byte> args)
    {
        var op = Submit(OpCode.Invoke, 0, utf8Name, args, 0);
        return Await(new ValueTask<GetResult>(op, op.Token));

        static async ValueTask<ExtensionResult> Await(ValueTask<GetResult> pending)
        {
            var result = await pending.ConfigureAwait(false);
            return new ExtensionResult(result.Status, result.Version, result.Value ?? []);
        }
    }

    private static string[] Lines(byte[]? value) =>
        value is null || value.Length == 0 ? [] : Encoding.UTF8.GetString(value).Split('\n');
}
