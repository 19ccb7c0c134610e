using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// The task type of extension entry points and their async helpers: a stackless coroutine that the
/// host's scheduler resumes. An invocation that never suspends allocates nothing; the first
/// suspension boxes the compiler's state machine once.
/// </summary>
/// <remarks>
/// Only <see cref="ExtensionTask"/> and <see cref="ExtensionContext"/> yields may be awaited inside an
/// extension; awaiting anything else faults the invocation (no thread pool, no timers, no I/O).
/// </remarks>
[AsyncMethodBuilder(typeof(ExtensionTaskBuilder))]
public readonly struct ExtensionTask
{
    internal readonly ExtensionTaskBox? Box;

    internal ExtensionTask(ExtensionTaskBox? box) => Box = box;

    /// <summary>A task that has already completed successfully.</summary>
    public static ExtensionTask CompletedTask => default;

    /// <summary>True once the coroutine has run to its end (successfully or not).</summary>
    public bool IsCompleted => Box is null || Box.IsCompleted;

    /// <summary>The exception the coroutine ended with, if any.</summary>
    public Exception? Exception => Box?.Exception;

    /// <summary>Part of the await pattern.</summary>
    public Awaiter GetAwaiter() => new(Box);

    /// <summary>Awaits a child coroutine: the parent resumes when the child completes.</summary>
    public readonly struct Awaiter : ICriticalNotifyCompletion
    {
        private readonly ExtensionTaskBox? _box;

        internal Awaiter(ExtensionTaskBox? box) => _box = box;

        /// <summary>Part of the await pattern.</summary>
        public bool IsCompleted => _box is null || _box.IsCompleted;

        /// <summary>Rethrows the child's exception, if any.</summary>
        public void GetResult()
        {
            if (_box?.Exception is { } e)
            {
                ExceptionDispatchInfo.Throw(e);
            }
        }

        /// <summary>Not supported: the extension builder registers continuations itself.</summary>
        public void OnCompleted(Action continuation) => throw new NotSupportedException("ExtensionTask is awaited only by extension coroutines");

        /// <summary>Not supported: the extension builder registers continuations itself.</summary>
        public void UnsafeOnCompleted(Action continuation) => OnCompleted(continuation);

        internal void Register(ExtensionTaskBox waiter) => _box!.Continuation = waiter;
    }
}

/// <summary>
/// Heap state of a suspended coroutine. The compiler's state machine is copied into it at the first
/// suspension; completion resumes the awaiting parent synchronously.
/// </summary>
internal abstract class ExtensionTaskBox
{
    internal ExtensionTaskBox? Continuation;
    internal Exception? Exception;
    internal bool IsCompleted;

    /// <summary>Runs the coroutine to its next suspension or its end.</summary>
    internal abstract void MoveNext();

    internal void Complete(Exception? exception)
    {
        Exception = exception;
        IsCompleted = true;
        var next = Continuation;
        if (next is not null)
        {
            Continuation = null;
            next.MoveNext();
        }
    }
}

internal sealed class StateMachineBox<TStateMachine> : ExtensionTaskBox
    where TStateMachine : IAsyncStateMachine
{
    internal TStateMachine StateMachine = default!;

    internal override void MoveNext() => StateMachine.MoveNext();
}

internal sealed class FaultedBox : ExtensionTaskBox
{
    internal override void MoveNext() => throw new InvalidOperationException("a completed coroutine cannot be resumed");
}

/// <summary>The async method builder for <see cref="ExtensionTask"/>; used only by compiler-generated code.</summary>
public struct ExtensionTaskBuilder
{
    private ExtensionTaskBox? _box;

    /// <summary>Part of the builder pattern.</summary>
    public static ExtensionTaskBuilder Create() => default;

    /// <summary>Runs the coroutine synchronously up to its first suspension.</summary>
    public void Start<TStateMachine>(ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine => stateMachine.MoveNext();

    /// <summary>Unused: the state machine is boxed by <see cref="AwaitUnsafeOnCompleted"/>.</summary>
    public void SetStateMachine(IAsyncStateMachine stateMachine)
    {
    }

    /// <summary>The task the async method returns.</summary>
    public ExtensionTask Task => new(_box);

    /// <summary>Completes the coroutine.</summary>
    public void SetResult() => _box?.Complete(null);

    /// <summary>Completes the coroutine with an exception.</summary>
    public void SetException(Exception exception)
    {
        _box ??= new FaultedBox();
        _box.Complete(exception);
    }

    /// <summary>Suspends on an awaiter.</summary>
    public void AwaitOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : INotifyCompletion
        where TStateMachine : IAsyncStateMachine => Suspend(ref awaiter, ref stateMachine);

    /// <summary>Suspends on an awaiter.</summary>
    public void AwaitUnsafeOnCompleted<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TAwaiter : ICriticalNotifyCompletion
        where TStateMachine : IAsyncStateMachine => Suspend(ref awaiter, ref stateMachine);

    private void Suspend<TAwaiter, TStateMachine>(ref TAwaiter awaiter, ref TStateMachine stateMachine)
        where TStateMachine : IAsyncStateMachine
    {
        var box = _box;
        if (box is null)
        {
            // Order matters: set the builder's box first so the copy made next refers to it too.
            var created = new StateMachineBox<TStateMachine>();
            _box = created;
            created.StateMachine = stateMachine;
            box = created;
        }
        if (typeof(TAwaiter) == typeof(YieldAwaitable))
        {
            Unsafe.As<TAwaiter, YieldAwaitable>(ref awaiter).Register(box);
        }
        else if (typeof(TAwaiter) == typeof(ExtensionTask.Awaiter))
        {
            Unsafe.As<TAwaiter, ExtensionTask.Awaiter>(ref awaiter).Register(box);
        }
        else
        {
            throw new NotSupportedException("an extension may await only ExtensionTask and ExtensionContext yields");
        }
    }
}

/// <summary>
/// A yield point. <see cref="ExtensionContext.Yield"/> always gives the worker back to the scheduler;
/// <see cref="ExtensionContext.PreemptionPoint"/> (inserted in loops at install) only when the time
/// slice of the running invocation has ended. Outside a scheduler (tests with <see cref="MockStore"/>)
/// neither suspends.
/// </summary>
public readonly struct YieldAwaitable : ICriticalNotifyCompletion
{
    private readonly ExtensionContext? _context;
    private readonly bool _always;

    internal YieldAwaitable(ExtensionContext? context, bool always)
    {
        _context = context;
        _always = always;
    }

    /// <summary>Part of the await pattern.</summary>
    public YieldAwaitable GetAwaiter() => this;

    /// <summary>False when the coroutine must give the worker back now.</summary>
    public bool IsCompleted => _context is null || !_context.IsScheduled || !(_always || _context.YieldRequested);

    /// <summary>Part of the await pattern.</summary>
    public void GetResult()
    {
    }

    /// <summary>Not supported: the extension builder registers continuations itself.</summary>
    public void OnCompleted(Action continuation) => throw new NotSupportedException("yields are awaited only by extension coroutines");

    /// <summary>Not supported: the extension builder registers continuations itself.</summary>
    public void UnsafeOnCompleted(Action continuation) => OnCompleted(continuation);

    internal void Register(ExtensionTaskBox box) => _context!.Suspend(box);
}
