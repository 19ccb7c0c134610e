using System.Text.Json;
using System.Text.Json.Serialization;
using Hybrid.Node.Tenants;

namespace Hybrid.Cluster;

/// <summary>
/// The cluster's tenants, kept in the metadata store under <c>&lt;root&gt;/tenants/&lt;name&gt;</c>, with ids the
/// cluster assigns (<c>&lt;root&gt;/tenant-next-id</c>, taken in the same transaction that creates a tenant).
/// </summary>
/// <remarks>
/// <para>
/// Why: a record is stored under its tenant's id, and migration moves records by id. When every node numbered its own
/// tenants, a range moved from a node where id 2 was one tenant to a node where id 2 was another: the second tenant read
/// the first one's records, and the first one lost them. In a cluster, tenants are therefore created here, and every
/// node adopts this list (<see cref="Adopt"/>) before it registers, and then every change as it happens
/// (<see cref="FollowAsync"/>).
/// </para>
/// <para>
/// Id 1 is <see cref="TenantInfo.DefaultName"/>'s, the tenant without a secret that a loopback-only node creates for
/// itself; the cluster never gives it to anyone else, and never creates a tenant of that name.
/// </para>
/// </remarks>
public sealed class ClusterTenants : MetadataFolder
{
    /// <summary>The id every node's <c>default</c> tenant has in a cluster.</summary>
    public const uint DefaultId = TenantInfo.DefaultId;

    private static readonly JsonSerializerOptions s_json = new();

    /// <summary>Uses the tenants of the cluster under <paramref name="root"/> in <paramref name="store"/> (the caller owns it).</summary>
    public ClusterTenants(IMetadataStore store, string root = "/hybrid")
        : base(store, root, "tenants")
    {
    }

    /// <summary>The key of the next id to assign.</summary>
    public string NextIdKey => Root + "/tenant-next-id";

    /// <summary>Bound on lost races in one change; reaching it means a livelock, not bad luck.</summary>
    public int MaxAttempts { get; init; } = 1000;

    /// <summary>
    /// Creates tenant <paramref name="name"/> with the next cluster-wide id; durable when this returns. Throws
    /// <see cref="InvalidOperationException"/> when the name exists (or is <c>default</c>).
    /// </summary>
    public async Task<TenantInfo> CreateAsync(string name, byte[] secret, long maxBytes = 0, long maxOpsPerSecond = 0,
        double extensionCores = 0, CancellationToken cancellationToken = default)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(secret);
        if (secret.Length == 0)
            throw new ArgumentException($"tenant '{name}' needs a secret: only '{TenantInfo.DefaultName}' may skip AUTH", nameof(secret));
        CheckQuotas(maxBytes, maxOpsPerSecond, extensionCores);
        string key = Prefix + name;
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            MetadataEntry? next = await Store.GetAsync(NextIdKey, cancellationToken).ConfigureAwait(false);
            uint id = next is null ? DefaultId + 1 : JsonSerializer.Deserialize<uint>(next.Value.Span, s_json);
            var tenant = new TenantInfo(id, name, secret, maxBytes, maxOpsPerSecond, extensionCores);
            TxnResult result = await Store.CompareAndSwapManyAsync(
            [
                MetadataOp.Put(NextIdKey, next?.Revision ?? MetadataRevision.Absent, JsonSerializer.SerializeToUtf8Bytes(id + 1, s_json)),
                MetadataOp.Put(key, MetadataRevision.Absent, Encode(tenant)),
            ], cancellationToken).ConfigureAwait(false);
            if (result.Succeeded)
                return tenant;
            if (result.Current[1] is not null)
                throw new InvalidOperationException($"tenant '{name}' exists");
        }
        throw new InvalidOperationException($"creating tenant '{name}' lost {MaxAttempts} races in a row");
    }

    /// <summary>
    /// Changes tenant <paramref name="name"/>'s quotas (a null one stays as it is); nodes apply them as they see the
    /// change.
    /// </summary>
    public Task<TenantInfo> SetQuotasAsync(string name, long? maxBytes = null, long? maxOpsPerSecond = null, double? extensionCores = null,
        CancellationToken cancellationToken = default)
    {
        CheckQuotas(maxBytes ?? 0, maxOpsPerSecond ?? 0, extensionCores ?? 0);
        return UpdateAsync(name, old => old with
        {
            MaxBytes = maxBytes ?? old.MaxBytes,
            MaxOpsPerSecond = maxOpsPerSecond ?? old.MaxOpsPerSecond,
            ExtensionCores = extensionCores ?? old.ExtensionCores,
        }, cancellationToken);
    }

    /// <summary>
    /// Replaces tenant <paramref name="name"/>'s secret (rotation); nodes apply it as they see the change: sessions
    /// opened from then on prove the new one, open sessions go on.
    /// </summary>
    public Task<TenantInfo> SetSecretAsync(string name, byte[] secret, CancellationToken cancellationToken = default) =>
        secret.Length == 0 ? throw new ArgumentException("a secret cannot be empty") : UpdateAsync(name, old => old with { Secret = secret }, cancellationToken);

    private async Task<TenantInfo> UpdateAsync(string name, Func<TenantInfo, TenantInfo> change, CancellationToken cancellationToken)
    {
        CheckName(name);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            MetadataEntry entry = await Store.GetAsync(Prefix + name, cancellationToken).ConfigureAwait(false)
                ?? throw new KeyNotFoundException($"no tenant '{name}' in the cluster");
            TenantInfo updated = change(Decode(entry.Key, entry.Value));
            CasResult result = await Store.CompareAndSwapAsync(entry.Key, entry.Revision, Encode(updated), 0, cancellationToken).ConfigureAwait(false);
            if (result.Succeeded)
                return updated;
        }
        throw new InvalidOperationException($"changing tenant '{name}' lost {MaxAttempts} races in a row");
    }

    /// <summary>
    /// Every tenant of the cluster, by id, and a revision to follow changes from (<see cref="FollowAsync"/>): no change
    /// after the list is missed, and one before it may be seen again (adopting is idempotent).
    /// </summary>
    public async Task<(IReadOnlyList<TenantInfo> Tenants, long Revision)> ListAsync(CancellationToken cancellationToken = default)
    {
        (IReadOnlyList<MetadataEntry> entries, long revision) = await ListEntriesAsync(cancellationToken).ConfigureAwait(false);
        return ([.. entries.Select(e => Decode(e.Key, e.Value)).OrderBy(t => t.Id)], revision);
    }

    /// <summary>
    /// Makes <paramref name="registry"/> (a node's) agree with the cluster's <paramref name="tenants"/>: adds or updates
    /// each of them under its cluster id. Throws, changing nothing, when the node holds a tenant the cluster does not
    /// (other than <c>default</c> with id 1) or one under another id: its records would be another tenant's after a
    /// migration, so the node must not serve until an operator settles it.
    /// </summary>
    public static void Adopt(TenantRegistry registry, IReadOnlyList<TenantInfo> tenants)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(tenants);
        var byId = tenants.ToDictionary(t => t.Id);
        var problems = new List<string>();
        foreach (TenantInfo local in registry.All.OrderBy(t => t.Id))
        {
            if (local.Name == TenantInfo.DefaultName)
            {
                if (local.Id != DefaultId)
                    problems.Add($"'{local.Name}' has id {local.Id} here, but a cluster reserves id {DefaultId} for it");
            }
            else if (!byId.TryGetValue(local.Id, out TenantInfo? clustered))
            {
                problems.Add($"'{local.Name}' (id {local.Id}) is not one of the cluster's tenants");
            }
            else if (clustered.Name != local.Name)
            {
                problems.Add($"id {local.Id} is '{local.Name}' here but '{clustered.Name}' in the cluster");
            }
        }
        foreach (TenantInfo tenant in tenants)
        {
            if (registry.TryGet(tenant.Name, out TenantInfo local) && local.Id != tenant.Id)
                problems.Add($"'{tenant.Name}' has id {local.Id} here but {tenant.Id} in the cluster");
        }
        if (problems.Count > 0)
        {
            throw new InvalidOperationException(
                "this node's data directory disagrees with the cluster's tenants: " + string.Join("; ", problems)
                + ". A cluster's tenants are created with 'hybrid tenant create NAME --metadata LOCATION'; move the node's"
                + $" {TenantRegistry.FileName} aside once its records are safe elsewhere.");
        }
        registry.ApplyAll(tenants);
    }

    /// <summary>
    /// Applies every tenant created or changed after <paramref name="revision"/> to <paramref name="registry"/> until
    /// cancelled. When the store no longer holds that history, or cannot be reached for a while, it lists the tenants
    /// again and goes on from there. A change the registry refuses is reported to <paramref name="refused"/> and
    /// skipped (only this class writes the cluster's tenants, so that means someone edited a node's directory).
    /// </summary>
    public Task FollowAsync(TenantRegistry registry, long revision, Action<Exception> refused, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(refused);
        return FollowEntriesAsync(revision,
            e =>
            {
                if (e.Kind == WatchEventKind.Put)
                    Apply(registry, e.Key, e.Value, refused);
                return Task.CompletedTask;
            }, cancellationToken);
    }

    /// <summary>
    /// Applies one record; reports (and skips) one it cannot read or the registry refuses. A disk failure
    /// (<see cref="IOException"/>) goes up, so the follower lists again and retries it.
    /// </summary>
    private static void Apply(TenantRegistry registry, string key, ReadOnlyMemory<byte> value, Action<Exception> refused)
    {
        try
        {
            registry.Apply(Decode(key, value));
        }
        catch (IOException e)
        {
            refused(e);   // and up: the follower lists again and retries
            throw;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            refused(e);
        }
    }

    private static void CheckName(string name)
    {
        if (name == TenantInfo.DefaultName)
            throw new InvalidOperationException($"tenant '{name}' exists: every node has it, with id {DefaultId} and no secret");
        TenantInfo.CheckName(name);
    }

    private static void CheckQuotas(long maxBytes, long maxOpsPerSecond, double extensionCores) =>
        TenantInfo.CheckQuotas(maxBytes, maxOpsPerSecond, extensionCores);

    private static byte[] Encode(TenantInfo t) => JsonSerializer.SerializeToUtf8Bytes(
        new Record(t.Id, t.Name, Convert.ToBase64String(t.Secret), t.MaxBytes, t.MaxOpsPerSecond, t.ExtensionCores), s_json);

    /// <summary>Reads a tenant record; throws <see cref="InvalidDataException"/> naming the key when it cannot.</summary>
    private static TenantInfo Decode(string key, ReadOnlyMemory<byte> value)
    {
        try
        {
            if (JsonSerializer.Deserialize<Record>(value.Span, s_json) is not { Name: { Length: > 0 } name, Secret: { } secret } r)
                throw new InvalidDataException("no name or no secret");
            return new TenantInfo(r.Id, name, Convert.FromBase64String(secret), r.MaxBytes, r.MaxOpsPerSecond, r.ExtensionCores);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"the tenant record {key} cannot be read: {e.Message}", e);
        }
    }

    private sealed record Record(
        [property: JsonPropertyName("id")] uint Id,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("secret")] string Secret,
        [property: JsonPropertyName("maxBytes")] long MaxBytes,
        [property: JsonPropertyName("maxOpsPerSecond")] long MaxOpsPerSecond,
        [property: JsonPropertyName("extensionCores")] double ExtensionCores = 0);
}
