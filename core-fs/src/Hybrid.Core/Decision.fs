/// The decisions the node carries out and never re-decides: ownership, views, migration phases,
/// lineage and version floors. Every input is one Migration action of the model (the same
/// function, not a second implementation), applied to the cluster's protocol state; the output is
/// the new state and the effects the node must perform, as data.
///
/// The cluster state is the Migration model instantiated with the real nodes, cores and ranges,
/// no keys and no sessions: data and client variables are the node's business (its storage and
/// its clients), so here they are empty and the data-plane actions (pulls per key, reads, writes)
/// are not inputs. Bounds of the model (`MaxMigrations`, `MaxCrashes`, ...) are set to
/// `Int32.MaxValue`: they exist only to make model checking finite.
///
/// Known gap: in the model a node's floor rises through `ExecuteWrite`; here writes are not inputs,
/// so `Prepare` carries the source's floor as the node observed it and records it before applying
/// the model's `Prepare`. The decisions' trace lines are therefore replayable by the trace checker
/// only when that floor equals the model's (no writes), or together with the node's write events.
module Hybrid.Core.Decision

open Hybrid.Core.Migration

/// The cluster's protocol state: the model's constants for this cluster and its state.
type ClusterState =
    { /// The model constants of this cluster.
      Config: Config
      /// The Migration state (views, histories, owners, migrations, lineage, floors, core views).
      State: State }

/// A request to the core.
type Input =
    /// Start moving range r to node tgt (`BeginMigration`).
    | BeginMigration of r: string * tgt: string
    /// The source reports its version floor and prepares r (`Prepare`); refused until the cut is complete.
    | Prepare of r: string * srcFloor: int
    /// Move ownership of r to the target (`TransferOwnership`).
    | TransferOwnership of r: string
    /// The target pulled every record of r (`FinishPulls`).
    | FinishPulls of r: string
    /// Node n's checkpoint now covers everything in its memory (`Checkpoint`).
    | Checkpoint of n: string
    /// The source may drop r (`DropSource`).
    | DropSource of r: string
    /// The migration of r ends (`RemoveLineage`).
    | RemoveLineage of r: string
    /// Node n crashed (`Crash`).
    | Crash of n: string
    /// Node n restarted (`Recover`).
    | Recover of n: string
    /// Core c of node n refreshed its epoch into view v (`CoreRefresh`); v must be n's newest view.
    | CoreRefresh of n: string * c: string * v: int

/// Something the node must do because of a decision.
type Effect =
    /// Node n's newest view is now v, in which it owns exactly `owned`; its cores adopt it at their
    /// next epoch refresh (and report `CoreRefresh`).
    | BumpView of n: string * v: int * owned: string list
    /// Node n's version floor is now at least `floor`: every version it issues from now on is above it.
    | RaiseFloor of n: string * floor: int
    /// The target starts (or restarts, after its crash) pulling r from src, background and priority.
    | StartPulls of r: string * src: string * tgt: string
    /// Node n deletes range r from its memory and log.
    | DropRange of n: string * r: string
    /// Every core of r's source has left the old view: `Prepare` may now be sent.
    | CutCompleted of r: string
    /// Write this line to the trace (the step's event, traces/README.md format).
    | EmitTrace of line: JsonValue.Value

/// The outcome of one input.
type Outcome =
    { /// The state after the input (unchanged when refused).
      State: ClusterState
      /// What the node must do, in order.
      Effects: Effect list
      /// False when the model's guard refused the input (nothing changed).
      Accepted: bool
      /// Why it was refused ("" when accepted).
      Reason: string }

/// A cluster of `nodes`, each with `cores`, where `initOwner` maps every range to its first owner.
let create (nodes: string list) (cores: string list) (initOwner: Map<string, string>) : ClusterState =
    let cuts: Cuts.Config =
        { Nodes = set nodes
          Cores = set cores
          Ranges = initOwner |> Map.keys |> Set.ofSeq
          Sessions = Set.empty
          InitOwner = initOwner
          MaxRevokes = System.Int32.MaxValue
          MaxCrashes = System.Int32.MaxValue
          Bug = "none" }
    let cfg = config cuts Map.empty Map.empty System.Int32.MaxValue System.Int32.MaxValue
    { Config = cfg; State = init cfg }

/// The model action an input is, and the state it applies to (Prepare first records the floor the
/// source reported: the node's writes, which raise it in the model, are not inputs here).
let private actionOf (cs: ClusterState) (input: Input) : Action * State =
    let st = cs.State
    match input with
    | BeginMigration(r, tgt) -> Action.BeginMigration(r, tgt), st
    | Prepare(r, srcFloor) ->
        let st' =
            match st.mig.TryFind r |> Option.flatten with
            | Some m -> { st with floor = st.floor.Add(m.src, max st.floor[m.src] srcFloor) }
            | None -> st
        Action.Prepare r, st'
    | TransferOwnership r -> Action.TransferOwnership r, st
    | FinishPulls r -> Action.FinishPulls r, st
    | Checkpoint n -> Action.Checkpoint n, st
    | DropSource r -> Action.DropSource r, st
    | RemoveLineage r -> Action.RemoveLineage r, st
    | Crash n -> Action.Crash n, st
    | Recover n -> Action.Recover n, st
    | CoreRefresh(n, c, _) -> Action.CoreRefresh(n, c), st

/// Effects of a step from `before` to `after` beyond the trace line: view changes, floors,
/// pulls to start, drops, and cuts that just completed.
let private effectsOf (cfg: Config) (a: Action) (before: State) (after: State) : Effect list =
    let views =
        [ for KeyValue(n, v) in after.cuts.view do
              if before.cuts.view[n] <> v then BumpView(n, v, Cuts.Owned after.cuts n v |> Set.toList) ]
    // TransferOwnership always tells the target to raise its floor, even when the model's floor does not move: the
    // model's floors count no writes (they stay 0 in a node's decision state), while the node raises its store to the
    // source's exact floor when it carries this out. Emitting it only on a change left the store's floor at 0, so a
    // write at the target to a key not pulled yet got version 1 and the pulled, older record overwrote it.
    let transferTarget =
        match a with
        | Action.TransferOwnership r ->
            match after.mig.TryFind r |> Option.flatten with
            | Some m -> Some m.tgt
            | None -> None
        | _ -> None
    let floors =
        [ for KeyValue(n, f) in after.floor do
              if before.floor[n] <> f || transferTarget = Some n then RaiseFloor(n, f) ]
    let pulls =
        [ for KeyValue(r, mo) in after.mig do
              match mo with
              | Some m when m.phase = Phase.Pulling ->
                  match a with
                  | Action.TransferOwnership r' when r' = r -> StartPulls(r, m.src, m.tgt)
                  | Action.Recover n when n = m.tgt -> StartPulls(r, m.src, m.tgt)
                  | _ -> ()
              | _ -> () ]
    let drops =
        match a, before.mig.TryFind(match a with Action.DropSource r -> r | _ -> "") |> Option.flatten with
        | Action.DropSource r, Some m -> [ DropRange(m.src, r) ]
        | _ -> []
    let cuts =
        [ for KeyValue(r, mo) in after.mig do
              match mo with
              | Some m when m.phase = Phase.Locking && Cuts.CutComplete cfg.Cuts after.cuts r && not (Cuts.CutComplete cfg.Cuts before.cuts r) ->
                  CutCompleted r
              | _ -> () ]
    views @ floors @ pulls @ drops @ cuts

/// Applies one input through the model's action of the same meaning. Refused (state unchanged, no
/// effects) when the action's guard is false, e.g. `Prepare` before the cut is complete.
let decide (cs: ClusterState) (input: Input) : Outcome =
    let refuse reason = { State = cs; Effects = []; Accepted = false; Reason = reason }
    let a, st = actionOf cs input
    match input with
    | CoreRefresh(n, _, v) when cs.State.cuts.view.TryFind n <> Some v ->
        refuse (sprintf "%s's newest view is %A, not %d" n (cs.State.cuts.view.TryFind n) v)
    | _ ->
        let result =
            try Ok(step cs.Config a st)
            with :? System.Collections.Generic.KeyNotFoundException -> Error(sprintf "%s names an unknown node, core or range" (label a))
        match result with
        | Ok(Some st') ->
            let effects = effectsOf cs.Config a cs.State st' @ [ EmitTrace(Trace.stepEvent a cs.State st') ]
            { State = { cs with State = st' }; Effects = effects; Accepted = true; Reason = "" }
        | Ok None -> refuse (sprintf "%s is not enabled" (label a))
        | Error reason -> refuse reason

/// The ranges node n owns in its view v (`Owned(n, v)`); empty for a view it never had.
let ownedRanges (cs: ClusterState) (n: string) (v: int) : string list =
    match cs.State.cuts.hist.TryFind n with
    | Some _ -> Cuts.Owned cs.State.cuts n v |> Set.toList
    | None -> []

/// What a core of node n in view `coreView` does with a batch stamped `batchView` for range r:
/// the model's `Execute`/`Reject` guards.
let admission (cs: ClusterState) (n: string) (coreView: int) (batchView: int) (r: string) : Cuts.Admission =
    Cuts.admission cs.State.cuts n coreView batchView r

/// True when a core of n in view `coreView` may execute a batch for r stamped with that view.
let canExecute (cs: ClusterState) (n: string) (coreView: int) (r: string) : bool =
    admission cs n coreView coreView r = Cuts.Admit

/// `CutComplete(r)`: every core of the handoff's source has left the old view (false when r has
/// no ownership change in progress).
let cutComplete (cs: ClusterState) (r: string) : bool = Cuts.CutComplete cs.Config.Cuts cs.State.cuts r
