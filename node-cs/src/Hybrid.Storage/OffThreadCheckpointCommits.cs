using FASTER.core;

namespace Hybrid.Storage;

/// <summary>
/// FASTER's checkpoint manager with the two metadata commits (index and log) moved off the calling thread.
/// </summary>
/// <remarks>
/// <para>FASTER runs a checkpoint's global phase transitions on whichever thread completes the previous phase, which is
/// usually a worker in the middle of a client's read, and the transitions write the checkpoint's metadata
/// synchronously. That write goes through the device's thread-pool I/O queue behind the checkpoint's own flush (tens to
/// hundreds of MB), so on this machine it took up to 5 s while the worker, and every connection it owns, waited
/// (caught with dotnet-stack in the migrate bench: <c>KvSession.Get → ClientSession.Read → ThreadStateMachineStep →
/// WriteIndexMetaInfo → CommitIndexCheckpoint → WriteInto → SemaphoreSlim.Wait</c>).</para>
/// <para>Here a commit is queued to a dedicated thread, in order, and returns at once; <see cref="WhenCommitted"/>
/// completes when every queued commit is on disk. <see cref="FasterKvStore.CheckpointAsync"/> waits for it before it
/// names the checkpoint in its own metadata, and recovery only ever opens the checkpoint named there, so a checkpoint
/// whose commit was cut short by a crash is never used. Reads and purges wait for queued commits first.</para>
/// </remarks>
internal sealed class OffThreadCheckpointCommits(ICheckpointManager inner) : ICheckpointManager
{
    private readonly Lock _lock = new();
    private Task _pending = Task.CompletedTask;

    /// <summary>
    /// Starts a new checkpoint's commits: waits for whatever an earlier checkpoint left queued and forgets its failure
    /// (that checkpoint was not named), so one failed commit does not fail every later checkpoint.
    /// </summary>
    public void BeginCheckpoint()
    {
        WaitIgnoringFailure();
        lock (_lock)
            _pending = Task.CompletedTask;
    }

    /// <summary>Completes when every commit queued so far is written (faults if one failed).</summary>
    public Task WhenCommitted()
    {
        lock (_lock)
            return _pending;
    }

    private void Queue(Action commit)
    {
        lock (_lock)
            _pending = _pending.ContinueWith(previous =>
            {
                previous.GetAwaiter().GetResult(); // a failed commit fails every later one: the checkpoint is not named
                commit();
            }, CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default);
    }

    private void Drain() => WhenCommitted().GetAwaiter().GetResult();

    /// <summary>Waits for the queued commits; a failure was already reported to the checkpoint that queued them.</summary>
    private void WaitIgnoringFailure() => WhenCommitted().ContinueWith(static _ => { }, TaskScheduler.Default).Wait();

    public void InitializeIndexCheckpoint(Guid indexToken) => inner.InitializeIndexCheckpoint(indexToken);

    public void InitializeLogCheckpoint(Guid logToken) => inner.InitializeLogCheckpoint(logToken);

    public void CommitIndexCheckpoint(Guid indexToken, byte[] commitMetadata) => Queue(() => inner.CommitIndexCheckpoint(indexToken, commitMetadata));

    public void CommitLogCheckpoint(Guid logToken, byte[] commitMetadata) => Queue(() => inner.CommitLogCheckpoint(logToken, commitMetadata));

    public void CheckpointVersionShift(long oldVersion, long newVersion) => inner.CheckpointVersionShift(oldVersion, newVersion);

    public void CommitLogIncrementalCheckpoint(Guid logToken, long version, byte[] commitMetadata, DeltaLog deltaLog) =>
        Queue(() => inner.CommitLogIncrementalCheckpoint(logToken, version, commitMetadata, deltaLog));

    public byte[] GetIndexCheckpointMetadata(Guid indexToken)
    {
        Drain();
        return inner.GetIndexCheckpointMetadata(indexToken);
    }

    public byte[] GetLogCheckpointMetadata(Guid logToken, DeltaLog deltaLog, bool scanDelta, long recoverTo)
    {
        Drain();
        return inner.GetLogCheckpointMetadata(logToken, deltaLog, scanDelta, recoverTo);
    }

    public IEnumerable<Guid> GetIndexCheckpointTokens()
    {
        Drain();
        return inner.GetIndexCheckpointTokens();
    }

    public IEnumerable<Guid> GetLogCheckpointTokens()
    {
        Drain();
        return inner.GetLogCheckpointTokens();
    }

    public IDevice GetIndexDevice(Guid indexToken) => inner.GetIndexDevice(indexToken);

    public IDevice GetSnapshotLogDevice(Guid token) => inner.GetSnapshotLogDevice(token);

    public IDevice GetSnapshotObjectLogDevice(Guid token) => inner.GetSnapshotObjectLogDevice(token);

    public IDevice GetDeltaLogDevice(Guid token) => inner.GetDeltaLogDevice(token);

    public void Purge(Guid token)
    {
        Drain();
        inner.Purge(token);
    }

    public void PurgeAll()
    {
        Drain();
        inner.PurgeAll();
    }

    public void OnRecovery(Guid indexToken, Guid logToken) => inner.OnRecovery(indexToken, logToken);

    public void Dispose()
    {
        WaitIgnoringFailure(); // closing the store still closes the inner manager
        inner.Dispose();
    }
}
