namespace Hybrid.Cluster;

/// <summary>One stored key of the file store (JSON: the value is base64).</summary>
internal sealed record StoredEntry(byte[] Value, long Revision, long LeaseId);

/// <summary>A lease of the file store: its TTL and the wall-clock millisecond at which it ends.</summary>
internal sealed record StoredLease(long TtlMs, long ExpiresAtMs);

/// <summary>A retained change, kept so that watchers polling the file see every revision, not only the last.</summary>
internal sealed record StoredEvent(WatchEventKind Kind, string Key, byte[] Value, long Revision);

/// <summary>
/// The whole content of the file store, loaded fresh under the lock for every mutation and replaced
/// atomically on disk. Readers share a cached instance, so an instance is never mutated once it has
/// been published through <see cref="FileMetadataStore"/>'s cache.
/// </summary>
internal sealed class FileMetadataState
{
    /// <summary>Bumped by every save (including lease keep-alives, which do not bump the revision).</summary>
    public long Generation { get; set; }

    /// <summary>The store revision: the revision of the newest mutation of an entry.</summary>
    public long Revision { get; set; }

    /// <summary>The id the next granted lease gets; ids are never reused.</summary>
    public long NextLeaseId { get; set; } = 1;

    /// <summary>Events with a revision at or below this may have been dropped from <see cref="Events"/>.</summary>
    public long CompactedRevision { get; set; }

    /// <summary>Live entries by key (ordinal comparison).</summary>
    public Dictionary<string, StoredEntry> Entries { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Live leases by id.</summary>
    public Dictionary<long, StoredLease> Leases { get; set; } = [];

    /// <summary>The newest changes in revision order, bounded by the store's retention options.</summary>
    public List<StoredEvent> Events { get; set; } = [];

    /// <summary>The earliest lease end, or 0 when there is no lease: readers compare it with the clock.</summary>
    public long NextExpiryMs() => Leases.Count == 0 ? 0 : Leases.Values.Min(l => l.ExpiresAtMs);

    /// <summary>The current entry of a key as the public type, or null.</summary>
    public MetadataEntry? Entry(string key) =>
        Entries.TryGetValue(key, out var e) ? new MetadataEntry(key, e.Value, e.Revision, e.LeaseId) : null;

    /// <summary>Applies a validated transaction: all comparisons first, then every write at one revision.</summary>
    public TxnResult Apply(IReadOnlyList<MetadataOp> operations, FileMetadataStoreOptions options)
    {
        foreach (var op in operations)
        {
            if (op.Kind == MetadataOpKind.Put && op.LeaseId != 0 && !Leases.ContainsKey(op.LeaseId))
            {
                throw new MetadataLeaseNotFoundException(op.LeaseId);
            }
        }

        var holds = operations.All(op =>
            MetadataChecks.Holds(op.Kind, op.ExpectedRevision, Entries.TryGetValue(op.Key, out var e) ? e.Revision : 0));
        if (!holds)
        {
            return new TxnResult(false, Revision, operations.Select(op => Entry(op.Key)).ToArray());
        }

        if (operations.All(op => op.Kind == MetadataOpKind.Check))
        {
            return new TxnResult(true, Revision, []);
        }

        var revision = ++Revision;
        foreach (var op in operations)
        {
            switch (op.Kind)
            {
                case MetadataOpKind.Put:
                    var value = op.Value.ToArray();
                    Entries[op.Key] = new StoredEntry(value, revision, op.LeaseId);
                    Events.Add(new StoredEvent(WatchEventKind.Put, op.Key, value, revision));
                    break;
                case MetadataOpKind.Delete:
                    Entries.Remove(op.Key);
                    Events.Add(new StoredEvent(WatchEventKind.Delete, op.Key, [], revision));
                    break;
                case MetadataOpKind.Check:
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(operations), op.Kind, "unknown operation kind");
            }
        }

        Trim(options);
        return new TxnResult(true, revision, []);
    }

    /// <summary>Creates a lease ending <paramref name="ttlMs"/> after <paramref name="nowMs"/>.</summary>
    public long Grant(long ttlMs, long nowMs)
    {
        var id = NextLeaseId++;
        Leases[id] = new StoredLease(ttlMs, nowMs + ttlMs);
        return id;
    }

    /// <summary>Restarts a live lease's TTL; false when the lease is gone.</summary>
    public bool KeepAlive(long leaseId, long nowMs)
    {
        if (!Leases.TryGetValue(leaseId, out var lease))
        {
            return false;
        }

        Leases[leaseId] = lease with { ExpiresAtMs = nowMs + lease.TtlMs };
        return true;
    }

    /// <summary>Ends every lease whose time has come, deleting its entries. True when anything changed.</summary>
    public bool ExpireLeases(long nowMs, FileMetadataStoreOptions options)
    {
        var expired = Leases.Where(l => l.Value.ExpiresAtMs <= nowMs).Select(l => l.Key).ToArray();
        foreach (var id in expired)
        {
            Revoke(id, options);
        }

        return expired.Length > 0;
    }

    /// <summary>Removes a lease and deletes its entries at one new revision. False when it did not exist.</summary>
    public bool Revoke(long leaseId, FileMetadataStoreOptions options)
    {
        if (!Leases.Remove(leaseId))
        {
            return false;
        }

        var bound = Entries.Where(e => e.Value.LeaseId == leaseId).Select(e => e.Key).Order(StringComparer.Ordinal).ToArray();
        if (bound.Length > 0)
        {
            Apply(bound.Select(k => MetadataOp.Delete(k, MetadataRevision.Any)).ToArray(), options);
        }

        return true;
    }

    /// <summary>Drops the oldest events beyond the retention bounds and remembers what was dropped.</summary>
    private void Trim(FileMetadataStoreOptions options)
    {
        var bytes = Events.Sum(e => (long)e.Value.Length + e.Key.Length);
        var drop = 0;
        // The newest event always stays, even when it alone exceeds the byte bound.
        while (drop < Events.Count - 1
               && (Events.Count - drop > options.MaxRetainedEvents || bytes > options.MaxRetainedEventBytes))
        {
            bytes -= Events[drop].Value.Length + Events[drop].Key.Length;
            CompactedRevision = Events[drop].Revision;
            drop++;
        }

        Events.RemoveRange(0, drop);
    }
}
