using System.Globalization;

namespace Hybrid.Transport.Peer;

/// <summary>
/// Command line of the peer: <c>serve|client|bench TRANSPORT ADDRESS [--vdev V] [--eal "ARGS"] [--drop R]
/// [--count N] [--scenario S] [--tag T] [--peer-timeout-ms N] [--connect-timeout-ms N]</c>. Builds the <see cref="TransportOptions"/> a node would.
/// </summary>
internal sealed record PeerArgs(string Mode, string Transport, string Address, Dictionary<string, string> Options)
{
    public static PeerArgs Parse(string[] args)
    {
        if (args.Length < 3)
            throw new ArgumentException("usage: peer serve|client MODE TRANSPORT ADDRESS [--key value]...");
        var options = new Dictionary<string, string>();
        for (int i = 3; i + 1 < args.Length; i += 2)
            options[args[i].TrimStart('-')] = args[i + 1];
        return new PeerArgs(args[0], args[1], args[2], options);
    }

    public string Get(string key, string fallback) => Options.GetValueOrDefault(key, fallback);

    public int GetInt(string key, int fallback) => int.Parse(Get(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

    public TransportOptions TransportOptions()
    {
        var kind = Hybrid.Transport.TransportOptions.ParseKind(Transport);
        var dpdk = new DpdkOptions();
        if (kind == TransportKind.Dpdk)
        {
            dpdk = dpdk with
            {
                Vdev = Get("vdev", ""),
                EalArgs = Get("eal", string.Join(' ', dpdk.EalArgs)).Split(' ', StringSplitOptions.RemoveEmptyEntries),
                DropRate = double.Parse(Get("drop", "0"), CultureInfo.InvariantCulture),
                PeerTimeout = TimeSpan.FromMilliseconds(GetInt("peer-timeout-ms", 2000)),
            };
        }
        return new TransportOptions { Kind = kind, MaxMessageBytes = 1 << 20, ConnectTimeout = TimeSpan.FromMilliseconds(GetInt("connect-timeout-ms", 10_000)), Dpdk = dpdk };
    }
}
