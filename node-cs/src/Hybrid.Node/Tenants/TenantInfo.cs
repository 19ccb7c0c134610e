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
}
