namespace Hybrid.Cluster;

/// <summary>Argument rules every <see cref="IMetadataStore"/> enforces the same way, so both behave alike.</summary>
internal static class MetadataChecks
{
    /// <summary>A key is a non-empty string; keys are compared ordinally.</summary>
    public static void Key(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
    }

    /// <summary>Expected revisions are Any (-1), Absent (0) or a real revision.</summary>
    public static void Expected(long expectedRevision)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(expectedRevision, MetadataRevision.Any);
    }

    /// <summary>Deleting "an absent key" means nothing: a delete names a revision or Any.</summary>
    public static void DeleteExpected(long expectedRevision)
    {
        if (expectedRevision == MetadataRevision.Absent)
        {
            throw new ArgumentOutOfRangeException(
                nameof(expectedRevision), "a delete expects a positive revision or MetadataRevision.Any");
        }

        Expected(expectedRevision);
    }

    /// <summary>Validates a transaction: 1 to <see cref="MetadataOp.MaxPerTransaction"/> operations,
    /// valid revisions, each key at most once.</summary>
    public static void Operations(IReadOnlyList<MetadataOp> operations)
    {
        ArgumentNullException.ThrowIfNull(operations);
        ArgumentOutOfRangeException.ThrowIfZero(operations.Count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(operations.Count, MetadataOp.MaxPerTransaction);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var op in operations)
        {
            Key(op.Key);
            if (op.Kind == MetadataOpKind.Delete)
            {
                DeleteExpected(op.ExpectedRevision);
            }
            else
            {
                Expected(op.ExpectedRevision);
            }

            if (!seen.Add(op.Key))
            {
                throw new ArgumentException($"key '{op.Key}' appears twice in one transaction", nameof(operations));
            }
        }
    }

    /// <summary>
    /// Whether a key whose current revision is <paramref name="currentRevision"/> (0 = absent) satisfies
    /// the comparison. A delete with Any still needs the key to exist.
    /// </summary>
    public static bool Holds(MetadataOpKind kind, long expectedRevision, long currentRevision) =>
        expectedRevision == MetadataRevision.Any
            ? kind != MetadataOpKind.Delete || currentRevision != 0
            : currentRevision == expectedRevision;
}
