/// Hedgehog: random behaviours of the Migration model, crashes included, with integrated
/// shrinking. The real protocol keeps every invariant at every step; each buggy variant fails,
/// and the shrunk counterexample is a short, readable behaviour.
module Hybrid.Core.Tests.HedgehogProperties

open Xunit
open Xunit.Abstractions
open Hedgehog
open Hedgehog.FSharp
open Hybrid.Core
open Hybrid.Core.Tests
open Hybrid.Core.Tests.Walks

/// Walks of up to 80 choices; one choice in ten prefers a crash.
let choices: Gen<Choice list> =
    Gen.frequency [ 9, Gen.int32 (Range.constant 0 1000) |> Gen.map Pick; 1, Gen.int32 (Range.constant 0 3) |> Gen.map PreferCrash ]
    |> Gen.list (Range.linear 0 80)

let private config (tests: int) = PropertyConfig.defaults |> PropertyConfig.withTests (tests * 1<tests>)

type HedgehogProperties(out: ITestOutputHelper) =

    [<Fact>]
    member _.``random behaviours with crashes keep every Migration invariant at every step``() =
        let cfg = Models.small "none"
        let mutable steps, crashes = 0, 0
        property {
            let! cs = choices
            let w = Walks.migration cfg cs
            steps <- steps + w.Actions.Length
            crashes <- crashes + (w.Actions |> List.filter (fun a -> Migration.actionName a = "Crash") |> List.length)
            return w.Broken.IsNone
        }
        |> Property.checkBoolWith (config 1000)
        out.WriteLine(sprintf "1000 walks, %d steps, %d crashes" steps crashes)
        Assert.True(crashes > 100, sprintf "only %d crashes in the walks" crashes)

    [<Theory>]
    [<InlineData("EarlyServe")>]
    [<InlineData("PullOverwrites")>]
    [<InlineData("NoFloorRaise")>]
    member _.``each buggy variant fails the property with a short shrunk counterexample``(bug: string) =
        let cfg = ExplorerTests.tiny bug
        // the last failing walk Hedgehog evaluates is the fully shrunk one (shrinking is greedy)
        let mutable last: Walk<Migration.Action, Migration.State> option = None
        let report =
            property {
                let! cs = choices
                let w = Walks.migration cfg cs
                if w.Broken.IsSome then last <- Some w
                return w.Broken.IsNone
            }
            |> Property.renderBoolWith (config 1000)
        Assert.Contains("Failed", report)
        let w = last.Value
        let labels = w.Actions |> List.map Migration.label
        out.WriteLine(sprintf "%s: %s broken after %d steps (shrunk):\n  %s\n%s" bug w.Broken.Value labels.Length (String.concat "\n  " labels) report)
        Assert.Contains(w.Broken.Value, Invariants.expectedViolations bug @ [ "FloorCoversStore" ])
        Assert.True(labels.Length <= 14, sprintf "shrunk counterexample has %d steps" labels.Length)
        Assert.Contains("TransferOwnership(r1)", labels)
        // what the shrunk behaviour shows, per bug: the step that exposes it comes last
        let last = List.last labels
        let before = labels |> List.takeWhile (fun l -> l <> "TransferOwnership(r1)")
        let after = labels |> List.skip (before.Length + 1)
        match bug with
        | "EarlyServe" ->
            // the source's core still serves r1 after Prepare (its cut was not complete): either the target's core
            // adopts its new view meanwhile (two executing owners), or a write the source took after Prepare is pulled
            // to the target above the floor it raised (FloorCoversStore). Hedgehog's random search finds either.
            Assert.Contains(last, [ "CoreRefresh(n2, c1)"; "Recover(n2)"; "BackgroundPull(r1, p1)"; "PriorityPull(r1)" ])
            Assert.DoesNotContain("CoreRefresh(n1, c1)", before)
        | "PullOverwrites" ->
            // a write at the target after the transfer, then a pull overwrites it
            Assert.Contains(last, [ "BackgroundPull(r1, p1)"; "PriorityPull(r1)" ])
            Assert.Contains("ExecuteWrite(n2, c1, s1)", after)
        | _ ->
            // a version issued at the source before the transfer is not covered by the target's floor
            Assert.Contains("ExecuteWrite(n1, c1, s1)", before)
