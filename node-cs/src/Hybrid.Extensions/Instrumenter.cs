using Mono.Cecil;
using Mono.Cecil.Cil;
using Mono.Cecil.Rocks;

namespace Hybrid.Extensions;

/// <summary>
/// Rewrites verified extension IL so that it cannot run, recurse or allocate without bound:
/// <list type="bullet">
/// <item><see cref="Meter.Enter"/> at every method entry (fuel, call depth, stack bytes), its result kept in a new
/// local, and <see cref="Meter.Leave"/> before every <c>ret</c>;</item>
/// <item><see cref="Meter.Check"/> before every backward branch (loops, backward gotos, backward leaves);</item>
/// <item><see cref="Meter.ChargeArray"/> before <c>newarr</c> with the element count, <see cref="Meter.ChargeObject"/>
/// before <c>box</c> and <c>newobj</c> of the extension's own classes;</item>
/// <item><see cref="Meter.ChargeString"/>/<see cref="Meter.ChargeArrayObject"/> after BCL calls returning strings or arrays;</item>
/// <item><see cref="Meter.RestoreInCatch"/> at the start of every catch handler and filter (restores the depth and
/// rethrows an abort), <see cref="Meter.RestoreInFinally"/> at finally/fault starts followed by a branch to the
/// block's end when it answers true (a stopped invocation runs no finally block), and <see cref="Meter.Restore"/> in
/// the compiler's async catch-all (which hands the abort to the builder instead of nesting another throw).</item>
/// </list>
/// </summary>
/// <remarks>
/// Code is put in front of an instruction by moving that instruction's content one slot down and
/// writing the new code into the original slot, so every branch and exception-handler boundary that
/// targeted the instruction now runs the inserted code first.
/// </remarks>
internal sealed class Instrumenter
{
    private readonly ModuleDefinition _module;
    private readonly MethodReference _enter;
    private readonly MethodReference _check;
    private readonly MethodReference _chargeArray;
    private readonly MethodReference _chargeObject;
    private readonly MethodReference _chargeString;
    private readonly MethodReference _chargeArrayObject;
    private readonly MethodReference _leave;
    private readonly MethodReference _restore;
    private readonly MethodReference _restoreInFinally;
    private readonly MethodReference _restoreInCatch;

    private Instrumenter(ModuleDefinition module)
    {
        _module = module;
        MethodReference Import(string name) => module.ImportReference(typeof(Meter).GetMethod(name)!);
        _enter = Import(nameof(Meter.Enter));
        _check = Import(nameof(Meter.Check));
        _chargeArray = Import(nameof(Meter.ChargeArray));
        _chargeObject = Import(nameof(Meter.ChargeObject));
        _chargeString = Import(nameof(Meter.ChargeString));
        _chargeArrayObject = Import(nameof(Meter.ChargeArrayObject));
        _leave = Import(nameof(Meter.Leave));
        _restore = Import(nameof(Meter.Restore));
        _restoreInFinally = Import(nameof(Meter.RestoreInFinally));
        _restoreInCatch = Import(nameof(Meter.RestoreInCatch));
    }

    /// <summary>Instruments every method body of the module in place.</summary>
    public static void Instrument(ModuleDefinition module)
    {
        var instrumenter = new Instrumenter(module);
        foreach (var method in module.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody))
        {
            instrumenter.InstrumentBody(method);
        }
    }

    private void InstrumentBody(MethodDefinition method)
    {
        var body = method.Body;
        body.SimplifyMacros();
        var depth = new VariableDefinition(_module.TypeSystem.Int32);
        body.Variables.Add(depth);
        var asyncMoveNext = method.Name == "MoveNext"
                            && method.DeclaringType.Interfaces.Any(i => i.InterfaceType.FullName == "System.Runtime.CompilerServices.IAsyncStateMachine");
        var il = body.GetILProcessor();
        var original = body.Instructions.ToList();
        var index = new Dictionary<Instruction, int>(original.Count);
        for (var i = 0; i < original.Count; i++)
        {
            index[original[i]] = i;
        }
        var handlerStarts = new Dictionary<Instruction, MethodReference>();
        var finallyEnds = new Dictionary<Instruction, Instruction>();
        foreach (var h in body.ExceptionHandlers)
        {
            var compilerAsyncCatch = asyncMoveNext && h.HandlerType == ExceptionHandlerType.Catch && h.CatchType.FullName == "System.Exception";
            if (h.HandlerType is ExceptionHandlerType.Finally or ExceptionHandlerType.Fault)
            {
                handlerStarts[h.HandlerStart] = _restoreInFinally;
                finallyEnds[h.HandlerStart] = EndOf(h, body, il);
            }
            else
            {
                handlerStarts[h.HandlerStart] = compilerAsyncCatch ? _restore : _restoreInCatch;
            }
            if (h.FilterStart is { } filter)
            {
                handlerStarts[filter] = _restoreInCatch;
            }
        }

        foreach (var instruction in original)
        {
            var before = new List<Instruction>();
            if (handlerStarts.TryGetValue(instruction, out var restore))
            {
                before.Add(il.Create(OpCodes.Ldloc, depth));
                before.Add(il.Create(OpCodes.Call, restore));
                if (finallyEnds.TryGetValue(instruction, out var end))
                {
                    // Skipped when the invocation was stopped. A block that is only its endfinally has nothing to skip
                    // (and that instruction is about to move: Prepend reuses it for the inserted code).
                    before.Add(end == instruction ? il.Create(OpCodes.Pop) : il.Create(OpCodes.Brtrue, end));
                }
            }
            if (IsBackwardBranch(instruction, index))
            {
                before.Add(il.Create(OpCodes.Call, _check));
            }
            switch (instruction.OpCode.Code)
            {
                case Code.Newarr:
                    before.Add(il.Create(OpCodes.Dup));
                    before.Add(il.Create(OpCodes.Ldc_I4, TypeSizes.Of((TypeReference)instruction.Operand, _module)));
                    before.Add(il.Create(OpCodes.Call, _chargeArray));
                    break;
                case Code.Box:
                    before.Add(il.Create(OpCodes.Ldc_I4, 16 + TypeSizes.Of((TypeReference)instruction.Operand, _module)));
                    before.Add(il.Create(OpCodes.Call, _chargeObject));
                    break;
                case Code.Newobj when ((MethodReference)instruction.Operand).DeclaringType.GetElementType() is TypeDefinition { IsValueType: false } own && own.Module == _module:
                    before.Add(il.Create(OpCodes.Ldc_I4, 16 + TypeSizes.Instance(own, _module)));
                    before.Add(il.Create(OpCodes.Call, _chargeObject));
                    break;
                case Code.Ret:
                    before.Add(il.Create(OpCodes.Ldloc, depth));
                    before.Add(il.Create(OpCodes.Call, _leave));
                    break;
            }
            var target = before.Count > 0 ? Prepend(il, instruction, before) : instruction;
            if (target.OpCode.Code is Code.Call or Code.Callvirt && ChargeAfter((MethodReference)target.Operand) is { } charge)
            {
                var dup = il.Create(OpCodes.Dup);
                il.InsertAfter(target, dup);
                il.InsertAfter(dup, il.Create(OpCodes.Call, charge));
            }
        }

        // Method entry: inserted in front (not via Prepend) so loops that jump back to offset 0 do not re-enter.
        var first = body.Instructions[0];
        il.InsertBefore(first, il.Create(OpCodes.Call, _enter));
        il.InsertBefore(first, il.Create(OpCodes.Stloc, depth));
        body.OptimizeMacros();
    }

    /// <summary>
    /// The endfinally of a finally or fault block, the target of its skip: the block's own last one (not one of a
    /// handler nested in it, nor one inside a try nested in it: a branch may not enter either), or a new one at the
    /// block's end when it has none (it never ends normally: it always throws or loops).
    /// </summary>
    private static Instruction EndOf(ExceptionHandler h, MethodBody body, ILProcessor il)
    {
        var position = new Dictionary<Instruction, int>(body.Instructions.Count);
        for (var i = 0; i < body.Instructions.Count; i++)
        {
            position[body.Instructions[i]] = i;
        }
        int At(Instruction? instruction) => instruction is null ? body.Instructions.Count : position[instruction];
        int start = At(h.HandlerStart), stop = At(h.HandlerEnd);
        // Regions nested in this block: their instructions are not the block's own.
        var nested = new List<(int From, int To)>();
        foreach (var other in body.ExceptionHandlers)
        {
            if (other == h)
            {
                continue;
            }
            foreach (var (from, to) in new[] { (At(other.TryStart), At(other.TryEnd)), (At(other.FilterStart ?? other.HandlerStart), At(other.HandlerEnd)) })
            {
                if (from >= start && to <= stop)
                {
                    nested.Add((from, to));
                }
            }
        }
        Instruction? last = null;
        for (var i = start; i < stop; i++)
        {
            if (body.Instructions[i].OpCode.Code == Code.Endfinally && !nested.Any(r => i >= r.From && i < r.To))
            {
                last = body.Instructions[i];
            }
        }
        if (last is not null)
        {
            return last;
        }
        var end = il.Create(OpCodes.Endfinally);
        if (h.HandlerEnd is null)
        {
            il.Append(end);
        }
        else
        {
            il.InsertBefore(h.HandlerEnd, end);
        }
        // A nested region that ended where this block ends (exclusive end: the same next instruction) would now
        // contain the new instruction: it ends before it instead.
        foreach (var other in body.ExceptionHandlers)
        {
            if (other == h || At(other.TryStart) < start)
            {
                continue;
            }
            if (other.TryEnd == h.HandlerEnd)
            {
                other.TryEnd = end;
            }
            if (other.HandlerEnd == h.HandlerEnd)
            {
                other.HandlerEnd = end;
            }
        }
        return end;
    }

    private static bool IsBackwardBranch(Instruction instruction, Dictionary<Instruction, int> index)
    {
        var at = index[instruction];
        return instruction.Operand switch
        {
            Instruction target => index.TryGetValue(target, out var t) && t <= at,
            Instruction[] targets => targets.Any(t => index.TryGetValue(t, out var i) && i <= at),
            _ => false,
        };
    }

    private static Instruction Prepend(ILProcessor il, Instruction at, List<Instruction> code)
    {
        var moved = il.Create(OpCodes.Nop);
        moved.OpCode = at.OpCode;
        moved.Operand = at.Operand;
        at.OpCode = code[0].OpCode;
        at.Operand = code[0].Operand;
        var previous = at;
        foreach (var next in code.Skip(1).Append(moved))
        {
            il.InsertAfter(previous, next);
            previous = next;
        }
        return moved;
    }

    private MethodReference? ChargeAfter(MethodReference callee)
    {
        if (callee.DeclaringType.GetElementType() is TypeDefinition d && d.Module == _module)
        {
            return null; // the callee is instrumented itself
        }
        return callee.ReturnType switch
        {
            { MetadataType: MetadataType.String } => _chargeString,
            ArrayType => _chargeArrayObject,
            _ => null,
        };
    }
}
