using System.Diagnostics;

namespace Hybrid.Node.Tests.Transport;

/// <summary>A veth pair for af_packet tests (root: CAP_NET_ADMIN), IPv6 off so only our frames travel; removed on dispose.</summary>
internal sealed class Veth : IDisposable
{
    public Veth(string id)
    {
        A = $"hybn{id}a";
        B = $"hybn{id}b";
        Run("ip", ["link", "del", A], mustSucceed: false);
        Run("ip", ["link", "add", A, "type", "veth", "peer", "name", B], mustSucceed: true);
        foreach (var side in new[] { A, B })
        {
            Run("sysctl", ["-q", "-w", $"net.ipv6.conf.{side}.disable_ipv6=1"], mustSucceed: false);
            Run("ip", ["link", "set", side, "up"], mustSucceed: true);
        }
    }

    public string A { get; }

    public string B { get; }

    private static void Run(string file, string[] args, bool mustSucceed)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        process.WaitForExit();
        if (mustSucceed && process.ExitCode != 0)
            throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' failed ({process.StandardError.ReadToEnd().Trim()}): a veth pair needs root");
    }

    public void Dispose() => Run("ip", ["link", "del", A], mustSucceed: false);
}
