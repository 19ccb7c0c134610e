namespace Hybrid.Node.Tests.Extensions;

/// <summary>Hostile tenant sources of the node tests; also compiled into Hybrid.Cluster.Tests (DPDK tenant tests) by a link.</summary>
internal static class HostileSources
{
    /// <summary>Spins forever without yielding: only the CPU budget (or the stuck-worker watchdog) stops it.</summary>
    internal const string Spin = """
        using Hybrid.Extensions.Abstractions;
        public static class Spin
        {
            [Extension]
            public static ExtensionTask Run(ExtensionContext ctx)
            {
                long i = 0;
                while (i >= 0) { i = (i + 1) & 0x7fff_ffff; }
                ctx.WriteInt64(i);
                return ExtensionTask.CompletedTask;
            }
        }
        """;
}
