using System.Net;
using Hybrid.Node.Resp;

namespace Hybrid.Node.Hosting;

/// <summary>Registers the RESP front end (port <see cref="HybridNodeOptions.RespPort"/>, -1 = off) on the node's workers.</summary>
public sealed partial class HybridNode
{
    partial void RegisterFrontEnds()
    {
        if (Options.RespPort < 0)
        {
            return;
        }
        var host = Options.BindAddress.Equals(IPAddress.Any) ? IPAddress.Loopback : Options.BindAddress;
        var context = new RespServerContext(
            new RegistryTenantDirectory(Tenants),
            requireAuth: !Options.IsLoopbackOnly,
            Options.RespSlotMap ?? new SingleNodeSlotMap(host.ToString(), Options.RespPort),
            () => new IPEndPoint(host, PortOf("resp")),
            clusterEnabled: Options.RespSlotMap is not null,
            // A command must fit the connection's input buffer (the frame limit): a larger bulk is refused with an error
            // as soon as its length is read, instead of the connection closing when the buffer is full.
            limits: RespLimits.Default with
            {
                MaxBulkLength = Math.Min(RespLimits.Default.MaxBulkLength, Math.Max(1024, Options.Limits.MaxFrameBytes - 4096)),
                MaxReplyBytes = Options.Limits.MaxReplyBytes,
            },
            store: Store);
        // Straight into the front-end list: StartAsync has already left the "new" state AddListener insists on.
        _frontEnds.Add(("resp", Options.RespPort, new RespFrontEnd(context, Tenants, Options.Durability == Hybrid.Storage.DurabilityMode.Sync)));
    }
}
