using System.Runtime.CompilerServices;

namespace Hybrid.Cluster;

/// <summary>
/// A folder of a cluster's metadata (<c>&lt;root&gt;/&lt;folder&gt;/</c>) whose entries every node mirrors: it lists them
/// with a revision to follow from, and follows changes, listing again when the store lost the history or was away.
/// </summary>
public abstract class MetadataFolder
{
    private readonly string _stateKey;

    /// <summary>Uses <c>&lt;root&gt;/&lt;folder&gt;/</c> in <paramref name="store"/> (the caller owns the store).</summary>
    protected MetadataFolder(IMetadataStore store, string root, string folder)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(root);
        Store = store;
        Root = root;
        Prefix = root + "/" + folder + "/";
        _stateKey = root + "/state";
    }

    /// <summary>The prefix of the folder's entries.</summary>
    public string Prefix { get; }

    /// <summary>The cluster's key root.</summary>
    protected string Root { get; }

    /// <summary>The metadata store.</summary>
    protected IMetadataStore Store { get; }

    /// <summary>
    /// Every entry of the folder, and a revision to follow changes from: the store's revision just before the list, so
    /// no change after the list is missed, one before it may be seen again (applying must be idempotent), and the
    /// watch starts from history the store still keeps. (Not the newest entry's revision: a folder that has been quiet
    /// while other keys changed would be followed from history the store has dropped, and the watch would fail as
    /// compacted at every attempt.)
    /// </summary>
    protected async Task<(IReadOnlyList<MetadataEntry> Entries, long Revision)> ListEntriesAsync(CancellationToken cancellationToken)
    {
        // A transaction that only checks returns the store's current revision and writes nothing, in both stores.
        TxnResult now = await Store.CompareAndSwapManyAsync([MetadataOp.Check(_stateKey, MetadataRevision.Any)], cancellationToken).ConfigureAwait(false);
        IReadOnlyList<MetadataEntry> entries = await Store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false);
        return (entries, now.Revision);
    }

    /// <summary>The folder's changes after <paramref name="revision"/>, as they happen, until cancelled.</summary>
    protected async IAsyncEnumerable<WatchEvent> WatchEntriesAsync(long revision, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (WatchEvent e in Store.WatchAsync(Prefix, revision, cancellationToken).ConfigureAwait(false))
        {
            if (e.Key.StartsWith(Prefix, StringComparison.Ordinal))
                yield return e;
        }
    }

    /// <summary>
    /// Applies every change after <paramref name="revision"/> until cancelled (<paramref name="change"/>). When the store no
    /// longer holds that history, cannot be reached, or applying a change failed on this node's disk
    /// (<see cref="IOException"/>), it waits 200 ms, lists the folder again, applies every entry as the put that wrote it,
    /// and follows on from there. The handler reports and swallows any other failure of its own entry.
    /// </summary>
    protected async Task FollowEntriesAsync(long revision, Func<WatchEvent, Task> change, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (WatchEvent e in WatchEntriesAsync(revision, cancellationToken).ConfigureAwait(false))
                    await change(e).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (e is MetadataCompactedException or MetadataUnavailableException or IOException && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
                    (IReadOnlyList<MetadataEntry> entries, long listedAt) = await ListEntriesAsync(cancellationToken).ConfigureAwait(false);
                    foreach (MetadataEntry listed in entries)
                        await change(new WatchEvent(WatchEventKind.Put, listed.Key, listed.Value, listed.Revision)).ConfigureAwait(false);
                    // Only once every entry applied: after a failed one the next attempt starts from the old revision.
                    revision = listedAt;
                }
                catch (Exception again) when (again is MetadataUnavailableException or IOException)
                {
                    // still away (or the disk still fails): watch from the old revision again, which fails or resumes
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }
}
