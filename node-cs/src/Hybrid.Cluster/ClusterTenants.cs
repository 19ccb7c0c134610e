using System.Runtime.CompilerServices;
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
public sealed class ClusterTenants
{
    /// <summary>The id every node's <c>default</c> tenant has in a cluster.</summary>
    public const uint DefaultId = 1;

    private static readonly JsonSerializerOptions s_json = new();
    private readonly IMetadataStore _store;
    private readonly string _stateKey;

    /// <summary>Uses the tenants of the cluster under <paramref name="root"/> in <paramref name="store"/> (the caller owns it).</summary>
    public ClusterTenants(IMetadataStore store, string root = "/hybrid")
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(root);
        _store = store;
        Prefix = root + "/tenants/";
        NextIdKey = root + "/tenant-next-id";
        _stateKey = root + "/state";
    }

    /// <summary>The prefix of tenant records.</summary>
    public string Prefix { get; }

    /// <summary>The key of the next id to assign.</summary>
    public string NextIdKey { get; }

    /// <summary>Bound on lost races in one change; reaching it means a livelock, not bad luck.</summary>
    public int MaxAttempts { get; init; } = 1000;

    /// <summary>
    /// Creates tenant <paramref name="name"/> with the next cluster-wide id; durable when this returns. Throws
    /// <see cref="InvalidOperationException"/> when the name exists (or is <c>default</c>).
    /// </summary>
    public async Task<TenantInfo> CreateAsync(string name, byte[] secret, long maxBytes = 0, long maxOpsPerSecond = 0,
        CancellationToken cancellationToken = default)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(secret);
        if (secret.Length == 0)
            throw new ArgumentException($"tenant '{name}' needs a secret: only '{TenantInfo.DefaultName}' may skip AUTH", nameof(secret));
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(maxOpsPerSecond);
        string key = Prefix + name;
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            MetadataEntry? next = await _store.GetAsync(NextIdKey, cancellationToken).ConfigureAwait(false);
            uint id = next is null ? DefaultId + 1 : JsonSerializer.Deserialize<uint>(next.Value.Span, s_json);
            var tenant = new TenantInfo(id, name, secret, maxBytes, maxOpsPerSecond);
            TxnResult result = await _store.CompareAndSwapManyAsync(
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

    /// <summary>Changes tenant <paramref name="name"/>'s quotas; nodes apply them as they see the change.</summary>
    public async Task<TenantInfo> SetQuotasAsync(string name, long maxBytes, long maxOpsPerSecond, CancellationToken cancellationToken = default)
    {
        CheckName(name);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(maxOpsPerSecond);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            MetadataEntry entry = await _store.GetAsync(Prefix + name, cancellationToken).ConfigureAwait(false)
                ?? throw new KeyNotFoundException($"no tenant '{name}' in the cluster");
            TenantInfo updated = Decode(entry.Value) with { MaxBytes = maxBytes, MaxOpsPerSecond = maxOpsPerSecond };
            CasResult result = await _store.CompareAndSwapAsync(entry.Key, entry.Revision, Encode(updated), 0, cancellationToken).ConfigureAwait(false);
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
        // A lower bound of the store's revision now, even when no tenant exists yet (a revision of 0 would mean "from
        // whenever the watch starts", and a tenant created in between would be missed).
        long revision = (await _store.GetAsync(_stateKey, cancellationToken).ConfigureAwait(false))?.Revision ?? 0;
        revision = Math.Max(revision, (await _store.GetAsync(NextIdKey, cancellationToken).ConfigureAwait(false))?.Revision ?? 0);
        IReadOnlyList<MetadataEntry> entries = await _store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false);
        foreach (MetadataEntry e in entries)
            revision = Math.Max(revision, e.Revision);
        return ([.. entries.Select(e => Decode(e.Value)).OrderBy(t => t.Id)], revision);
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
        foreach (TenantInfo tenant in tenants)
            registry.Apply(tenant);
    }

    /// <summary>
    /// Applies every tenant created or changed after <paramref name="revision"/> to <paramref name="registry"/> until
    /// cancelled. When the store no longer holds that history, or cannot be reached for a while, it lists the tenants
    /// again and goes on from there. A change the registry refuses is reported to <paramref name="refused"/> and
    /// skipped (only this class writes the cluster's tenants, so that means someone edited a node's directory).
    /// </summary>
    public async Task FollowAsync(TenantRegistry registry, long revision, Action<Exception> refused, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(refused);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (TenantInfo tenant in WatchAsync(revision, cancellationToken).ConfigureAwait(false))
                    Apply(registry, tenant, refused);
                return;
            }
            catch (Exception e) when (e is MetadataCompactedException or MetadataUnavailableException && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
                    (IReadOnlyList<TenantInfo> tenants, revision) = await ListAsync(cancellationToken).ConfigureAwait(false);
                    foreach (TenantInfo tenant in tenants)
                        Apply(registry, tenant, refused);
                }
                catch (MetadataUnavailableException)
                {
                    // still away: watch from the old revision again, which fails or resumes
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or FormatException)
            {
                refused(new InvalidDataException($"a tenant record in the metadata store cannot be read; this node stops following tenant changes: {e.Message}", e));
                return;
            }
        }
    }

    private static void Apply(TenantRegistry registry, TenantInfo tenant, Action<Exception> refused)
    {
        try
        {
            registry.Apply(tenant);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            refused(e);
        }
    }

    /// <summary>Tenants created or changed after <paramref name="revision"/>, as they happen, until cancelled.</summary>
    public async IAsyncEnumerable<TenantInfo> WatchAsync(long revision, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (WatchEvent e in _store.WatchAsync(Prefix, revision, cancellationToken).ConfigureAwait(false))
        {
            if (e.Kind == WatchEventKind.Put && e.Key.StartsWith(Prefix, StringComparison.Ordinal))
                yield return Decode(e.Value);
        }
    }

    private static void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name == TenantInfo.DefaultName)
            throw new InvalidOperationException($"tenant '{name}' exists: every node has it, with id {DefaultId} and no secret");
        if (name.Contains('/', StringComparison.Ordinal) || name.Length > 256 || name.Any(char.IsControl))
            throw new ArgumentException($"a tenant name is 1-256 characters without '/' or control characters: '{name}'", nameof(name));
    }

    private static byte[] Encode(TenantInfo t) => JsonSerializer.SerializeToUtf8Bytes(
        new Record(t.Id, t.Name, Convert.ToBase64String(t.Secret), t.MaxBytes, t.MaxOpsPerSecond), s_json);

    private static TenantInfo Decode(ReadOnlyMemory<byte> value)
    {
        Record r = JsonSerializer.Deserialize<Record>(value.Span, s_json) ?? throw new InvalidDataException("null tenant record");
        return new TenantInfo(r.Id, r.Name, Convert.FromBase64String(r.Secret), r.MaxBytes, r.MaxOpsPerSecond);
    }

    private sealed record Record(
        [property: JsonPropertyName("id")] uint Id,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("secret")] string Secret,
        [property: JsonPropertyName("maxBytes")] long MaxBytes,
        [property: JsonPropertyName("maxOpsPerSecond")] long MaxOpsPerSecond);
}
