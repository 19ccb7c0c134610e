using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Hybrid.Node.Tenants;

/// <summary>
/// The node's tenants, persisted as an append-only log <c>tenants.log</c> in the data directory: one JSON record per
/// line, a later line for the same id replacing the earlier one (a quota change). A change appends one line and
/// flushes it to disk before it is visible, so creating a tenant costs one append and one fsync whatever the number
/// of tenants (rewriting a whole file per create made 5,000 creates take a minute). A crash mid-append leaves a torn
/// last line, which <see cref="Open"/> drops (that change was never acknowledged). At open the log is compacted (one
/// line per tenant, written to a temporary file and renamed) when it holds many superseded lines. A legacy
/// <c>tenants.json</c> is imported once. Reads are lock-free lookups in concurrent dictionaries; changes take a lock.
/// </summary>
public sealed class TenantRegistry
{
    /// <summary>File name of the log inside the data directory.</summary>
    public const string FileName = "tenants.log";

    /// <summary>The whole-file format of earlier versions, imported (and removed) when no log exists yet.</summary>
    public const string LegacyFileName = "tenants.json";

    private static readonly JsonSerializerOptions s_json = new();

    private readonly string? _path;
    private readonly Lock _writeLock = new();
    private readonly ConcurrentDictionary<uint, TenantInfo> _byId = new();
    private readonly ConcurrentDictionary<string, TenantInfo> _byName = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TenantInfo>.AlternateLookup<ReadOnlySpan<char>> _byNameSpan;
    private uint _nextId = 1;

    private TenantRegistry(string? path)
    {
        _path = path;
        _byNameSpan = _byName.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Every tenant (a copy, for administration).</summary>
    public IReadOnlyCollection<TenantInfo> All => [.. _byId.Values];

    /// <summary>Opens (or creates) the registry of <paramref name="dataDirectory"/>; null keeps it in memory only.</summary>
    public static TenantRegistry Open(string? dataDirectory)
    {
        if (dataDirectory is null)
            return new TenantRegistry(null);
        Directory.CreateDirectory(dataDirectory);
        var registry = new TenantRegistry(Path.Combine(dataDirectory, FileName));
        registry.Load(Path.Combine(dataDirectory, LegacyFileName));
        return registry;
    }

    /// <summary>Finds a tenant by name (lock-free).</summary>
    public bool TryGet(string name, out TenantInfo tenant) => _byName.TryGetValue(name, out tenant!);

    /// <summary>Finds a tenant by name given as UTF-8 bytes (HELLO's key), without allocating.</summary>
    public bool TryGet(ReadOnlySpan<byte> utf8Name, out TenantInfo tenant)
    {
        tenant = null!;
        Span<char> chars = stackalloc char[256];
        if (utf8Name.Length > chars.Length || !Encoding.UTF8.TryGetChars(utf8Name, chars, out int written))
            return false;
        return _byNameSpan.TryGetValue(chars[..written], out tenant!);
    }

    private long _authFailures;

    /// <summary>Failed authentications on this node, native and RESP (<c>hybrid_auth_failures_total</c>): a rising count is someone guessing.</summary>
    public long AuthFailures => Interlocked.Read(ref _authFailures);

    /// <summary>Counts one failed authentication (a wrong proof or password, or an unknown tenant at AUTH).</summary>
    public void CountAuthFailure() => Interlocked.Increment(ref _authFailures);

    /// <summary>Finds a tenant by id (lock-free): workers use it to see quota changes.</summary>
    public bool TryGet(uint id, out TenantInfo tenant) => _byId.TryGetValue(id, out tenant!);

    /// <summary>Adds a tenant with the next free id; durable when this returns. Throws if the name exists.</summary>
    public TenantInfo Create(string name, byte[] secret, long maxBytes = 0, long maxOpsPerSecond = 0, double extensionCores = 0)
    {
        TenantInfo.CheckName(name);
        TenantInfo.CheckQuotas(maxBytes, maxOpsPerSecond, extensionCores);
        lock (_writeLock)
        {
            if (_byName.ContainsKey(name))
                throw new InvalidOperationException($"tenant '{name}' exists");
            var tenant = new TenantInfo(_nextId, name, secret, maxBytes, maxOpsPerSecond, extensionCores);
            Append(tenant);
            _nextId++;
            Publish(tenant);
            return tenant;
        }
    }

    /// <summary>
    /// Changes a tenant's quotas (durably); <paramref name="extensionCores"/> null keeps the extension CPU quota. Workers
    /// apply them at their next refresh, the node's extensions at once (<see cref="Changed"/>).
    /// </summary>
    public TenantInfo SetQuotas(string name, long maxBytes, long maxOpsPerSecond, double? extensionCores = null)
    {
        TenantInfo.CheckQuotas(maxBytes, maxOpsPerSecond, extensionCores ?? 0);
        return Update(name, old => old with
        {
            MaxBytes = maxBytes,
            MaxOpsPerSecond = maxOpsPerSecond,
            ExtensionCores = Cores(extensionCores ?? old.ExtensionCores),
        });
    }

    /// <summary>
    /// Replaces tenant <paramref name="name"/>'s secret (rotation, or giving the <c>default</c> tenant one so its node
    /// may listen beyond loopback), durably: sessions opened from then on prove the new one.
    /// </summary>
    public TenantInfo SetSecret(string name, byte[] secret)
    {
        // An empty secret would turn AUTH off for the tenant: only the loopback default is created without one.
        if (secret.Length == 0)
            throw new ArgumentException("a secret cannot be empty");
        return Update(name, old => old with { Secret = secret });
    }

    /// <summary>Changes tenant <paramref name="id"/>'s extension CPU quota (≤ 0: none), durably.</summary>
    public TenantInfo SetExtensionCores(uint id, double cores) =>
        Update(TryGet(id, out var tenant) ? tenant.Name : throw new KeyNotFoundException($"no tenant with id {id}"),
            old => old with { ExtensionCores = Cores(Math.Max(cores, 0)) });

    /// <summary>Replaces tenant <paramref name="name"/>'s record by <paramref name="change"/> of it, durably.</summary>
    private TenantInfo Update(string name, Func<TenantInfo, TenantInfo> change)
    {
        lock (_writeLock)
        {
            if (!_byName.TryGetValue(name, out var old))
                throw new KeyNotFoundException($"no tenant '{name}'");
            var updated = change(old);
            Append(updated);
            Publish(updated);
            return updated;
        }
    }

    /// <summary>Raised after a tenant was created or changed here (under the registry's write lock: keep it short).</summary>
    public event Action<TenantInfo>? Changed;

    private static double Cores(double cores)
    {
        TenantInfo.CheckQuotas(0, 0, cores);
        return cores;
    }

    /// <summary>
    /// Makes <paramref name="tenant"/> (id, name, secret and quotas as given) one of this node's tenants, durably: what a
    /// cluster node does with the cluster's tenants, whose ids the cluster assigns. No change when the same tenant is
    /// already here; false then. Throws when its id belongs to another name here, or its name to another id.
    /// </summary>
    public bool Apply(TenantInfo tenant) => ApplyAll([tenant]) == 1;

    /// <summary>
    /// <see cref="Apply"/> for many tenants with one append and one flush to disk (a node joining a cluster of thousands
    /// of tenants must not pay an fsync each). All or nothing: nothing changes when one of them is refused. Returns how
    /// many were new or changed.
    /// </summary>
    public int ApplyAll(IReadOnlyList<TenantInfo> tenants)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        lock (_writeLock)
        {
            var changed = new List<TenantInfo>();
            var ids = new Dictionary<uint, string>();
            var names = new Dictionary<string, uint>(StringComparer.Ordinal);
            foreach (TenantInfo tenant in tenants)
            {
                ArgumentNullException.ThrowIfNull(tenant);
                ArgumentException.ThrowIfNullOrWhiteSpace(tenant.Name);
                string? idName = ids.TryGetValue(tenant.Id, out var n) ? n : _byId.TryGetValue(tenant.Id, out var sameId) ? sameId.Name : null;
                if (idName is not null && idName != tenant.Name)
                    throw new InvalidOperationException($"tenant id {tenant.Id} is '{idName}' here, not '{tenant.Name}'");
                uint? nameId = names.TryGetValue(tenant.Name, out var i) ? i : _byName.TryGetValue(tenant.Name, out var sameName) ? sameName.Id : null;
                if (nameId is not null && nameId != tenant.Id)
                    throw new InvalidOperationException($"tenant '{tenant.Name}' has id {nameId} here, not {tenant.Id}");
                ids[tenant.Id] = tenant.Name;
                names[tenant.Name] = tenant.Id;
                if (!(_byId.TryGetValue(tenant.Id, out var current) && Same(current, tenant)))
                    changed.Add(tenant);
            }
            Append(changed);
            foreach (TenantInfo tenant in changed)
            {
                _nextId = Math.Max(_nextId, tenant.Id + 1);
                Publish(tenant);
            }
            return changed.Count;
        }
    }

    /// <summary>Whether two records of one tenant agree on everything (a record's array compares by reference).</summary>
    private static bool Same(TenantInfo a, TenantInfo b) =>
        a.Id == b.Id && a.Name == b.Name && a.Secret.AsSpan().SequenceEqual(b.Secret)
        && a.MaxBytes == b.MaxBytes && a.MaxOpsPerSecond == b.MaxOpsPerSecond && a.ExtensionCores.Equals(b.ExtensionCores);

    private void Publish(TenantInfo tenant)
    {
        _byId[tenant.Id] = tenant;
        _byName[tenant.Name] = tenant;
        Changed?.Invoke(tenant);
    }

    /// <summary>Appends one record and flushes it to disk (the change is acknowledged only after that).</summary>
    private void Append(TenantInfo tenant) => Append([tenant]);

    /// <summary>Appends the records and flushes them to disk once (a change is acknowledged only after that).</summary>
    private void Append(IReadOnlyList<TenantInfo> tenants)
    {
        if (_path is null || tenants.Count == 0)
            return;
        bool created = !File.Exists(_path);
        using (var log = new FileStream(_path, Transport.FileDurability.OwnerOnly(FileMode.Append, FileShare.Read)))
        {
            foreach (TenantInfo tenant in tenants)
                log.Write(Line(tenant));
            log.Flush(flushToDisk: true);
        }
        if (created)
            Transport.FileDurability.TrySyncDirectory(Path.GetDirectoryName(_path)!); // the new file's name, too
    }

    private static byte[] Line(TenantInfo t)
    {
        var record = new TenantRecord(t.Id, t.Name, Convert.ToBase64String(t.Secret), t.MaxBytes, t.MaxOpsPerSecond, t.ExtensionCores);
        return [.. JsonSerializer.SerializeToUtf8Bytes(record, s_json), (byte)'\n'];
    }

    /// <summary>Replays the log (or imports the legacy file), drops a torn tail and compacts when worthwhile.</summary>
    private void Load(string legacyPath)
    {
        string path = _path!;
        int lines = 0;
        if (File.Exists(path))
        {
            // The log holds every tenant's secret: readable by the node's user only (logs written before this rule
            // were created with the umask's mode).
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var bytes = File.ReadAllBytes(path);
            int start = 0;
            while (true)
            {
                int end = Array.IndexOf(bytes, (byte)'\n', start);
                // No terminating newline: the last append was torn by a crash and never acknowledged.
                if (end < 0 || !TryParse(bytes.AsSpan(start, end - start), out var tenant))
                    break;
                Replay(tenant);
                lines++;
                start = end + 1;
            }
            if (start < bytes.Length || lines > 2 * _byId.Count + 64)
                Rewrite(path);
        }
        else if (File.Exists(legacyPath))
        {
            var records = JsonSerializer.Deserialize<List<TenantRecord>>(File.ReadAllText(legacyPath)) ?? [];
            foreach (var r in records)
                Replay(new TenantInfo(r.Id, r.Name, Convert.FromBase64String(r.Secret), r.MaxBytes, r.MaxOpsPerSecond, r.ExtensionCores));
            Rewrite(path);
            File.Delete(legacyPath);
        }
    }

    private void Replay(TenantInfo tenant)
    {
        if (_byId.TryGetValue(tenant.Id, out var old) && old.Name != tenant.Name)
            _byName.TryRemove(old.Name, out _);
        Publish(tenant);
        _nextId = Math.Max(_nextId, tenant.Id + 1);
    }

    private static bool TryParse(ReadOnlySpan<byte> line, out TenantInfo tenant)
    {
        tenant = null!;
        try
        {
            if (JsonSerializer.Deserialize<TenantRecord>(line, s_json) is not { Name: not null, Secret: not null } r)
                return false;
            tenant = new TenantInfo(r.Id, r.Name, Convert.FromBase64String(r.Secret), r.MaxBytes, r.MaxOpsPerSecond, r.ExtensionCores);
            return true;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return false;
        }
    }

    /// <summary>Writes one line per tenant to a temporary file, flushes it and renames it over the log.</summary>
    private void Rewrite(string path)
    {
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, Transport.FileDurability.OwnerOnly(FileMode.Create, FileShare.None)))
        {
            foreach (var tenant in _byId.Values.OrderBy(t => t.Id))
                file.Write(Line(tenant));
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        Transport.FileDurability.TrySyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>One line of the log; <c>ExtensionCores</c> is absent from lines written before it existed (0).</summary>
    private sealed record TenantRecord(uint Id, string Name, string Secret, long MaxBytes, long MaxOpsPerSecond, double ExtensionCores = 0);
}
