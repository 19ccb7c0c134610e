using Mono.Cecil;
using Mono.Cecil.Cil;

namespace Hybrid.Extensions;

/// <summary>
/// Scans the IL the compiler emitted against <see cref="Allowlist"/>. The semantic walk cannot see
/// what the compiler adds on its own (<c>new T()</c> becomes <c>Activator.CreateInstance&lt;T&gt;</c>,
/// records call <c>Type.GetTypeFromHandle</c>, lambdas get static caches), so every member, type and
/// field an instruction references is checked again here, and the positions come from the PDB.
/// </summary>
internal sealed class IlScanner
{
    private readonly ModuleDefinition _module;
    private readonly string _path;
    private readonly SortedSet<string> _errors = new(StringComparer.Ordinal);

    private IlScanner(ModuleDefinition module, string path)
    {
        _module = module;
        _path = path;
    }

    /// <summary>Returns the findings, each naming the symbol and the source position it came from.</summary>
    public static IReadOnlyCollection<string> Scan(ModuleDefinition module, string path)
    {
        var scanner = new IlScanner(module, path);
        foreach (var type in module.GetTypes())
        {
            scanner.ScanType(type);
        }
        return scanner._errors;
    }

    /// <summary>Largest struct and largest frame of locals: one frame must never approach the stack budget on its own.</summary>
    private const int MaxStructBytes = 4 * 1024;
    private const int MaxFrameBytes = 16 * 1024;

    private void ScanType(TypeDefinition type)
    {
        if (type.IsValueType && TypeSizes.Instance(type, _module) > MaxStructBytes)
        {
            Report(null, null, $"struct '{type.FullName}' larger than {MaxStructBytes} bytes");
        }
        foreach (var field in type.Fields.Where(f => f.IsStatic && !f.IsLiteral && !f.HasFieldRVA))
        {
            Report(null, null, $"static mutable state '{type.FullName}.{field.Name}' in emitted code");
        }
        foreach (var method in type.Methods)
        {
            if (method.IsConstructor && method.IsStatic)
            {
                Report(method, null, $"static constructor of '{type.FullName}' in emitted code (static initialisers are not allowed)");
            }
            if (method.IsPInvokeImpl || method.IsInternalCall || method.IsRuntime || (method.IsAbstract == false && !method.HasBody))
            {
                Report(method, null, $"method without IL body '{type.FullName}.{method.Name}'");
            }
            if (method.HasBody)
            {
                ScanBody(method);
            }
        }
    }

    private void ScanBody(MethodDefinition method)
    {
        var body = method.Body;
        if (body.Variables.Sum(v => TypeSizes.Of(v.VariableType, _module)) + method.Parameters.Sum(p => TypeSizes.Of(p.ParameterType, _module)) > MaxFrameBytes)
        {
            Report(method, null, $"method '{method.DeclaringType.FullName}.{method.Name}' needs more than {MaxFrameBytes} bytes of locals");
        }
        var isAsyncMoveNext = method.Name == "MoveNext"
                              && method.DeclaringType.Interfaces.Any(i => i.InterfaceType.FullName == "System.Runtime.CompilerServices.IAsyncStateMachine");
        foreach (var handler in body.ExceptionHandlers.Where(h => h.HandlerType == ExceptionHandlerType.Catch))
        {
            var key = Key(handler.CatchType);
            // The compiler wraps every async body in catch (Exception) → builder.SetException; instrumentation
            // makes that handler rethrow an abort first, so only that one catch-all is accepted.
            if (!Allowlist.CatchableExceptions.Contains(key) && !(isAsyncMoveNext && key == "System.Exception"))
            {
                Report(method, handler.HandlerStart, $"catch of '{handler.CatchType.FullName}' in emitted code");
            }
        }
        foreach (var instruction in body.Instructions)
        {
            ScanInstruction(method, instruction);
        }
    }

    private void ScanInstruction(MethodDefinition method, Instruction instruction)
    {
        var code = instruction.OpCode.Code;
        switch (code)
        {
            case Code.Calli or Code.Localloc or Code.Cpblk or Code.Initblk or Code.Jmp or Code.Arglist or Code.Mkrefany
                or Code.Refanyval or Code.Refanytype or Code.Ldftn or Code.Ldvirtftn:
                Report(method, instruction, $"instruction '{instruction.OpCode.Name}'");
                return;
            case Code.Stsfld or Code.Ldsflda:
                if (instruction.Operand is FieldReference f && f is not FieldDefinition { HasFieldRVA: true })
                {
                    Report(method, instruction, $"static field access '{f.DeclaringType.FullName}.{f.Name}'");
                }
                break;
            case Code.Ldtoken when instruction.Operand is not FieldReference:
                Report(method, instruction, $"ldtoken of '{instruction.Operand}' (typeof and reflection are not allowed)");
                return;
        }
        switch (instruction.Operand)
        {
            case MethodReference m:
                CheckMethod(method, instruction, m);
                break;
            case FieldReference f:
                CheckType(method, instruction, f.DeclaringType);
                if (!Own(f.DeclaringType) && !Allowlist.IlMember(Key(f.DeclaringType), f.Name))
                {
                    Report(method, instruction, $"member '{Key(f.DeclaringType)}.{f.Name}' in emitted code");
                }
                break;
            case TypeReference t:
                CheckType(method, instruction, t);
                break;
        }
    }

    private void CheckMethod(MethodDefinition method, Instruction at, MethodReference target)
    {
        if (target is GenericInstanceMethod generic)
        {
            foreach (var arg in generic.GenericArguments)
            {
                CheckType(method, at, arg);
            }
        }
        CheckType(method, at, target.DeclaringType);
        if (target.DeclaringType is ArrayType { IsVector: false })
        {
            return; // reported by CheckType
        }
        if (!Own(target.DeclaringType) && target.DeclaringType is not ArrayType
            && !Allowlist.IlMember(Key(target.DeclaringType), target.Name))
        {
            Report(method, at, $"member '{Key(target.DeclaringType)}.{target.Name}' in emitted code");
        }
    }

    private void CheckType(MethodDefinition method, Instruction? at, TypeReference type)
    {
        switch (type)
        {
            case GenericParameter:
                return;
            case ArrayType array:
                if (!array.IsVector)
                {
                    Report(method, at, $"multi-dimensional array '{array.FullName}'");
                }
                CheckType(method, at, array.ElementType);
                return;
            case PointerType or FunctionPointerType or PinnedType:
                Report(method, at, $"pointer type '{type.FullName}'");
                return;
            case TypeSpecification spec when spec is not GenericInstanceType:
                CheckType(method, at, spec.ElementType);
                return;
            case GenericInstanceType generic:
                foreach (var arg in generic.GenericArguments)
                {
                    CheckType(method, at, arg);
                }
                CheckType(method, at, generic.ElementType);
                return;
        }
        if (!Own(type) && !Allowlist.IlType(Key(type)))
        {
            Report(method, at, $"type '{Key(type)}' in emitted code");
        }
    }

    private bool Own(TypeReference type) => type.GetElementType() is TypeDefinition d && d.Module == _module;

    /// <summary>The <see cref="Allowlist"/> key of a Cecil type reference.</summary>
    public static string Key(TypeReference type)
    {
        type = type.GetElementType();
        if (type.DeclaringType is { } outer)
        {
            return Key(outer) + "+" + type.Name;
        }
        return type.Namespace.Length == 0 ? type.Name : type.Namespace + "." + type.Name;
    }

    private void Report(MethodDefinition? method, Instruction? at, string what) =>
        _errors.Add($"{Position(method, at)}: forbidden {what}");

    private string Position(MethodDefinition? method, Instruction? at)
    {
        var points = method?.DebugInformation?.SequencePoints;
        if (points is null || points.Count == 0)
        {
            return $"{_path}(1,1)";
        }
        var offset = at?.Offset ?? 0;
        var best = points.Where(p => !p.IsHidden && p.Offset <= offset).MaxBy(p => p.Offset)
                   ?? points.FirstOrDefault(p => !p.IsHidden);
        return best is null ? $"{_path}(1,1)" : $"{_path}({best.StartLine},{best.StartColumn})";
    }
}
