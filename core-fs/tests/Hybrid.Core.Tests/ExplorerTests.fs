/// The explorer on the small configurations: the real protocol keeps every invariant over more
/// than 10^5 states, and each buggy variant of MODEL.md is caught with a short counterexample.
module Hybrid.Core.Tests.ExplorerTests

open System.Diagnostics
open Xunit
open Xunit.Abstractions
open Hybrid.Core
open Hybrid.Core.Tests

/// One node pair, one core each, one range with one key: the smallest model in which each buggy
/// variant can go wrong, so the buggy explorations stay small.
let tiny (bug: string) : Migration.Config =
    Migration.config
        { Models.cuts bug with Cores = set [ "c1" ]; Ranges = set [ "r1" ]; InitOwner = Map [ "r1", "n1" ] }
        (Map [ "k1", "r1" ])
        (Map [ ("r1", "p1"), [ "k1" ] ])
        2
        1

/// Checks a violation: the named invariant is one MODEL.md expects and the last state breaks it.
let assertCaught (expected: string list) (v: Explorer.Violation<'A, 'S>) (invariants: Invariants.Invariant<'S> list) =
    Assert.Contains(v.Invariant, expected)
    let last = (List.last v.Trace).State
    let inv = invariants |> List.find (fun i -> i.Name = v.Invariant)
    Assert.False(inv.Holds last, "the last state of the counterexample must violate " + v.Invariant)
    // every earlier state satisfies it: the counterexample is the shortest path to the violation
    for st in List.take (v.Trace.Length - 1) v.Trace do
        Assert.True(inv.Holds st.State)

type ExplorerTests(out: ITestOutputHelper) =

    [<Fact>]
    member _.``the small Migration model keeps every invariant over more than 100,000 distinct states``() =
        let cfg = Models.small "none"
        let sw = Stopwatch.StartNew()
        let o = Explorer.explore (Explorer.migration cfg) { MaxDepth = 12; MaxStates = 2_000_000 }
        out.WriteLine(sprintf "Migration small (2 nodes x 2 cores, 2 ranges, 3 keys, 1 session, MaxWrites 2, MaxMigrations 1, MaxCrashes 1), depth %d: %d distinct states in %.1f s" o.Depth o.Distinct sw.Elapsed.TotalSeconds)
        Assert.True(o.Violation.IsNone, sprintf "%A" (o.Violation |> Option.map (fun v -> v.Invariant, Explorer.render Migration.label Codec.OfMigration.variables v.Trace)))
        Assert.Equal(12, o.Depth)
        Assert.True(o.Distinct > 100_000, sprintf "only %d states" o.Distinct)

    [<Fact>]
    member _.``the Cuts model keeps every invariant on all its reachable states``() =
        let cfg = Models.cuts "none"
        let sw = Stopwatch.StartNew()
        let o = Explorer.explore (Explorer.cuts cfg) { MaxDepth = 1000; MaxStates = 2_000_000 }
        out.WriteLine(sprintf "Cuts (2 nodes x 2 cores, 2 ranges, 1 session, MaxRevokes 2, MaxCrashes 1): %d distinct states, diameter %d, complete %b, %.1f s" o.Distinct o.Depth o.Complete sw.Elapsed.TotalSeconds)
        Assert.True(o.Violation.IsNone, sprintf "%A" (o.Violation |> Option.map (fun v -> v.Invariant)))
        Assert.True(o.Complete)

    [<Fact>]
    member _.``Cuts with EarlyServe breaks SingleExecutingOwner in three steps``() =
        let cfg = Models.cuts "EarlyServe"
        let m = Explorer.cuts cfg
        let o = Explorer.explore m { MaxDepth = 20; MaxStates = 1_000_000 }
        let v = o.Violation.Value
        let text = Explorer.render Cuts.label Codec.OfCuts.variables v.Trace
        out.WriteLine(sprintf "%s violated after %d steps:\n%s" v.Invariant (v.Trace.Length - 1) text)
        assertCaught (Invariants.expectedViolations "EarlyServe") v m.Invariants
        let actions = v.Trace |> List.choose (fun s -> s.Action) |> List.map Cuts.actionName
        Assert.Equal<string list>([ "Revoke"; "Grant"; "CoreRefresh" ], actions)
        Assert.Contains("Grant(r", text)

    [<Theory>]
    [<InlineData("EarlyServe")>]
    [<InlineData("PullOverwrites")>]
    [<InlineData("NoFloorRaise")>]
    member _.``each buggy Migration variant breaks the invariant MODEL.md expects, with a short counterexample``(bug: string) =
        let cfg = tiny bug
        let expected = Invariants.expectedViolations bug
        let all = Explorer.migration cfg
        let m = { all with Invariants = all.Invariants |> List.filter (fun i -> List.contains i.Name expected) }
        let o = Explorer.explore m { MaxDepth = 30; MaxStates = 1_000_000 }
        Assert.True(o.Violation.IsSome, sprintf "%s not caught in %d states" bug o.Distinct)
        let v = o.Violation.Value
        let text = Explorer.render Migration.label Codec.OfMigration.variables v.Trace
        out.WriteLine(sprintf "%s: %s violated after %d steps (%d states explored):\n%s" bug v.Invariant (v.Trace.Length - 1) o.Distinct text)
        assertCaught expected v m.Invariants
        Assert.True(v.Trace.Length - 1 <= 15, sprintf "counterexample of %d steps" (v.Trace.Length - 1))
        // the behaviour goes through the migration's transfer, and the same model without the bug
        // explores the same bound with no violation
        let actions = v.Trace |> List.choose (fun s -> s.Action) |> List.map Migration.actionName
        Assert.Contains("TransferOwnership", actions)
        let ok = Explorer.explore { Explorer.migration (tiny "none") with Invariants = m.Invariants } { MaxDepth = v.Trace.Length; MaxStates = 1_000_000 }
        Assert.True(ok.Violation.IsNone)
        // and with every invariant, the first one the explorer hits is reported too
        let first = Explorer.explore all { MaxDepth = 30; MaxStates = 1_000_000 }
        out.WriteLine(sprintf "with every invariant: %s after %d steps" first.Violation.Value.Invariant (first.Violation.Value.Trace.Length - 1))
