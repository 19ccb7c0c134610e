/// Bounded explicit-state breadth-first exploration of a model (what TLC does for the MC files,
/// on the F# mirror): every reachable state up to a depth bound, invariants checked on each, and
/// the shortest counterexample when one fails. Generic over the model so Cuts and Migration share
/// it. Like TLC it keeps 64-bit fingerprints of visited states, not the states; a counterexample is
/// rebuilt by replaying the recorded actions. Single-threaded and pure: its collections are local
/// to one call.
module Hybrid.Core.Explorer

open System.Collections.Generic
open Hybrid.Core.Invariants

/// One step of a behaviour: the action that led to the state (`None` for the initial state).
type Step<'A, 'S> =
    { /// The action taken, or None for `Init`.
      Action: 'A option
      /// The state after it.
      State: 'S }

/// A failed invariant with the shortest behaviour that reaches it (BFS order).
type Violation<'A, 'S> =
    { /// The invariant's TLA+ name.
      Invariant: string
      /// From the initial state to the first state that violates it.
      Trace: Step<'A, 'S> list }

/// What an exploration found.
type Outcome<'A, 'S> =
    { /// Number of distinct states reached (each checked against every invariant).
      Distinct: int
      /// Number of BFS levels fully expanded.
      Depth: int
      /// True if no reachable state was left unexpanded because of the bounds.
      Complete: bool
      /// The first invariant violation found, if any.
      Violation: Violation<'A, 'S> option }

/// Bounds of an exploration.
type Bounds =
    { /// States at this BFS depth are checked but not expanded.
      MaxDepth: int
      /// Exploration stops after this many distinct states.
      MaxStates: int }

/// A model as the explorer sees it.
type Model<'A, 'S> =
    { /// The initial state.
      Init: 'S
      /// Every successor of a state with the action leading to it (the model's `enabled`).
      Next: 'S -> ('A * 'S) list
      /// The state's fingerprint (equal states, equal fingerprints).
      Fingerprint: 'S -> uint64
      /// The invariants checked on every state.
      Invariants: Invariant<'S> list }

/// Breadth-first search from `model.Init`, checking every invariant on every new state.
let explore (model: Model<'A, 'S>) (bounds: Bounds) : Outcome<'A, 'S> when 'A: equality =
    let visited = HashSet<uint64>()
    let parent = ResizeArray<int>()
    let via = ResizeArray<'A option>()
    let rebuild (i: int) =
        let rec actionsTo i acc = if i <= 0 then acc else actionsTo parent[i] (via[i].Value :: acc)
        actionsTo i []
        |> List.fold
            (fun (steps: Step<'A, 'S> list) a ->
                let s = (List.head steps).State
                let s' = model.Next s |> List.find (fun (b, _) -> b = a) |> snd
                { Action = Some a; State = s' } :: steps)
            [ { Action = None; State = model.Init } ]
        |> List.rev
    let check (s: 'S) (i: int) =
        model.Invariants
        |> List.tryFind (fun inv -> not (inv.Holds s))
        |> Option.map (fun inv -> { Invariant = inv.Name; Trace = rebuild i })
    visited.Add(model.Fingerprint model.Init) |> ignore
    parent.Add -1
    via.Add None
    let mutable violation = check model.Init 0
    let mutable frontier = ResizeArray [ struct (0, model.Init) ]
    let mutable depth = 0
    let mutable truncated = false
    while violation.IsNone && frontier.Count > 0 && depth < bounds.MaxDepth && not truncated do
        let nextFrontier = ResizeArray<struct (int * 'S)>()
        let mutable f = 0
        while violation.IsNone && not truncated && f < frontier.Count do
            let struct (i, s) = frontier[f]
            f <- f + 1
            for (a, s') in model.Next s do
                if violation.IsNone && not truncated then
                    let fp = model.Fingerprint s'
                    if not (visited.Contains fp) then
                        if visited.Count >= bounds.MaxStates then
                            truncated <- true
                        else
                            visited.Add fp |> ignore
                            let j = parent.Count
                            parent.Add i
                            via.Add(Some a)
                            violation <- check s' j
                            nextFrontier.Add(struct (j, s'))
        if violation.IsNone && not truncated then depth <- depth + 1
        frontier <- nextFrontier
    { Distinct = visited.Count
      Depth = depth
      Complete = violation.IsNone && not truncated && frontier.Count = 0
      Violation = violation }

/// A readable behaviour: one line per step with the action, then the variables that step changed
/// (all variables for the initial state), as compact JSON.
let render (label: 'A -> string) (variables: 'S -> Map<string, JsonValue.Value>) (trace: Step<'A, 'S> list) : string =
    let sb = System.Text.StringBuilder()
    let mutable prev: Map<string, JsonValue.Value> option = None
    trace
    |> List.iteri (fun i st ->
        let vars = variables st.State
        let name = st.Action |> Option.map label |> Option.defaultValue "Init"
        sb.AppendLine(sprintf "%d: %s" (i + 1) name) |> ignore
        for KeyValue(k, v) in vars do
            let changed = match prev with Some p -> p[k] <> v | None -> true
            if changed then sb.AppendLine(sprintf "     %s = %s" k (JsonValue.render v)) |> ignore
        prev <- Some vars)
    sb.ToString()

/// The Migration model for the explorer (all Migration invariants).
let migration (cfg: Migration.Config) : Model<Migration.Action, Migration.State> =
    { Init = Migration.init cfg
      Next = Migration.enabled cfg
      Fingerprint = Fingerprint.ofMigration
      Invariants = Invariants.OfMigration.all cfg }

/// The Cuts model for the explorer (all Cuts invariants).
let cuts (cfg: Cuts.Config) : Model<Cuts.Action, Cuts.State> =
    { Init = Cuts.init cfg
      Next = Cuts.enabled cfg
      Fingerprint = Fingerprint.ofCuts
      Invariants = Invariants.OfCuts.all cfg }
