namespace Hybrid.Storage;

/// <summary>
/// Receives the results of operations that returned <see cref="StoreStatus.Pending"/>. Implemented by the worker
/// (typically once, reused); called only from inside <see cref="IKvSession.CompletePending"/> on the session's thread.
/// </summary>
/// <remarks>
/// WARNING: an implementation may start single-key operations on the same session (they behave as usual, and those
/// that go pending complete in a later <see cref="IKvSession.CompletePending"/>), but must not call
/// <see cref="IKvSession.MultiGet"/> or <see cref="IKvSession.CompletePending"/> (they reuse the buffer that
/// <c>value</c> points into).
/// </remarks>
public interface ICompletionSink
{
    /// <summary>
    /// One pending operation finished.
    /// </summary>
    /// <param name="context">The value the caller passed when it started the operation.</param>
    /// <param name="result">The operation's final result (never <see cref="StoreStatus.Pending"/>).</param>
    /// <param name="value">
    /// For a read that found a record: the value. Empty otherwise. WARNING: valid only during this call; copy it
    /// out (the buffer is reused for the next completion).
    /// </param>
    void OnCompleted(ulong context, in StoreResult result, ReadOnlySpan<byte> value);
}
