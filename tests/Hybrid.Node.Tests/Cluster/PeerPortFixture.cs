using System.Net;
using System.Security.Cryptography;
using Hybrid.Node.Cluster;

namespace Hybrid.Node.Tests.Cluster;

/// <summary>The peer key of the clusters these tests build in process (drawn once per test run).</summary>
internal static class TestPeerKey
{
    public static readonly byte[] Value = RandomNumberGenerator.GetBytes(PeerHandshake.KeyBytes);
}

/// <summary>A source store, loaded by the caller, served on a real peer port with <see cref="TestPeerKey"/>.</summary>
internal sealed class PeerPortFixture : IDisposable
{
    public PeerPortFixture(Action<SyncSession> load)
    {
        using (var s = new SyncSession(Store.Store.NewSession()))
            load(s);
        Source = new MigrationSource(Store.Store);
        Server = new PeerServer(new IPEndPoint(IPAddress.Loopback, 0), TestPeerKey.Value, Source, new PromptCores(2));
    }

    public TempStore Store { get; } = new();

    public MigrationSource Source { get; }

    public PeerServer Server { get; }

    public void Dispose()
    {
        Server.Dispose();
        Source.Dispose();
        Store.Dispose();
    }
}
