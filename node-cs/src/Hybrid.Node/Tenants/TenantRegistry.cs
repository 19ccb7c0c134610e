using System.Text.Json;

namespace Hybrid.Node.Tenants;

/// <summary>
/// The node's tenants, persisted as <c>tenants.json</c> in the data directory (written to a temporary file and
/// renamed, so a crash leaves the old or the new list, never half of one). Reads are lock-free lookups in an
/// immutable snapshot; changes (rare, administrative) take a lock and publish a new snapshot.
/// </summary>
public sealed class TenantRegistry
{
    /// <summary>File name inside the data directory.</summary>
    public const string FileName = "tenants.json";

    private readonly string? _path;
    private readonly Lock _writeLock = new();
    private Snapshot _snapshot;

    private TenantRegistry(string? path, Snapshot snapshot)
    {
        _path = path;
        _snapshot = snapshot;
    }

    /// <summary>Every tenant, by id.</summary>
    public IReadOnlyCollection<TenantInfo> All => Volatile.Read(ref _snapshot).ById.Values;

    /// <summary>Opens (or creates) the registry of <paramref name="dataDirectory"/>; null keeps it in memory only.</summary>
    public static TenantRegistry Open(string? dataDirectory)
    {
        if (dataDirectory is null)
            return new TenantRegistry(null, Snapshot.Empty);
        Directory.CreateDirectory(dataDirectory);
        string path = Path.Combine(dataDirectory, FileName);
        if (!File.Exists(path))
            return new TenantRegistry(path, Snapshot.Empty);
        var records = JsonSerializer.Deserialize<List<TenantRecord>>(File.ReadAllText(path)) ?? [];
        var tenants = records.Select(r => new TenantInfo(r.Id, r.Name, Convert.FromBase64String(r.Secret), r.MaxBytes, r.MaxOpsPerSecond));
        return new TenantRegistry(path, Snapshot.Of(tenants));
    }

    /// <summary>Finds a tenant by name (lock-free).</summary>
    public bool TryGet(string name, out TenantInfo tenant) => Volatile.Read(ref _snapshot).ByName.TryGetValue(name, out tenant!);

    /// <summary>Finds a tenant by name given as UTF-8 bytes (HELLO's key), without allocating.</summary>
    public bool TryGet(ReadOnlySpan<byte> utf8Name, out TenantInfo tenant)
    {
        tenant = null!;
        Span<char> chars = stackalloc char[256];
        if (utf8Name.Length > chars.Length || !System.Text.Encoding.UTF8.TryGetChars(utf8Name, chars, out int written))
            return false;
        return Volatile.Read(ref _snapshot).ByName.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(chars[..written], out tenant!);
    }

    /// <summary>Finds a tenant by id (lock-free): workers use it to see quota changes.</summary>
    public bool TryGet(uint id, out TenantInfo tenant) => Volatile.Read(ref _snapshot).ById.TryGetValue(id, out tenant!);

    /// <summary>Adds a tenant with the next free id and persists the registry. Throws if the name exists.</summary>
    public TenantInfo Create(string name, byte[] secret, long maxBytes = 0, long maxOpsPerSecond = 0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        lock (_writeLock)
        {
            var current = _snapshot;
            if (current.ByName.ContainsKey(name))
                throw new InvalidOperationException($"tenant '{name}' exists");
            uint id = current.ById.Count == 0 ? 1 : current.ById.Keys.Max() + 1;
            var tenant = new TenantInfo(id, name, secret, maxBytes, maxOpsPerSecond);
            Publish(Snapshot.Of(current.ById.Values.Append(tenant)));
            return tenant;
        }
    }

    /// <summary>Changes a tenant's quotas (and persists). Workers apply them at their next refresh.</summary>
    public TenantInfo SetQuotas(string name, long maxBytes, long maxOpsPerSecond)
    {
        lock (_writeLock)
        {
            var current = _snapshot;
            if (!current.ByName.TryGetValue(name, out var old))
                throw new KeyNotFoundException($"no tenant '{name}'");
            var updated = old with { MaxBytes = maxBytes, MaxOpsPerSecond = maxOpsPerSecond };
            Publish(Snapshot.Of(current.ById.Values.Where(t => t.Id != old.Id).Append(updated)));
            return updated;
        }
    }

    private void Publish(Snapshot next)
    {
        if (_path is not null)
        {
            var records = next.ById.Values.OrderBy(t => t.Id)
                .Select(t => new TenantRecord(t.Id, t.Name, Convert.ToBase64String(t.Secret), t.MaxBytes, t.MaxOpsPerSecond));
            string temp = _path + ".tmp";
            using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write))
            {
                JsonSerializer.Serialize(file, records.ToList(), s_json);
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, _path, overwrite: true);
        }
        Volatile.Write(ref _snapshot, next);
    }

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true };

    private sealed record TenantRecord(uint Id, string Name, string Secret, long MaxBytes, long MaxOpsPerSecond);

    private sealed record Snapshot(Dictionary<uint, TenantInfo> ById, Dictionary<string, TenantInfo> ByName)
    {
        public static Snapshot Empty { get; } = Of([]);

        public static Snapshot Of(IEnumerable<TenantInfo> tenants)
        {
            var list = tenants.ToList();
            return new Snapshot(list.ToDictionary(t => t.Id), list.ToDictionary(t => t.Name, StringComparer.Ordinal));
        }
    }
}
