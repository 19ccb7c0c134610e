/// FsCheck model-based testing: the Migration model, driven by random client commands and
/// protocol steps (migrations, pulls, checkpoints, crashes), against a trivially correct reference
/// key-value store, a map from key to the latest acknowledged version. Every read the model serves
/// must return what the reference says, and every acknowledged write must supersede it.
module Hybrid.Core.Tests.ModelBasedTests

open Xunit
open Xunit.Abstractions
open FsCheck
open FsCheck.FSharp
open Hybrid.Core
open Hybrid.Core.Tests

/// A command of the test: a client operation or a protocol step.
type Command =
    /// The client sends a read of the key (if its session is idle).
    | Read of key: string
    /// The client sends a write of the key (if its session is idle and writes remain).
    | Write of key: string
    /// Take enabled protocol action number i (modulo the number enabled).
    | Step of int

/// The reference: the latest acknowledged version of each key (0 = never written).
type Reference = Map<string, int>

let private keys = [ "k1"; "k2"; "k3" ]

let private command: Gen<Command> =
    Gen.frequency
        [ 1, Gen.elements keys |> Gen.map Read
          1, Gen.elements keys |> Gen.map Write
          6, Gen.choose (0, 1000) |> Gen.map Step ]

/// What running the commands observed.
type Run =
    { /// Reads served, as (key, version returned, version the reference expected).
      Reads: (string * int * int) list
      /// Writes acknowledged, as (key, new version, reference's previous version).
      Writes: (string * int * int) list }

/// Runs the commands: client commands become SendRead/SendWrite, steps pick any enabled action.
/// The reference is updated only from what the model acknowledges to the client.
let run (cfg: Migration.Config) (commands: Command list) : Run =
    let enabled = Migration.enabled cfg
    let folder (st: Migration.State, reference: Reference, obs: Run) (cmd: Command) =
        let succ = enabled st
        let chosen =
            match cmd with
            | Read k -> succ |> List.tryFind (fun (a, _) -> a = Migration.Action.SendRead("s1", k))
            | Write k -> succ |> List.tryFind (fun (a, _) -> a = Migration.Action.SendWrite("s1", k))
            | Step i -> if succ.IsEmpty then None else Some(List.item (i % succ.Length) succ)
        match chosen with
        | None -> st, reference, obs
        | Some(Migration.Action.ExecuteWrite _, st') ->
            let w = st'.lastWrite.Value
            st', reference.Add(w.key, w.``new``), { obs with Writes = (w.key, w.``new``, reference[w.key]) :: obs.Writes }
        | Some(Migration.Action.ExecuteRead _, st') ->
            let r = st'.lastRead.Value
            st', reference, { obs with Reads = (r.key, r.got, reference[r.key]) :: obs.Reads }
        | Some(_, st') -> st', reference, obs
    let _, _, obs =
        commands
        |> List.fold folder (Migration.init cfg, keys |> List.map (fun k -> k, 0) |> Map.ofList, { Reads = []; Writes = [] })
    obs

type ModelBasedTests(out: ITestOutputHelper) =

    [<Fact>]
    member _.``every read the migration model serves returns the reference store's latest acknowledged write``() =
        let cfg = Models.migration "none" 4 2
        let mutable reads, writes, nonZeroReads = 0, 0, 0
        let prop =
            Prop.forAll (Arb.fromGen (Gen.listOf command |> Gen.resize 60)) (fun commands ->
                let obs = run cfg commands
                reads <- reads + obs.Reads.Length
                writes <- writes + obs.Writes.Length
                nonZeroReads <- nonZeroReads + (obs.Reads |> List.filter (fun (_, got, _) -> got > 0) |> List.length)
                let readsOk = obs.Reads |> List.forall (fun (_, got, expected) -> got = expected)
                let writesOk = obs.Writes |> List.forall (fun (_, v, prev) -> v > prev)
                (readsOk && writesOk) |> Prop.label (sprintf "reads %A writes %A" obs.Reads obs.Writes))
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(1000), prop)
        out.WriteLine(sprintf "1000 command sequences: %d reads (%d of written data), %d writes checked against the reference" reads nonZeroReads writes)
        Assert.True(nonZeroReads > 100, sprintf "only %d reads of written data" nonZeroReads)

    [<Fact>]
    member _.``the reference comparison catches a model whose pulls overwrite newer writes``() =
        let cfg = Models.migration "PullOverwrites" 4 2
        let prop =
            Prop.forAll (Arb.fromGen (Gen.listOf command |> Gen.resize 60)) (fun commands ->
                (run cfg commands).Reads |> List.forall (fun (_, got, expected) -> got = expected))
        let failed =
            try
                Check.One(Config.QuickThrowOnFailure.WithMaxTest(1000), prop)
                false
            with e ->
                out.WriteLine(e.Message)
                true
        Assert.True(failed, "a stale read must be found against the reference")
