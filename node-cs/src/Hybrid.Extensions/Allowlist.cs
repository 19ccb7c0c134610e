using System.Collections.Frozen;

namespace Hybrid.Extensions;

/// <summary>
/// The types and members extension code may touch: deny by default. Keys are metadata names
/// (<c>Namespace.Name`Arity</c>, nested types joined with <c>+</c>); members are metadata member
/// names (<c>get_Length</c>, <c>.ctor</c>, <c>op_Addition</c>), or <c>*</c> for every member.
/// The semantic walk (source) and the IL scan (emitted code) check against the same table.
/// </summary>
/// <remarks>
/// What must stay true: nothing here performs I/O, reflection, threading, unmanaged memory access,
/// or allocates an amount the instrumentation cannot see before or right after the call.
/// For example <c>string..ctor(char, int)</c>, <c>string.Replace</c>, <c>Array.Resize</c> and
/// <c>Vector.LoadUnsafe</c> are deliberately absent.
/// </remarks>
internal static class Allowlist
{
    private const string Abs = "Hybrid.Extensions.Abstractions.";
    private static readonly string[] All = ["*"];

    /// <summary>Allowed in source and in IL.</summary>
    private static readonly FrozenDictionary<string, FrozenSet<string>> s_source = Build(new Dictionary<string, string[]>
    {
        ["System.Object"] = [".ctor", "Equals", "GetHashCode", "ToString", "op_Equality", "op_Inequality"],
        ["System.ValueType"] = ["Equals", "GetHashCode", "ToString"],
        ["System.Void"] = All,
        ["System.Boolean"] = All,
        ["System.Byte"] = All,
        ["System.SByte"] = All,
        ["System.Int16"] = All,
        ["System.UInt16"] = All,
        ["System.Int32"] = All,
        ["System.UInt32"] = All,
        ["System.Int64"] = All,
        ["System.UInt64"] = All,
        ["System.Single"] = All,
        ["System.Double"] = All,
        ["System.Decimal"] = All,
        ["System.Char"] = All,
        ["System.Math"] = All,
        ["System.MathF"] = All,
        ["System.Nullable`1"] = All,
        ["System.ValueTuple`2"] = All,
        ["System.ValueTuple`3"] = All,
        ["System.ValueTuple`4"] = All,
        ["System.Numerics.BitOperations"] = All,
        ["System.Buffers.Binary.BinaryPrimitives"] = All,
        ["System.String"] =
        [
            "get_Length", "get_Chars", "Concat", "Substring", "Equals", "op_Equality", "op_Inequality", "op_Addition",
            "IsNullOrEmpty", "CompareOrdinal", "CompareTo", "Contains", "IndexOf", "StartsWith", "EndsWith",
            "ToString", "GetHashCode", "Empty", "op_Implicit",
        ],
        ["System.Array"] = ["get_Length", "Copy", "Fill", "Clear"],
        ["System.Span`1"] =
        [
            ".ctor", "get_Item", "get_Length", "get_IsEmpty", "get_Empty", "Slice", "CopyTo", "TryCopyTo", "Fill", "Clear",
            "ToArray", "op_Implicit", "GetEnumerator",
        ],
        ["System.Span`1+Enumerator"] = ["MoveNext", "get_Current"],
        ["System.ReadOnlySpan`1"] =
        [
            ".ctor", "get_Item", "get_Length", "get_IsEmpty", "get_Empty", "Slice", "CopyTo", "TryCopyTo", "ToArray",
            "op_Implicit", "GetEnumerator",
        ],
        ["System.ReadOnlySpan`1+Enumerator"] = ["MoveNext", "get_Current"],
        ["System.MemoryExtensions"] =
        [
            "AsSpan", "SequenceEqual", "SequenceCompareTo", "IndexOf", "LastIndexOf", "IndexOfAny", "Contains",
            "StartsWith", "EndsWith", "Reverse", "Sort", "BinarySearch",
        ],
        ["System.Numerics.Vector`1"] =
        [
            ".ctor", "get_Count", "get_Zero", "get_One", "get_Item", "CopyTo", "TryCopyTo", "Equals", "GetHashCode", "ToString",
            "op_Addition", "op_Subtraction", "op_Multiply", "op_Division", "op_BitwiseAnd", "op_BitwiseOr",
            "op_ExclusiveOr", "op_OnesComplement", "op_UnaryNegation", "op_Equality", "op_Inequality",
        ],
        ["System.Numerics.Vector"] =
        [
            "Add", "Subtract", "Multiply", "Divide", "Sum", "Dot", "Max", "Min", "Abs", "Widen", "Narrow",
            "ConditionalSelect", "Equals", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual",
            "EqualsAll", "EqualsAny", "get_IsHardwareAccelerated",
        ],
        ["System.Runtime.CompilerServices.DefaultInterpolatedStringHandler"] = [".ctor", "AppendLiteral", "AppendFormatted", "ToStringAndClear"],
        ["System.Exception"] = [".ctor", "get_Message"],
        ["System.InvalidOperationException"] = [".ctor"],
        ["System.ArgumentException"] = [".ctor"],
        ["System.ArgumentOutOfRangeException"] = [".ctor"],
        ["System.IndexOutOfRangeException"] = [".ctor"],
        ["System.FormatException"] = [".ctor"],
        ["System.OverflowException"] = [".ctor"],
        ["System.DivideByZeroException"] = [".ctor"],
        ["System.NotSupportedException"] = [".ctor"],
        [Abs + "ExtensionAttribute"] = [".ctor"],
        [Abs + "ExtensionTask"] = ["get_CompletedTask", "get_IsCompleted", "GetAwaiter"],
        [Abs + "ExtensionTask+Awaiter"] = ["get_IsCompleted", "GetResult"],
        [Abs + "YieldAwaitable"] = ["GetAwaiter", "get_IsCompleted", "GetResult"],
        [Abs + "ExtensionContext"] =
        [
            "get_Tenant", "get_Args", "get_Response", "Get", "TryGet", "MultiGet", "Put", "Delete", "Yield",
            "PreemptionPoint", "Write", "WriteInt64", "WriteInt32", "SumInt64Field", "SumInt32Field",
        ],
        [Abs + "MultiGetEnumerator"] = ["GetEnumerator", "get_Current", "get_Found", "get_CurrentKey", "MoveNext"],
        [Abs + "Aggregate"] = All,
    });

    /// <summary>Emitted only by the compiler (async state machines, array and span initialisers).</summary>
    private static readonly FrozenDictionary<string, FrozenSet<string>> s_ilOnly = Build(new Dictionary<string, string[]>
    {
        ["System.Runtime.CompilerServices.IAsyncStateMachine"] = ["MoveNext", "SetStateMachine"],
        ["System.Runtime.CompilerServices.RuntimeHelpers"] = ["InitializeArray", "CreateSpan"],
        ["System.RuntimeFieldHandle"] = All,
        [Abs + "ExtensionTaskBuilder"] = ["Create", "Start", "SetStateMachine", "get_Task", "SetResult", "SetException", "AwaitOnCompleted", "AwaitUnsafeOnCompleted"],
    });

    /// <summary>Exception types a catch clause may name: none is a base of the host's abort exception.</summary>
    public static readonly FrozenSet<string> CatchableExceptions = new[]
    {
        "System.InvalidOperationException", "System.ArgumentException", "System.ArgumentOutOfRangeException",
        "System.IndexOutOfRangeException", "System.FormatException", "System.OverflowException",
        "System.DivideByZeroException", "System.NotSupportedException",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>True when source code may name the type.</summary>
    public static bool SourceType(string type) => s_source.ContainsKey(type);

    /// <summary>True when source code may use the member.</summary>
    public static bool SourceMember(string type, string member) => Allowed(s_source, type, member);

    /// <summary>True when emitted IL may reference the type.</summary>
    public static bool IlType(string type) => s_source.ContainsKey(type) || s_ilOnly.ContainsKey(type);

    /// <summary>True when emitted IL may reference the member.</summary>
    public static bool IlMember(string type, string member) => Allowed(s_source, type, member) || Allowed(s_ilOnly, type, member);

    private static bool Allowed(FrozenDictionary<string, FrozenSet<string>> table, string type, string member) =>
        table.TryGetValue(type, out var members) && (members.Contains("*") || members.Contains(member));

    private static FrozenDictionary<string, FrozenSet<string>> Build(Dictionary<string, string[]> entries) =>
        entries.ToFrozenDictionary(e => e.Key, e => e.Value.ToFrozenSet(StringComparer.Ordinal), StringComparer.Ordinal);
}
