using System.Diagnostics;
using System.Globalization;

namespace Hybrid.Transport.Dpdk;

/// <summary>
/// A veth pair for af_packet runs (tests and <c>hybrid bench transports</c>; root: CAP_NET_ADMIN), IPv6 off so only our
/// frames travel; removed on dispose.
/// <para>
/// DPDK's af_packet driver names its PACKET_FANOUT group <c>(getpid() ^ ifindex) &amp; 0xffff</c>, and the kernel
/// refuses (EINVAL) a group id that another socket of the network namespace already uses on another interface. Two
/// af_packet processes whose <c>pid ^ ifindex</c> agree in the low 16 bits therefore cannot both start. Both ends of a
/// pair made here get an ifindex whose low 16 bits are <see cref="FanoutIndexBits"/>, so the group ids of processes on
/// such pairs differ whenever their pids differ in the low 16 bits: always when <c>pid_max</c> is at most 65536.
/// </para>
/// </summary>
public sealed class VethPair : IDisposable
{
    /// <summary>The low 16 bits of both ends' ifindex.</summary>
    public const int FanoutIndexBits = 0x4859;

    private const int Attempts = 32;

    /// <summary>Creates <c>NAMEa</c> and <c>NAMEb</c> (removing a pair of that name left over by a killed run).</summary>
    public VethPair(string name)
    {
        A = name + "a";
        B = name + "b";
        if (A.Length > 15)
            throw new ArgumentException($"interface name '{A}' is longer than 15 characters", nameof(name));
        Run("ip", ["link", "del", A], mustSucceed: false);
        string failure = "";
        for (int attempt = 0; attempt < Attempts; attempt++)
        {
            // Indexes are k * 65536 + FanoutIndexBits; a taken one fails with "File exists" and we draw again.
            int high = Random.Shared.Next(1, 16_000) * 2;
            string indexA = Index(high), indexB = Index(high + 1);
            (bool ok, failure) = Run("ip", ["link", "add", A, "index", indexA, "type", "veth", "peer", "name", B, "index", indexB], mustSucceed: false);
            if (ok)
                break;
            if (!failure.Contains("exists", StringComparison.OrdinalIgnoreCase) || attempt == Attempts - 1)
                throw new InvalidOperationException($"'ip link add {A} type veth peer name {B}' failed ({failure}): a veth pair needs root (CAP_NET_ADMIN)");
        }
        foreach (string side in new[] { A, B })
        {
            // No IPv6 means no router solicitations or DAD frames on the link: only our frames travel.
            Run("sysctl", ["-q", "-w", $"net.ipv6.conf.{side}.disable_ipv6=1"], mustSucceed: false);
            Run("ip", ["link", "set", side, "up"], mustSucceed: true);
        }
    }

    /// <summary>The end a node listens on.</summary>
    public string A { get; }

    /// <summary>The end its client dials on.</summary>
    public string B { get; }

    private static string Index(int high) => (high * 65536 + FanoutIndexBits).ToString(CultureInfo.InvariantCulture);

    private static (bool Ok, string Error) Run(string file, string[] args, bool mustSucceed)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        Process? process;
        try
        {
            process = Process.Start(info);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run '{file}' (install iproute2 and procps): {e.Message}", e);
        }
        using (process)
        {
            if (process is null)
                throw new InvalidOperationException($"cannot run '{file}'");
            string error = process.StandardError.ReadToEnd().Trim();
            process.WaitForExit();
            if (mustSucceed && process.ExitCode != 0)
                throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' failed ({error}): a veth pair needs root (CAP_NET_ADMIN)");
            return (process.ExitCode == 0, error);
        }
    }

    /// <summary>Removes the pair (deleting one end removes both).</summary>
    public void Dispose() => Run("ip", ["link", "del", A], mustSucceed: false);
}
