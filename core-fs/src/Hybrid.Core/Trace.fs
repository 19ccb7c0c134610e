/// The trace checker: replays a node's trace (one event per atomic protocol step, named like the
/// TLA+ action, with its parameters and the post-values of the variables the emitter owns) through
/// the Migration model. Like TLC's trace validation it keeps a SET of candidate states, because a
/// trace logs only part of the state, and it allows the declared silent actions between lines.
/// It reports the first line that is not an enabled step (or breaks an invariant), with the state
/// before it and what was enabled there. Pure: it takes already-parsed JSON values.
module Hybrid.Core.Trace

open Hybrid.Core.JsonValue

/// Actions the node may perform without logging them, tried between any two lines. THE one place
/// they are declared. Only `Checkpoint`: `CoreRefresh` must be logged (MODEL.md: core and session
/// views are always logged by the steps that change them), because an unlogged refresh of the
/// source's cores would let a trace that serves early (the EarlyServe bug) pass as a correct one.
let silentActions: Set<string> = set [ "Checkpoint" ]

/// Top-level keys of an event that are not action parameters.
let reservedKeys: Set<string> = set [ "event"; "post"; "constants"; "seq"; "ts" ]

/// One trace line, parsed: `{"event": "<Action>", <param>: "<value>", ..., "post": {...}}`.
type TraceEvent =
    { /// 1-based line number in the trace.
      Line: int
      /// The action name (or "Init" for an optional first line).
      Event: string
      /// The action's parameters by their spec names.
      Params: Map<string, string>
      /// The logged post-values: variable name -> (partial) value; objects match on listed keys.
      Post: Map<string, Value>
      /// On an "Init" line: the model's constants (traces/vectors constants.json shape).
      Constants: Value option }

/// Reads one line's value into an event; Error names what is wrong.
let eventOf (line: int) (v: Value) : Result<TraceEvent, string> =
    match v with
    | Value.Obj m ->
        match m.TryFind "event" with
        | Some(Value.Str name) ->
            let ps = m |> Map.filter (fun k _ -> not (reservedKeys.Contains k))
            let bad = ps |> Map.filter (fun _ x -> match x with Value.Str _ -> false | _ -> true)
            match m.TryFind "post" with
            | Some(Value.Obj _)
            | None when bad.IsEmpty ->
                Ok
                    { Line = line
                      Event = name
                      Params = ps |> Map.map (fun _ x -> match x with Value.Str s -> s | _ -> "")
                      Post = (match m.TryFind "post" with Some(Value.Obj p) -> p | _ -> Map.empty)
                      Constants = m.TryFind "constants" }
            | _ when not bad.IsEmpty -> Error(sprintf "parameters must be strings: %s" (bad |> Map.keys |> String.concat ", "))
            | _ -> Error "\"post\" must be an object"
        | _ -> Error "missing \"event\" string"
    | _ -> Error "a trace line must be a JSON object"

/// How the checker searches.
type Options =
    { /// Actions allowed between lines without being logged.
      Silent: Set<string>
      /// At most this many silent steps before each line.
      MaxSilentSteps: int
      /// More candidate states than this is reported as "ambiguous" (log more variables).
      MaxCandidates: int }

/// The default search: `silentActions`, up to 4 silent steps per line, 4096 candidates.
let defaults: Options = { Silent = silentActions; MaxSilentSteps = 4; MaxCandidates = 4096 }

/// The checker's verdict.
type Verdict =
    /// Every line is an enabled step and every invariant held.
    | Accepted
    /// A line is not an enabled step consistent with its logged values.
    | NotEnabled
    /// A line is enabled but a state after it breaks an invariant.
    | InvariantViolated
    /// Too many states are consistent with the trace (the trace logs too little).
    | Ambiguous
    /// A line is not a well-formed event (or names no action instance of the model).
    | Malformed

/// The checker's report.
type Report =
    { /// The verdict.
      Verdict: Verdict
      /// The first failing line (1-based), if any.
      Line: int option
      /// A one-paragraph explanation.
      Message: string
      /// The variables of one candidate state before the failing line (after silent steps).
      StateBefore: Map<string, Value> option
      /// The actions enabled in the candidate states before the failing line.
      Enabled: string list
      /// Number of candidate states after the last line checked.
      Candidates: int
      /// Lines checked successfully.
      LinesChecked: int
      /// How many lines named each action (action coverage of the trace).
      Coverage: Map<string, int> }

/// The model a trace is checked against.
type Model<'A, 'S when 'S: comparison> =
    { /// The initial state.
      Init: 'S
      /// Every action instance of `Next`.
      Actions: 'A list
      /// Applies an action (None when its guard is false).
      Step: 'A -> 'S -> 'S option
      /// The state's variables in trace/TLC shape.
      Variables: 'S -> Map<string, Value>
      /// The invariants checked on every candidate.
      Invariants: Invariants.Invariant<'S> list }

/// Checks parsed events against a model. A leading "Init" event (if present) must agree with the
/// initial state; every other event must be the named action with the given parameters, taken from
/// some candidate state after at most `MaxSilentSteps` silent steps, whose successor agrees with
/// the logged post-values.
let check (options: Options) (model: Model<'A, 'S>) (events: TraceEvent list) : Report =
    let byName =
        model.Actions
        |> List.groupBy Ids.ActionInfo.name
        |> List.map (fun (n, acts) -> n, acts |> List.map (fun a -> a, Map.ofList (Ids.ActionInfo.parameters a)))
        |> Map.ofList
    let silent = model.Actions |> List.filter (fun a -> options.Silent.Contains(Ids.ActionInfo.name a))
    let agrees (post: Map<string, Value>) (s: 'S) = JsonValue.agrees (Value.Obj post) (Value.Obj(model.Variables s))
    let enabledAt (cands: Set<'S>) =
        [ for s in cands do
              for a in model.Actions do
                  if (model.Step a s).IsSome then yield Ids.ActionInfo.label a ]
        |> List.distinct
    let report verdict line msg (before: Set<'S>) cands checkedLines coverage =
        { Verdict = verdict
          Line = line
          Message = msg
          StateBefore = (if Set.isEmpty before then None else Some(model.Variables(Set.minElement before)))
          Enabled = (if Set.isEmpty before then [] else enabledAt before)
          Candidates = cands
          LinesChecked = checkedLines
          Coverage = coverage }
    // candidates plus every state reachable by at most k silent steps
    let rec closure (k: int) (frontier: Set<'S>) (all: Set<'S>) =
        if k = 0 || frontier.IsEmpty || all.Count > options.MaxCandidates then all
        else
            let next =
                frontier
                |> Seq.collect (fun s -> silent |> Seq.choose (fun a -> model.Step a s))
                |> Seq.filter (fun s -> not (all.Contains s))
                |> Set.ofSeq
            closure (k - 1) next (Set.union all next)
    let rec go (cands: Set<'S>) (events: TraceEvent list) (checkedLines: int) (coverage: Map<string, int>) =
        match events with
        | [] ->
            { Verdict = Accepted
              Line = None
              Message = sprintf "accepted: %d lines, %d candidate end states" checkedLines cands.Count
              StateBefore = None
              Enabled = []
              Candidates = cands.Count
              LinesChecked = checkedLines
              Coverage = coverage }
        | ev :: rest ->
            let coverage' = coverage.Add(ev.Event, 1 + defaultArg (coverage.TryFind ev.Event) 0)
            let expanded = closure options.MaxSilentSteps cands cands
            if expanded.Count > options.MaxCandidates then
                report Ambiguous (Some ev.Line) (sprintf "line %d: more than %d candidate states; log more variables" ev.Line options.MaxCandidates) cands expanded.Count checkedLines coverage
            else
                let instances =
                    byName.TryFind ev.Event |> Option.defaultValue [] |> List.filter (fun (_, ps) -> ps = ev.Params) |> List.map fst
                if instances.IsEmpty then
                    report Malformed (Some ev.Line) (sprintf "line %d: no action %s with parameters %A in the model" ev.Line ev.Event (Map.toList ev.Params)) expanded expanded.Count checkedLines coverage
                else
                    let next =
                        [ for s in expanded do
                              for a in instances do
                                  match model.Step a s with
                                  | Some s' when agrees ev.Post s' -> yield s'
                                  | _ -> () ]
                        |> Set.ofList
                    if next.IsEmpty then
                        let enabledOnly = [ for s in expanded do for a in instances do if (model.Step a s).IsSome then yield () ]
                        let why = if enabledOnly.IsEmpty then "is not enabled" else "is enabled but its successor disagrees with the logged post-values"
                        report NotEnabled (Some ev.Line) (sprintf "line %d: %s %s in any of %d candidate states" ev.Line (Ids.ActionInfo.label instances.Head) why expanded.Count) expanded 0 checkedLines coverage'
                    elif next.Count > options.MaxCandidates then
                        report Ambiguous (Some ev.Line) (sprintf "line %d: more than %d candidate states; log more variables" ev.Line options.MaxCandidates) expanded next.Count checkedLines coverage'
                    else
                        let broken =
                            next |> Seq.tryPick (fun s -> model.Invariants |> List.tryFind (fun i -> not (i.Holds s)) |> Option.map (fun i -> i.Name))
                        match broken with
                        | Some name ->
                            report InvariantViolated (Some ev.Line) (sprintf "line %d: %s breaks the invariant %s" ev.Line (Ids.ActionInfo.label instances.Head) name) expanded next.Count (checkedLines + 1) coverage'
                        | None -> go next rest (checkedLines + 1) coverage'
    match events with
    | ev :: rest when ev.Event = "Init" ->
        let init = Set.singleton model.Init
        if agrees ev.Post model.Init then go init rest 1 Map.empty
        else report NotEnabled (Some ev.Line) "line 1: the logged initial values disagree with the model's Init" init 0 0 Map.empty
    | _ -> go (Set.singleton model.Init) events 0 Map.empty

/// The Migration model for the checker.
let migrationModel (cfg: Migration.Config) : Model<Migration.Action, Migration.State> =
    { Init = Migration.init cfg
      Actions = Migration.actions cfg
      Step = Migration.step cfg
      Variables = Codec.OfMigration.variables
      Invariants = Invariants.OfMigration.all cfg }

/// Checks a Migration trace given as one JSON value per line, in order. The first line must be
/// `{"event":"Init","constants":{...}}` unless `cfg` is given; line numbers are positions + 1.
let checkValues (options: Options) (cfg: Migration.Config option) (lines: Value list) : Report =
    let malformed line msg =
        { Verdict = Malformed; Line = Some line; Message = sprintf "line %d: %s" line msg; StateBefore = None
          Enabled = []; Candidates = 0; LinesChecked = 0; Coverage = Map.empty }
    let parsed = lines |> List.mapi (fun i v -> eventOf (i + 1) v)
    match parsed |> List.tryFindIndex Result.isError with
    | Some i -> malformed (i + 1) (match parsed[i] with Error e -> e | Ok _ -> "")
    | None ->
        let events = parsed |> List.choose (function Ok e -> Some e | Error _ -> None)
        let config =
            match cfg, events with
            | Some c, _ -> Ok c
            | None, { Event = "Init"; Constants = Some c } :: _ ->
                try Ok(Codec.OfMigration.configOf c) with ShapeError msg -> Error msg
            | None, _ -> Error "the first line must be {\"event\":\"Init\",\"constants\":{...}} (or pass the constants)"
        match config with
        | Ok c -> check options (migrationModel c) events
        | Error msg -> malformed 1 msg

/// The trace line of one Migration step: the action's name and parameters, and as `post` the
/// variables it changed (only the changed entries of function-valued variables). This is what an
/// emitter that owns every variable would log; the node logs the part it owns.
let stepEvent (a: Migration.Action) (before: Migration.State) (after: Migration.State) : Value =
    let b, a' = Codec.OfMigration.variables before, Codec.OfMigration.variables after
    let post = a' |> Map.toSeq |> Seq.choose (fun (k, v) -> diff (b[k]) v |> Option.map (fun d -> k, d)) |> Map.ofSeq
    Value.Obj(
        (Migration.actionParams a |> List.map (fun (k, v) -> k, Value.Str v))
        @ [ "event", Value.Str(Migration.actionName a); "post", Value.Obj post ]
        |> Map.ofList
    )

/// The first line of a trace: `{"event":"Init","constants":{...}}`.
let initEvent (cfg: Migration.Config) : Value =
    Value.Obj(Map [ "event", Value.Str "Init"; "constants", Codec.OfMigration.constants cfg ])
