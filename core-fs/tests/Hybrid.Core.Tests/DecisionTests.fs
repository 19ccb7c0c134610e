/// The decision API as the node uses it (through the C#-facing Interop classes): a migration with
/// a crash of the target, the effects each request yields, the hot-path queries, refusals, and
/// the trace the decisions emit, which the trace checker must accept.
module Hybrid.Core.Tests.DecisionTests

open System.Collections.Generic
open Xunit
open Hybrid.Core.Interop
open Hybrid.Core.Tests

let private create () =
    ClusterCore.Create([| "n1"; "n2" |], [| "c1"; "c2" |], Dictionary(dict [ "r1", "n1"; "r2", "n2" ]))

/// Applies a request that must be accepted; returns the new core and collects its trace lines.
let private ok (trace: ResizeArray<string>) (r: DecisionResult) : ClusterCore =
    Assert.True(r.Accepted, r.Reason)
    for e in r.Effects do
        if e.Kind = EffectKind.EmitTrace then trace.Add e.TraceLine
    r.Core

let private kinds (r: DecisionResult) = r.Effects |> Array.map (fun e -> e.Kind) |> List.ofArray

[<Fact>]
let ``a migration with a target crash goes through every phase with the effects the node must carry out`` () =
    let trace = ResizeArray<string>()
    let c0 = create ()
    trace.Add c0.InitTraceLine
    Assert.True(c0.CanExecute("n1", 1, "r1"))
    Assert.False(c0.CanExecute("n2", 1, "r1"))

    let begun = c0.BeginMigration("r1", "n2")
    let c1 = ok trace begun
    let bump = begun.Effects |> Array.find (fun e -> e.Kind = EffectKind.BumpView)
    Assert.Equal(("n1", 2), (bump.Node, bump.View))
    Assert.Empty bump.OwnedRanges
    Assert.Equal("Locking", c1.Phase "r1")
    // the source's cores still in view 1 keep serving r1; a core in view 2 does not own it
    Assert.True(c1.CanExecute("n1", 1, "r1"))
    Assert.Equal(Admission.NotOwner, c1.Admit("n1", 2, 2, "r1"))
    Assert.Equal(Admission.ViewChanged, c1.Admit("n1", 2, 1, "r1"))
    Assert.Equal(Admission.Wait, c1.Admit("n1", 1, 2, "r1"))

    // Prepare is refused until every core of the source has left view 1
    let early = c1.Prepare("r1", 0)
    Assert.False(early.Accepted)
    Assert.Contains("Prepare(r1) is not enabled", early.Reason)
    Assert.Same(c1, early.Core)
    Assert.False(c1.CoreRefresh("n1", "c1", 3).Accepted)
    let r1 = c1.CoreRefresh("n1", "c1", 2)
    let c2 = ok trace r1
    Assert.DoesNotContain(EffectKind.CutCompleted, kinds r1)
    Assert.False(c2.CutComplete "r1")
    let r2 = c2.CoreRefresh("n1", "c2", 2)
    let c3 = ok trace r2
    Assert.Contains(EffectKind.CutCompleted, kinds r2)
    Assert.True(c3.CutComplete "r1")

    // no writes in this run, so the source's floor is 0 (the floor case is the next test)
    let c4 = ok trace (c3.Prepare("r1", 0))
    Assert.Equal("Prepared", c4.Phase "r1")
    let transfer = c4.TransferOwnership("r1")
    let c5 = ok trace transfer
    Assert.Equal("n2", c5.Owner "r1")
    let tb = transfer.Effects |> Array.find (fun e -> e.Kind = EffectKind.BumpView)
    Assert.Equal(("n2", 2), (tb.Node, tb.View))
    Assert.Equal<string[]>([| "r1"; "r2" |], tb.OwnedRanges)
    // even with the model's floor at 0 the target is told to raise its floor (the node raises its store's to the
    // source's exact one): without it a write at the target could get a version below a record still to be pulled
    let raise = transfer.Effects |> Array.find (fun e -> e.Kind = EffectKind.RaiseFloor)
    Assert.Equal(("n2", 0), (raise.Node, raise.Floor))
    let pulls = transfer.Effects |> Array.find (fun e -> e.Kind = EffectKind.StartPulls)
    Assert.Equal(("r1", "n1", "n2"), (pulls.Range, pulls.Source, pulls.Target))
    Assert.Equal<string[]>([| "r1"; "r2" |], c5.OwnedRanges("n2", 2))

    // the target crashes and recovers: pulls restart from the source
    let c6 = ok trace (c5.Crash "n2")
    Assert.Equal(0, c6.CoreView("n2", "c1"))
    let recovered = c6.Recover "n2"
    let c7 = ok trace recovered
    Assert.Equal(2, c7.CoreView("n2", "c1"))
    Assert.Contains(EffectKind.StartPulls, kinds recovered)

    let c8 = ok trace (c7.FinishPulls "r1")
    Assert.False(c8.DropSource("r1").Accepted) // not before the target's checkpoint covers the range
    let c9 = ok trace (c8.Checkpoint "n2")
    Assert.Equal("Durable", c9.Phase "r1")
    let drop = c9.DropSource "r1"
    let c10 = ok trace drop
    let d = drop.Effects |> Array.find (fun e -> e.Kind = EffectKind.DropRange)
    Assert.Equal(("n1", "r1"), (d.Node, d.Range))
    let c11 = ok trace (c10.RemoveLineage "r1")
    Assert.Equal("", c11.Phase "r1")

    // the decisions' own trace is a behaviour of the model
    let report = TraceCheck.Check(trace |> Seq.map Json.parse)
    Assert.True(report.Accepted, report.Message)
    Assert.Equal(trace.Count, report.LinesChecked)

[<Fact>]
let ``the target raises its version floor to the one the source reported at Prepare`` () =
    let c = create ()
    let c1 = c.BeginMigration("r1", "n2").Core
    let c2 = c1.CoreRefresh("n1", "c1", 2).Core.CoreRefresh("n1", "c2", 2).Core
    let c3 = c2.Prepare("r1", 41).Core
    let transfer = c3.TransferOwnership "r1"
    Assert.True(transfer.Accepted)
    let floor = transfer.Effects |> Array.find (fun e -> e.Kind = EffectKind.RaiseFloor)
    Assert.Equal(("n2", 41), (floor.Node, floor.Floor))
    Assert.Equal(41, transfer.Core.Floor "n2")

[<Fact>]
let ``requests the protocol does not allow are refused without changing anything`` () =
    let c = create ()
    let transfer = c.TransferOwnership "r1"
    Assert.False(transfer.Accepted)
    Assert.Empty transfer.Effects
    Assert.False(c.BeginMigration("r1", "n1").Accepted) // already the owner
    let unknown = c.BeginMigration("r9", "n2")
    Assert.False(unknown.Accepted)
    Assert.Contains("unknown", unknown.Reason)
    Assert.Equal(1, c.View "n1")

[<Fact>]
let ``a tampered decision trace is rejected by the checker at the tampered line`` () =
    let trace = ResizeArray<string>()
    let c0 = create ()
    trace.Add c0.InitTraceLine
    let c1 = ok trace (c0.BeginMigration("r1", "n2"))
    ok trace (c1.CoreRefresh("n1", "c1", 2)) |> ignore
    // claim the core refreshed into view 3
    let tampered = trace |> Seq.map (fun l -> l.Replace("\"c1\":2", "\"c1\":3")) |> Seq.map Json.parse
    let report = TraceCheck.Check tampered
    Assert.False(report.Accepted)
    Assert.Equal(3, report.Line)
    Assert.Equal("NotEnabled", report.Verdict)

/// One vocabulary (spec/MODEL.md): each request the node makes of the core is named as the model
/// action it applies, which is a TLA+ action of spec/migration/Migration.tla of the same name. Four
/// of them had names of their own (CheckpointCovered for Checkpoint, NodeCrashed for Crash, ...).
[<Fact>]
let ``every request to the core is named as the Migration action it applies and as the TLA+ action`` () =
    let names t =
        Microsoft.FSharp.Reflection.FSharpType.GetUnionCases t |> Array.map (fun c -> c.Name) |> Set.ofArray
    let inputs = names typeof<Hybrid.Core.Decision.Input>
    let actions = names typeof<Hybrid.Core.Migration.Action>
    Assert.Empty(Set.difference inputs actions)
    let rec root (dir: System.IO.DirectoryInfo) =
        if System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "Hybrid.sln")) then dir.FullName
        else
            match dir.Parent with
            | null -> failwith "no Hybrid.sln above the test's directory"
            | parent -> root parent
    let repository = root (System.IO.DirectoryInfo System.AppContext.BaseDirectory)
    let tla = System.IO.File.ReadAllText(System.IO.Path.Combine(repository, "spec", "migration", "Migration.tla"))
    for input in inputs do
        Assert.Matches(sprintf @"(?m)^%s\([^)]*\) ==" input, tla)
