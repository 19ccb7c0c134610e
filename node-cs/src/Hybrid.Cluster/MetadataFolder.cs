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
    /// Every entry of the folder, and a revision to follow changes from: none after the list is missed, and one before
    /// it may be seen again (so applying must be idempotent).
    /// </summary>
    protected async Task<(IReadOnlyList<MetadataEntry> Entries, long Revision)> ListEntriesAsync(CancellationToken cancellationToken)
    {
        // A lower bound of the store's revision now, even when the folder is empty: 0 would mean "from whenever the watch
        // starts", and an entry written in between would be missed.
        long revision = (await Store.GetAsync(_stateKey, cancellationToken).ConfigureAwait(false))?.Revision ?? 0;
        IReadOnlyList<MetadataEntry> entries = await Store.ListAsync(Prefix, cancellationToken).ConfigureAwait(false);
        foreach (MetadataEntry e in entries)
            revision = Math.Max(revision, e.Revision);
        return (entries, revision);
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
    /// longer holds that history, or cannot be reached, it waits 200 ms, lists the folder again, applies every entry
    /// (<paramref name="entry"/>) and follows on from there. A deletion missed that way is not applied.
    /// </summary>
    protected async Task FollowEntriesAsync(long revision, Func<WatchEvent, Task> change, Func<MetadataEntry, Task> entry, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (WatchEvent e in WatchEntriesAsync(revision, cancellationToken).ConfigureAwait(false))
                    await change(e).ConfigureAwait(false);
                return;
            }
            catch (Exception e) when (e is MetadataCompactedException or MetadataUnavailableException && !cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), cancellationToken).ConfigureAwait(false);
                    (IReadOnlyList<MetadataEntry> entries, revision) = await ListEntriesAsync(cancellationToken).ConfigureAwait(false);
                    foreach (MetadataEntry listed in entries)
                        await entry(listed).ConfigureAwait(false);
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
        }
    }
}
