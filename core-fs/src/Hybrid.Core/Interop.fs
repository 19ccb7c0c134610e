/// The C#-facing surface of the core: classes, enums, arrays and single-argument-list methods only
/// (no curried functions, unions, options or F# collections across the boundary). Every method
/// delegates to `Decision` / `Trace`, which delegate to the model's actions: one implementation.
namespace Hybrid.Core.Interop

open System.Collections.Generic
open Hybrid.Core

/// What a core does with a batch (the model's `Execute`/`Reject` guards).
type Admission =
    /// Run it: stamped with the core's view, for a range owned in it.
    | Execute = 0
    /// Stamped with an older view: reply ViewChanged; the client refreshes and resends.
    | ViewChanged = 1
    /// Stamped with the core's view but the range is not owned in it: reply NotOwner.
    | NotOwner = 2
    /// Stamped with a newer view than the core's: hold it until the core refreshes its epoch.
    | Wait = 3

/// The kind of an effect.
type EffectKind =
    /// `Node`'s newest view is now `View`, owning exactly `OwnedRanges`.
    | BumpView = 0
    /// `Node`'s version floor is now at least `Floor`.
    | RaiseFloor = 1
    /// `Target` (re)starts pulling `Range` from `Source`.
    | StartPulls = 2
    /// `Node` deletes `Range` from its memory and log.
    | DropRange = 3
    /// The cut of `Range` is complete: `Prepare` may be sent.
    | CutCompleted = 4
    /// Append `TraceLine` (JSON text) to the trace.
    | EmitTrace = 5

/// One thing the node must do; only the properties of its `Kind` are meaningful ("" / 0 otherwise).
[<Sealed>]
type Effect internal (kind: EffectKind, node: string, range: string, view: int, floor: int, source: string, target: string, owned: string[], traceLine: string) =
    /// What to do.
    member _.Kind = kind
    /// The node concerned (BumpView, RaiseFloor, DropRange).
    member _.Node = node
    /// The range concerned (StartPulls, DropRange, CutCompleted).
    member _.Range = range
    /// The new view (BumpView).
    member _.View = view
    /// The new floor (RaiseFloor).
    member _.Floor = floor
    /// The migration's source (StartPulls).
    member _.Source = source
    /// The migration's target (StartPulls).
    member _.Target = target
    /// The ranges owned in the new view (BumpView).
    member _.OwnedRanges: string[] = owned
    /// The trace line, JSON text (EmitTrace).
    member _.TraceLine = traceLine
    /// A readable form for logs.
    override _.ToString() = sprintf "%A %s %s v%d f%d %s->%s %s" kind node range view floor source target traceLine

    /// The effect as C# sees it.
    static member internal Of(e: Decision.Effect) : Effect =
        match e with
        | Decision.BumpView(n, v, owned) -> Effect(EffectKind.BumpView, n, "", v, 0, "", "", Array.ofList owned, "")
        | Decision.RaiseFloor(n, f) -> Effect(EffectKind.RaiseFloor, n, "", 0, f, "", "", [||], "")
        | Decision.StartPulls(r, src, tgt) -> Effect(EffectKind.StartPulls, "", r, 0, 0, src, tgt, [||], "")
        | Decision.DropRange(n, r) -> Effect(EffectKind.DropRange, n, r, 0, 0, "", "", [||], "")
        | Decision.CutCompleted r -> Effect(EffectKind.CutCompleted, "", r, 0, 0, "", "", [||], "")
        | Decision.EmitTrace line -> Effect(EffectKind.EmitTrace, "", "", 0, 0, "", "", [||], JsonValue.render line)

/// The result of one request: the new cluster core (the old one is unchanged) and the effects.
[<Sealed>]
type DecisionResult internal (core: ClusterCore, effects: Effect[], accepted: bool, reason: string) =
    /// The cluster state after the request (the same state when refused).
    member _.Core = core
    /// What the node must do, in order.
    member _.Effects = effects
    /// False when the protocol refused the request; nothing changed.
    member _.Accepted = accepted
    /// Why it was refused ("" when accepted).
    member _.Reason = reason

/// The immutable protocol state of the cluster and the requests that change it. Each request
/// returns a new `ClusterCore` plus effects; the node keeps the newest one (e.g. behind an
/// Interlocked exchange) and performs the effects. Queries are cheap and allocation-light, but the
/// hot path should cache `OwnedRanges(node, view)` per view.
and [<Sealed>] ClusterCore internal (cs: Decision.ClusterState) =
    /// Decides one input; a refused input returns this same instance.
    member private this.Apply(input: Decision.Input) : DecisionResult =
        let o = Decision.decide cs input
        let core = if o.Accepted then ClusterCore o.State else this
        DecisionResult(core, o.Effects |> List.map Effect.Of |> Array.ofList, o.Accepted, o.Reason)

    /// A cluster of `nodes`, each with `cores`, where `initialOwner` maps every range to its owner.
    static member Create(nodes: string[], cores: string[], initialOwner: IReadOnlyDictionary<string, string>) : ClusterCore =
        ClusterCore(Decision.create (List.ofArray nodes) (List.ofArray cores) (initialOwner |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq))

    /// `BeginMigration(range, target)`: the source's view drops the range (BumpView).
    member this.BeginMigration(range: string, target: string) = this.Apply (Decision.BeginMigration(range, target))
    /// `Prepare(range)` with the source's current version floor; refused until the cut is complete.
    member this.Prepare(range: string, sourceFloor: int) = this.Apply (Decision.Prepare(range, sourceFloor))
    /// `TransferOwnership(range)`: target's view gains the range, floor raised, pulls start.
    member this.TransferOwnership(range: string) = this.Apply (Decision.TransferOwnership range)
    /// `FinishPulls(range)`: the target holds every record of the range.
    member this.FinishPulls(range: string) = this.Apply (Decision.FinishPulls range)
    /// `Checkpoint(node)`: the node's checkpoint covers its memory.
    member this.Checkpoint(node: string) = this.Apply (Decision.Checkpoint node)
    /// `DropSource(range)`: the source deletes the range (DropRange).
    member this.DropSource(range: string) = this.Apply (Decision.DropSource range)
    /// `RemoveLineage(range)`: the migration ends.
    member this.RemoveLineage(range: string) = this.Apply (Decision.RemoveLineage range)
    /// `Crash(node)`: the node is down (its cores' views are 0).
    member this.Crash(node: string) = this.Apply (Decision.Crash node)
    /// `Recover(node)`: the node is up with every core in its newest view; pulls to it restart.
    member this.Recover(node: string) = this.Apply (Decision.Recover node)
    /// `CoreRefresh(node, core)`: the core now executes in `view` (the node's newest).
    member this.CoreRefresh(node: string, core: string, view: int) = this.Apply (Decision.CoreRefresh(node, core, view))

    /// The ranges `node` owns in its view `view` (empty for a view it never had).
    member _.OwnedRanges(node: string, view: int) : string[] = Decision.ownedRanges cs node view |> Array.ofList
    /// What a core of `node` in view `coreView` does with a batch for `range` stamped `batchView`.
    member _.Admit(node: string, coreView: int, batchView: int, range: string) : Admission =
        match Decision.admission cs node coreView batchView range with
        | Cuts.Admit -> Admission.Execute
        | Cuts.ViewChanged -> Admission.ViewChanged
        | Cuts.NotOwner -> Admission.NotOwner
        | Cuts.Wait -> Admission.Wait
    /// True when a core of `node` in view `coreView` may execute a batch for `range` stamped with it.
    member _.CanExecute(node: string, coreView: int, range: string) : bool = Decision.canExecute cs node coreView range
    /// True when every core of `range`'s migration source has left the old view.
    member _.CutComplete(range: string) : bool = Decision.cutComplete cs range
    /// The node's newest view.
    member _.View(node: string) : int = cs.State.cuts.view[node]
    /// The view core `core` of `node` executes in (0 = down).
    member _.CoreView(node: string, core: string) : int = cs.State.cuts.coreView[node][core]
    /// The range's owner in the metadata.
    member _.Owner(range: string) : string = cs.State.cuts.owner[range]
    /// The phase of the range's migration ("Locking" ... "Dropped"), or "" when none.
    member _.Phase(range: string) : string =
        match cs.State.mig[range] with
        | Some m -> Codec.OfMigration.phaseName m.phase
        | None -> ""
    /// The target of the range's migration, or "" when none.
    member _.MigrationTarget(range: string) : string =
        match cs.State.mig[range] with
        | Some m -> m.tgt
        | None -> ""
    /// The source of the range's migration, or "" when none.
    member _.MigrationSource(range: string) : string =
        match cs.State.mig[range] with
        | Some m -> m.src
        | None -> ""
    /// The node the range's records come from if it moves now: its migration's source while one runs (from
    /// TransferOwnership on the owner is the target itself), else its owner.
    member _.MovesFrom(range: string) : string =
        match cs.State.mig[range] with
        | Some m -> m.src
        | None -> cs.State.cuts.owner[range]
    /// The node's version floor as the core knows it.
    member _.Floor(node: string) : int = cs.State.floor[node]
    /// The first line of this cluster's trace (Init with the constants), JSON text.
    member _.InitTraceLine: string = JsonValue.render (Trace.initEvent cs.Config)

/// The trace checker's report, for C#.
[<Sealed>]
type TraceReport internal (r: Trace.Report) =
    /// True when every line is an enabled step and every invariant held.
    member _.Accepted = (r.Verdict = Trace.Accepted)
    /// "Accepted", "NotEnabled", "InvariantViolated", "Ambiguous" or "Malformed".
    member _.Verdict = sprintf "%A" r.Verdict
    /// The first failing line (1-based), 0 when accepted.
    member _.Line = defaultArg r.Line 0
    /// The explanation.
    member _.Message = r.Message
    /// One candidate state before the failing line, as JSON text ("" when accepted).
    member _.StateBefore = r.StateBefore |> Option.map (fun m -> JsonValue.render (JsonValue.Value.Obj m)) |> Option.defaultValue ""
    /// The actions enabled before the failing line, e.g. "ExecuteWrite(n2, c1, s1)".
    member _.Enabled: string[] = Array.ofList r.Enabled
    /// Lines checked successfully.
    member _.LinesChecked = r.LinesChecked
    /// Lines per action name.
    member _.Coverage: IReadOnlyDictionary<string, int> = Dictionary<string, int>(r.Coverage) :> IReadOnlyDictionary<string, int>

/// The trace checker for C# (the CLI's `trace check`): build one `Value` per line with the
/// factory methods (from System.Text.Json's JsonElement), then call `Check`.
[<AbstractClass; Sealed>]
type TraceCheck =
    /// A JSON string.
    static member Str(s: string) : JsonValue.Value = JsonValue.Value.Str s
    /// A JSON integer.
    static member Int(i: int64) : JsonValue.Value = JsonValue.Value.Int i
    /// A JSON boolean.
    static member Bool(b: bool) : JsonValue.Value = JsonValue.Value.Bool b
    /// A JSON array.
    static member Array(items: IEnumerable<JsonValue.Value>) : JsonValue.Value = JsonValue.Value.Arr(List.ofSeq items)
    /// A JSON object.
    static member Object(fields: IEnumerable<KeyValuePair<string, JsonValue.Value>>) : JsonValue.Value =
        JsonValue.Value.Obj(fields |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq)
    /// Checks a Migration trace, one value per line in order (line 1 = the Init line with the
    /// constants), with the default search options (`Trace.defaults`).
    static member Check(lines: IEnumerable<JsonValue.Value>) : TraceReport =
        TraceReport(Trace.checkValues Trace.defaults None (List.ofSeq lines))
