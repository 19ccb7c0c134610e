/// The F# mirror against behaviours TLC sampled from the TLA+ specs (traces/vectors): every
/// recorded step must be an enabled F# step with exactly the recorded successor, and the vectors
/// must have been generated from the spec files as they are now.
module Hybrid.Core.Tests.VectorTests

open System.IO
open System.Security.Cryptography
open Xunit
open Xunit.Abstractions
open Hybrid.Core
open Hybrid.Core.JsonValue
open Hybrid.Core.Tests

let private vectorsDir = Json.repoPath [ "traces"; "vectors" ]

/// The recorded lines of one behaviour file: (action, params, state).
let private behaviour (path: string) : (string * Map<string, string> * Value) list =
    File.ReadAllLines path
    |> Array.toList
    |> List.map (fun line ->
        let v = Json.parse line
        let action = asStr "action" (field "line" "action" v)
        let ps = asFcn "params" asStr (field "line" "params" v)
        action, ps, field "line" "state" v)

/// Replays every behaviour of a set through `enabled`; returns (behaviours, steps) checked.
let private conform
    (set: string)
    (ofVariables: Value -> 'S)
    (init: 'S)
    (enabled: 'S -> ('A * 'S) list)
    (name: 'A -> string)
    (ps: 'A -> (string * string) list)
    (invariants: Invariants.Invariant<'S> list)
    : int * int * Set<string> =
    let files = Directory.GetFiles(Path.Combine(vectorsDir, set), "beh-*.ndjson") |> Array.sort
    Assert.NotEmpty files
    let mutable steps = 0
    let mutable seen = Set.empty
    for f in files do
        match behaviour f with
        | ("Init", _, s0) :: rest ->
            let first = ofVariables s0
            Assert.True((first = init), sprintf "%s line 1: TLC's initial state differs from F# init" f)
            let mutable prev = first
            rest
            |> List.iteri (fun i (action, parameters, st) ->
                let expected = ofVariables st
                let succ = enabled prev
                let matching = succ |> List.filter (fun (a, _) -> name a = action && Map.ofList (ps a) = parameters)
                if matching.IsEmpty then
                    failwithf "%s line %d: %s %A is not enabled in F#; enabled: %s" f (i + 2) action parameters (succ |> List.map (fst >> Ids.ActionInfo.label) |> String.concat ", ")
                let _, got = matching.Head
                if got <> expected then
                    failwithf "%s line %d: %s %A leads to a different state in F#" f (i + 2) action parameters
                for inv in invariants do
                    Assert.True(inv.Holds expected, sprintf "%s line %d: %s" f (i + 2) inv.Name)
                steps <- steps + 1
                seen <- seen.Add action
                prev <- expected)
        | _ -> failwithf "%s: line 1 is not Init" f
    files.Length, steps, seen

let private constants (set: string) : Value =
    Json.parse (File.ReadAllText(Path.Combine(vectorsDir, set, "constants.json")))

let private sha256 (path: string) : string =
    use h = SHA256.Create()
    use s = File.OpenRead path
    h.ComputeHash s |> Array.map (fun b -> b.ToString("x2")) |> String.concat ""

type VectorTests(out: ITestOutputHelper) =

    [<Fact>]
    member _.``every TLC-recorded Cuts step is an enabled F# step with exactly the recorded successor``() =
        let cfg = Codec.OfCuts.configOf (constants "cuts")
        let b, n, seen =
            conform "cuts" Codec.OfCuts.ofVariables (Cuts.init cfg) (Cuts.enabled cfg) Cuts.actionName Cuts.actionParams (Invariants.OfCuts.all cfg)
        out.WriteLine(sprintf "cuts: %d behaviours, %d steps conform" b n)
        // every action of the spec is exercised by some recorded step
        Assert.Equal<Set<string>>(Cuts.actions cfg |> List.map Cuts.actionName |> Set.ofList, seen)

    [<Fact>]
    member _.``every TLC-recorded Migration step is an enabled F# step with exactly the recorded successor``() =
        let cfg = Codec.OfMigration.configOf (constants "migration")
        let b, n, seen =
            conform
                "migration"
                Codec.OfMigration.ofVariables
                (Migration.init cfg)
                (Migration.enabled cfg)
                Migration.actionName
                Migration.actionParams
                (Invariants.OfMigration.all cfg)
        out.WriteLine(sprintf "migration: %d behaviours, %d steps conform" b n)
        Assert.Equal<Set<string>>(Migration.actions cfg |> List.map Migration.actionName |> Set.ofList, seen)

    [<Fact>]
    member _.``the vectors were generated from the spec files as they are now``() =
        let manifest = Json.parse (File.ReadAllText(Path.Combine(vectorsDir, "manifest.json")))
        let stale =
            [ for set in asArr "sets" (field "manifest" "sets" manifest) do
                  for sf in asArr "specFiles" (field "set" "specFiles" set) do
                      let path = asStr "path" (field "specFile" "path" sf)
                      let recorded = asStr "sha256" (field "specFile" "sha256" sf)
                      let full = Json.repoPath (List.ofArray (path.Split '/'))
                      let actual = if File.Exists full then sha256 full else "(missing)"
                      if actual <> recorded then yield sprintf "%s: manifest %s, now %s" path recorded actual ]
        Assert.True(stale.IsEmpty, "regenerate vectors (spec/tools/gen-vectors.sh): " + String.concat "; " stale)
