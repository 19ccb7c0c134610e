using System.Text;
using Hybrid.Node.Extensions;
using Hybrid.Node.Hosting;
using Hybrid.Node.Tenants;
using Hybrid.Protocol;

namespace Hybrid.Node.Native;

/// <summary>
/// The extension opcodes (docs/protocol.md §4): Invoke runs the tenant's extension as a coroutine on this worker
/// (most finish inside their first step and answer at once; one that yields leaves a hole and parks the connection
/// until the scheduler delivers its result); Install and Uninstall go to the node's control thread (compiling never
/// blocks a worker) and also leave a hole; ListExtensions answers at once.
/// </summary>
internal sealed partial class NativeSession
{
    private readonly ExtensionNameCache _extensionNames = new();

    private void Invoke(IWorkerContext worker, ConnectionContext connection, TenantInfo tenant, in Request request, FrameBuffer output)
    {
        var extensions = worker.Extensions;
        var handle = _extensionNames.Resolve(extensions.Node.Host, tenant.Id, request.Key);
        if (handle is null)
        {
            output.AppendResult(Status.NotFound, 0, Encoding.UTF8.GetBytes($"no extension '{Encoding.UTF8.GetString(request.Key)}'"));
            return;
        }
        long cookie = extensions.Cookie(connection, (uint)NextHole);
        if (extensions.Invoke(handle, request.Value, cookie))
            output.AppendResult(extensions.InlineStatus, extensions.InlineVersion, extensions.InlineValue);
        else
            output.AppendResult(Status.Pending, TakeHole(UnknownHole, 0), default);
    }

    private void ManageExtensions(IWorkerContext worker, ConnectionContext connection, TenantInfo tenant, in Request request, FrameBuffer output)
    {
        var extensions = worker.Extensions;
        if (request.Op == OpCode.ListExtensions)
        {
            var names = extensions.Node.Host.List(tenant.Id);
            output.AppendResult(Status.Ok, (ulong)names.Count, Encoding.UTF8.GetBytes(string.Join('\n', names)));
            return;
        }
        string name = Encoding.UTF8.GetString(request.Key);
        string? source = request.Op == OpCode.Install ? Encoding.UTF8.GetString(request.Value) : null;
        long cookie = extensions.Cookie(connection, (uint)NextHole);
        // Unknown keys: an install or removal changes what later invocations run.
        output.AppendResult(Status.Pending, TakeHole(UnknownHole, 0), default);
        extensions.Submit(tenant.Id, name, source, cookie);
    }
}
