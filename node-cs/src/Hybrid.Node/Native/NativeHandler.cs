using Hybrid.Node.Hosting;
using Hybrid.Protocol;

namespace Hybrid.Node.Native;

/// <summary>The native protocol v1 front end (docs/protocol.md): one <see cref="NativeSession"/> per connection.</summary>
internal sealed class NativeHandler(ProtocolLimits limits, bool syncDurability) : IConnectionHandler
{
    /// <inheritdoc />
    public string Name => "native";

    /// <inheritdoc />
    public IConnectionState Open(ConnectionContext connection) => new NativeSession(limits, syncDurability);
}
