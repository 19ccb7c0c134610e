using FASTER.core;

namespace Hybrid.Storage.Tests;

/// <summary>
/// FASTER runs checkpoint transitions on whatever thread finishes a phase (often a worker serving a client read), and
/// the transition commits metadata synchronously; these commits must not block that thread, yet a checkpoint is only
/// named after its commits are on disk.
/// </summary>
public class OffThreadCheckpointCommitsTests
{
    /// <summary>A checkpoint manager whose commits block until the test opens the gate, recording their order.</summary>
    private sealed class GatedManager : ICheckpointManager
    {
        public readonly ManualResetEventSlim Gate = new(false);
        public readonly List<string> Committed = [];
        public bool FailIndexCommit { get; init; }

        private void Commit(string what)
        {
            Gate.Wait(TimeSpan.FromSeconds(30));
            if (FailIndexCommit && what.StartsWith("index", StringComparison.Ordinal))
                throw new IOException("disk full");
            lock (Committed)
                Committed.Add(what);
        }

        public void InitializeIndexCheckpoint(Guid indexToken) { }
        public void InitializeLogCheckpoint(Guid logToken) { }
        public void CommitIndexCheckpoint(Guid indexToken, byte[] commitMetadata) => Commit("index " + commitMetadata.Length);
        public void CommitLogCheckpoint(Guid logToken, byte[] commitMetadata) => Commit("log " + commitMetadata.Length);
        public void CheckpointVersionShift(long oldVersion, long newVersion) { }
        public void CommitLogIncrementalCheckpoint(Guid logToken, long version, byte[] commitMetadata, DeltaLog deltaLog) => Commit("delta");
        public byte[] GetIndexCheckpointMetadata(Guid indexToken)
        {
            lock (Committed)
                return [(byte)Committed.Count];
        }
        public byte[] GetLogCheckpointMetadata(Guid logToken, DeltaLog deltaLog, bool scanDelta, long recoverTo) => GetIndexCheckpointMetadata(logToken);
        public IEnumerable<Guid> GetIndexCheckpointTokens() => [];
        public IEnumerable<Guid> GetLogCheckpointTokens() => [];
        public IDevice GetIndexDevice(Guid indexToken) => throw new NotSupportedException();
        public IDevice GetSnapshotLogDevice(Guid token) => throw new NotSupportedException();
        public IDevice GetSnapshotObjectLogDevice(Guid token) => throw new NotSupportedException();
        public IDevice GetDeltaLogDevice(Guid token) => throw new NotSupportedException();
        public void Purge(Guid token) { }
        public void PurgeAll() { }
        public void OnRecovery(Guid indexToken, Guid logToken) { }
        public void Dispose() => Gate.Dispose();
    }

    [Fact]
    public async Task Commits_return_at_once_run_in_order_and_WhenCommitted_waits_for_them()
    {
        var inner = new GatedManager();
        var commits = new OffThreadCheckpointCommits(inner);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        commits.CommitIndexCheckpoint(Guid.NewGuid(), new byte[3]);
        commits.CommitLogCheckpoint(Guid.NewGuid(), new byte[5]);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "a commit blocked its caller"); // the gate is still shut
        Task committed = commits.WhenCommitted();
        Assert.False(committed.IsCompleted);
        lock (inner.Committed)
            Assert.Empty(inner.Committed);

        inner.Gate.Set();
        await committed.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["index 3", "log 5"], inner.Committed);
        // Reads of metadata see every commit queued before them.
        Assert.Equal(2, commits.GetIndexCheckpointMetadata(Guid.Empty)[0]);
        commits.Dispose();
    }

    [Fact]
    public async Task A_failed_commit_faults_WhenCommitted_and_every_later_commit()
    {
        var inner = new GatedManager { FailIndexCommit = true };
        inner.Gate.Set();
        var commits = new OffThreadCheckpointCommits(inner);
        commits.CommitIndexCheckpoint(Guid.NewGuid(), new byte[1]);
        commits.CommitLogCheckpoint(Guid.NewGuid(), new byte[1]);
        var failure = await Assert.ThrowsAsync<IOException>(() => commits.WhenCommitted().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("disk full", failure.Message);
        Assert.Empty(inner.Committed); // the log commit did not run after the index commit failed

        // The next checkpoint starts afresh: its commits run and succeed.
        commits.BeginCheckpoint();
        commits.CommitLogCheckpoint(Guid.NewGuid(), new byte[2]);
        await commits.WhenCommitted().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["log 2"], inner.Committed);
    }
}
