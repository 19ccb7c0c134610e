namespace Hybrid.Node.Tenants;

/// <summary>
/// One tenant: its storage id (every key of its sessions is stored under it), name, secret and quotas. Immutable:
/// a change replaces the object in the <see cref="TenantRegistry"/>; workers see it at their next refresh.
/// </summary>
/// <param name="Id">Storage tenant id; unique, never reused.</param>
/// <param name="Name">Name a client gives in HELLO (or the RESP AUTH user name).</param>
/// <param name="Secret">HMAC key of the challenge-response; empty = no AUTH (allowed only on a loopback-only node).</param>
/// <param name="MaxBytes">Memory quota: bytes of keys + values stored; 0 = unlimited.</param>
/// <param name="MaxOpsPerSecond">Rate quota over all workers; 0 = unlimited.</param>
/// <param name="ExtensionCores">CPU quota of the tenant's extensions, in cores on average over all workers; 0 = unlimited.</param>
public sealed record TenantInfo(uint Id, string Name, byte[] Secret, long MaxBytes, long MaxOpsPerSecond, double ExtensionCores = 0)
{
    /// <summary>Name of the tenant that an embedded (loopback-only) node creates without a secret.</summary>
    public const string DefaultName = "default";

    /// <summary>Id of <see cref="DefaultName"/> wherever it is free (always in a cluster, which reserves it).</summary>
    public const uint DefaultId = 1;

    /// <summary>True when a session of this tenant must answer the HMAC challenge.</summary>
    public bool RequiresAuth => Secret.Length > 0;

    /// <summary>
    /// Throws <see cref="ArgumentException"/> (one line) unless <paramref name="name"/> can be a tenant's: 1-256 bytes of
    /// UTF-8 (what HELLO carries: a longer one could be created but never log in), no '/', no space or control character.
    /// </summary>
    public static void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('/', StringComparison.Ordinal) || System.Text.Encoding.UTF8.GetByteCount(name) > 256
            || name.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
            throw new ArgumentException($"a tenant name is 1-256 bytes of UTF-8 without '/', spaces or control characters, not '{name}'");
    }

    /// <summary>Throws <see cref="ArgumentException"/> (one line) unless each quota is 0 (none) or more and the cores finite.</summary>
    public static void CheckQuotas(long maxBytes, long maxOpsPerSecond, double extensionCores)
    {
        if (maxBytes < 0)
            throw new ArgumentException($"a memory quota is 0 (none) or more bytes, not {maxBytes}");
        if (maxOpsPerSecond < 0)
            throw new ArgumentException($"an ops/s quota is 0 (none) or more, not {maxOpsPerSecond}");
        if (!double.IsFinite(extensionCores) || extensionCores < 0)
            throw new ArgumentException(FormattableString.Invariant($"an extension CPU quota is a finite, non-negative number of cores, not {extensionCores}"));
    }
}
