using System.Text;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Node.Resp;

/// <summary>
/// Tenant extensions as seen from RESP (the node implements it with the running worker's extension scheduler).
/// </summary>
public interface IRespFunctions
{
    /// <summary>
    /// Starts <paramref name="tenant"/>'s extension <paramref name="name"/> with <paramref name="args"/>. True when it
    /// finished now (or does not exist: <see cref="Status.NotFound"/>), with its outcome in the out parameters (the
    /// value is valid until the next call); false when it is still running: the outcome comes later to
    /// <see cref="RespSession.OnFunctionResult"/>.
    /// </summary>
    bool Invoke(uint tenant, ReadOnlySpan<byte> name, ReadOnlySpan<byte> args, out Status status, out ulong version, out ReadOnlySpan<byte> value);

    /// <summary><paramref name="tenant"/>'s installs (sorted by name), each with the invocation names it registered.</summary>
    IReadOnlyList<(string Name, IReadOnlyList<string> Invocations)> List(uint tenant);
}

/// <summary>FCALL / FCALL_RO / FUNCTION LIST: tenant extensions over RESP (docs/extensions.md).</summary>
public sealed partial class RespSession
{
    private byte[] _functionArgs = new byte[256];

    /// <summary>The node's extensions for FCALL (null: FCALL answers an error).</summary>
    public IRespFunctions? Functions { get; set; }

    /// <summary>
    /// The outcome of an FCALL that was still running when <see cref="Process"/> returned: writes its reply. Returns
    /// true (one operation at most is pending): the host sends and calls <see cref="Process"/> again.
    /// </summary>
    public bool OnFunctionResult(Status status, ulong version, ReadOnlySpan<byte> value, FrameBuffer output)
    {
        Output.Bind(output);
        _pendingOp = PendingOp.None;
        _parked = Parked.No;
        WriteFunctionReply(status, version, value);
        return true;
    }

    /// <summary>
    /// <c>FCALL name numkeys [key ...] [arg ...]</c>: the extension receives the keys and arguments concatenated as
    /// its arguments (pass one binary argument for structured input). In cluster mode the keys must share one slot
    /// served here (<c>-CROSSSLOT</c>, <c>-MOVED</c>), which is where the extension's data lives.
    /// </summary>
    private void FCall(RespArgs args)
    {
        if (Functions is not { } functions)
        {
            Output.WriteError("ERR this node runs no tenant extensions"u8);
            return;
        }
        if (!TryParseInt64(args[2], out var numKeys) || numKeys < 0)
        {
            Output.WriteError("ERR Number of keys can't be negative"u8);
            return;
        }
        if (numKeys > args.Count - 3)
        {
            Output.WriteError("ERR Number of keys can't be greater than number of args"u8);
            return;
        }
        if (numKeys > 0 && !_context.Slots.OwnsAllSlots)
        {
            var slot = Slot.Of(args[3]);
            for (var i = 4; i < 3 + numKeys; i++)
            {
                if (Slot.Of(args[i]) != slot)
                {
                    Output.WriteError("CROSSSLOT Keys in request don't hash to the same slot"u8);
                    return;
                }
            }
            if (!OwnsKey(args[3]))
            {
                return;
            }
        }
        var length = 0;
        for (var i = 3; i < args.Count; i++)
        {
            length += args[i].Length;
        }
        if (_functionArgs.Length < length)
        {
            _functionArgs = new byte[Math.Max(length, _functionArgs.Length * 2)];
        }
        var at = 0;
        for (var i = 3; i < args.Count; i++)
        {
            args[i].CopyTo(_functionArgs.AsSpan(at));
            at += args[i].Length;
        }
        if (functions.Invoke(TenantId, args[1], _functionArgs.AsSpan(0, length), out var status, out var version, out var value))
        {
            WriteFunctionReply(status, version, value);
            return;
        }
        _pendingOp = PendingOp.Function;
        _parked = Parked.Command;
        _context.CountParked();
    }

    /// <summary><c>FUNCTION LIST</c>: the tenant's extension names. Other subcommands point at <c>hybrid ext</c>.</summary>
    /// <summary>
    /// <c>FUNCTION LIST</c> in Redis 7's shape: one map per library (an install) with its engine and functions (its
    /// invocation names, no description, no flags), so client libraries that decode it find what they expect.
    /// </summary>
    private void Function(RespArgs args)
    {
        if (!RespCommandTable.EqualsUpper(args[1], "LIST"u8))
        {
            Output.WriteError("ERR only FUNCTION LIST is supported: install C# extensions with 'hybrid ext install'"u8);
            return;
        }
        if (args.Count > 2)
        {
            Output.WriteError("ERR FUNCTION LIST takes no arguments here (LIBRARYNAME and WITHCODE are not supported)"u8);
            return;
        }
        var libraries = Functions is { } functions ? functions.List(TenantId) : [];
        Output.WriteArrayHeader(libraries.Count);
        foreach (var (library, invocations) in libraries)
        {
            Output.WriteMapHeader(3);
            Output.WriteBulk("library_name"u8);
            Output.WriteBulk(library);
            Output.WriteBulk("engine"u8);
            Output.WriteBulk("CSHARP"u8);
            Output.WriteBulk("functions"u8);
            Output.WriteArrayHeader(invocations.Count);
            foreach (var name in invocations)
            {
                Output.WriteMapHeader(3);
                Output.WriteBulk("name"u8);
                Output.WriteBulk(name);
                Output.WriteBulk("description"u8);
                Output.WriteNull();
                Output.WriteBulk("flags"u8);
                Output.WriteSetHeader(0);
            }
        }
    }

    private void WriteFunctionReply(Status status, ulong version, ReadOnlySpan<byte> value)
    {
        // An extension may have written: in Sync durability the reply waits for the log like any write's.
        WroteSinceFlush = true;
        switch (status)
        {
            case Status.Ok:
                Output.WriteBulk(value);
                break;
            case Status.NotFound:
                Output.WriteError("ERR Function not found"u8);
                break;
            case Status.QuotaExceeded:
                Output.WriteError("ERR QUOTA " + Encoding.UTF8.GetString(value));
                break;
            default:
                Output.WriteError($"ERR extension failed ({status}, {version}): {Encoding.UTF8.GetString(value)}");
                break;
        }
    }
}
