using System.Net;
using System.Text;
using Hybrid.Node.Resp;
using Hybrid.Protocol;
using Hybrid.Storage;

namespace Hybrid.Resp.Tests;

/// <summary>Tenants for tests: "default" (secret "pw") and "acme" (secret "s3cret").</summary>
internal sealed class TestTenants : IRespTenantDirectory
{
    public static readonly RespTenant Default = new("default", 1);
    public static readonly RespTenant Acme = new("acme", 2);

    public RespTenant DefaultTenant => Default;

    public RespTenant? Authenticate(string tenant, ReadOnlySpan<byte> secret) => tenant switch
    {
        "default" when secret.SequenceEqual("pw"u8) => Default,
        "acme" when secret.SequenceEqual("s3cret"u8) => Acme,
        _ => null,
    };
}

/// <summary>A slot map that serves only [<paramref name="lo"/>, <paramref name="hi"/>] and sends the rest to 10.0.0.2:7001.</summary>
internal sealed class PartialSlotMap(int lo, int hi) : IRespSlotMap
{
    public bool OwnsAllSlots => false;

    public string? RedirectFor(int slot) => slot >= lo && slot <= hi ? null : "10.0.0.2:7001";

    public IReadOnlyList<RespSlotRange> Ranges =>
    [
        new RespSlotRange(lo, hi, "127.0.0.1", 6380, new string('a', 40)),
        new RespSlotRange(hi + 1, Slot.Count - 1, "10.0.0.2", 7001, new string('b', 40)),
    ];

    public string MyNodeId => new('a', 40);
}

/// <summary>Feeds text to one <see cref="RespSession"/> over a store and returns the replies as text.</summary>
internal sealed class RespHarness : IDisposable
{
    private readonly IKvSession _kv;
    private byte[] _pending = [];

    public RespHarness(IKvStore? store = null, bool requireAuth = false, IRespSlotMap? slots = null, RespLimits? limits = null)
    {
        Store = store ?? new FakeKvStore();
        var endpoint = new IPEndPoint(IPAddress.Loopback, 6380);
        Context = new RespServerContext(new TestTenants(), requireAuth, slots ?? new SingleNodeSlotMap("127.0.0.1", 6380), () => endpoint,
            clusterEnabled: slots is not null, limits: limits, store: Store);
        Session = new RespSession(Context);
        _kv = Store.NewSession();
    }

    /// <summary>Another connection of <paramref name="other"/>'s listener (same context and store).</summary>
    public RespHarness(RespHarness other)
    {
        Store = other.Store;
        Context = other.Context;
        Session = new RespSession(Context);
        _kv = Store.NewSession();
    }

    public IKvStore Store { get; }

    public RespServerContext Context { get; }

    public RespSession Session { get; }

    /// <summary>Sends <paramref name="input"/> (appended to any partial command left before) and returns the replies.</summary>
    public string Send(string input) => Encoding.UTF8.GetString(SendBytes(Encoding.UTF8.GetBytes(input)));

    public byte[] SendBytes(byte[] input)
    {
        var all = _pending.Concat(input).ToArray();
        using var output = new FrameBuffer();
        Session.ProcessWaiting(all, _kv, output, out var consumed);
        _pending = all[consumed..];
        return output.Written.ToArray();
    }

    /// <summary>Sends one command as a RESP multibulk array.</summary>
    public string Command(params string[] args) => Send(Encode(args));

    public static string Encode(params string[] args)
    {
        var sb = new StringBuilder().Append('*').Append(args.Length).Append("\r\n");
        foreach (var a in args)
        {
            sb.Append('$').Append(Encoding.UTF8.GetByteCount(a)).Append("\r\n").Append(a).Append("\r\n");
        }
        return sb.ToString();
    }

    public void Dispose()
    {
        Session.Dispose();
        _kv.Dispose();
    }
}
