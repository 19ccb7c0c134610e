/// Shadowfax asynchronous global cuts (spec/cuts/Cuts.tla, contract in spec/MODEL.md), mirrored
/// action by action: every TLA+ action is a function of the same name and parameters that returns
/// `None` when its guard is false and the successor state otherwise. Names follow the spec
/// verbatim, including lower-case variable names, so a state reads like the TLA+ one.
module Hybrid.Core.Cuts

/// The CONSTANTS of Cuts.tla. Sets are F# sets (iterated in ascending order, as TLC prints them).
type Config =
    { /// Node identifiers ("n1", ...).
      Nodes: Set<string>
      /// Core identifiers; every node has the same cores.
      Cores: Set<string>
      /// Range identifiers.
      Ranges: Set<string>
      /// Client session identifiers.
      Sessions: Set<string>
      /// Owner of each range at start.
      InitOwner: Map<string, string>
      /// Bound on `Revoke` steps (ownership changes).
      MaxRevokes: int
      /// Bound on `Crash` steps.
      MaxCrashes: int
      /// "none" for the real protocol, otherwise the name of a buggy variant ("EarlyServe", ...).
      Bug: string }

/// An ownership change in progress (`handoff[r]`): the source's view `v` no longer holds the range.
type Handoff =
    { /// The node giving the range up.
      src: string
      /// The node receiving it.
      tgt: string
      /// The source's first view without the range.
      v: int }

/// A session's outstanding batch (`req[s]`): one batch, for one range.
type Batch =
    { /// The range the batch is for.
      rng: string
      /// The node it is addressed to.
      node: string
      /// The view of that node the session stamped on it.
      view: int
      /// True once a core rejected it (the session must refresh and resend).
      rejected: bool }

/// The last executed batch (`lastExec`), kept for the invariant `ExecInOwnView`.
type ExecRecord =
    { /// The node that executed it.
      node: string
      /// The core that executed it.
      core: string
      /// The view stamped on the batch.
      bview: int
      /// The view the core executed in.
      cview: int }

/// The VARIABLES of Cuts.tla. Optionals (TLA+ sets of at most one element) are F# options;
/// `hist[n]` is a list whose i-th element (from 0) is TLA+'s `hist[n][i+1]`.
type State =
    { /// Node is running.
      up: Map<string, bool>
      /// Owner of each range (durable metadata).
      owner: Map<string, string>
      /// The node's newest view number.
      view: Map<string, int>
      /// `hist[n][v]` = ranges node n owns in view v; `Len(hist[n]) = view[n]`.
      hist: Map<string, Set<string> list>
      /// Ownership change in progress per range.
      handoff: Map<string, Handoff option>
      /// The view each core executes in (0 = the node is down).
      coreView: Map<string, Map<string, int>>
      /// The session's cached owner map.
      sessMap: Map<string, Map<string, string>>
      /// The session's cached view of each node.
      sessView: Map<string, Map<string, int>>
      /// The session's outstanding batch.
      req: Map<string, Batch option>
      /// Number of `Revoke` steps so far.
      revokes: int
      /// Number of `Crash` steps so far.
      crashes: int
      /// The last executed batch.
      lastExec: ExecRecord option }

/// One step of Cuts.tla: a case per action, carrying its parameters by their spec names.
[<RequireQualifiedAccess>]
type Action =
    /// `Revoke(r, tgt)`: the owner's new view no longer holds r.
    | Revoke of r: string * tgt: string
    /// `Grant(r)`: once the cut is complete, the target owns r in its new view.
    | Grant of r: string
    /// `CoreRefresh(n, c)`: core c of node n adopts the node's newest view.
    | CoreRefresh of n: string * c: string
    /// `Send(s, r)`: session s sends a batch for range r.
    | Send of s: string * r: string
    /// `Execute(n, c, s)`: core c of node n executes session s's batch.
    | Execute of n: string * c: string * s: string
    /// `Reject(n, c, s)`: core c of node n rejects the batch (ViewChanged or NotOwner).
    | Reject of n: string * c: string * s: string
    /// `SessionRefresh(s)`: the session refreshes its map and re-addresses its batch.
    | SessionRefresh of s: string
    /// `Crash(n)`: node n stops; its cores go down.
    | Crash of n: string
    /// `Recover(n)`: node n restarts in its newest view.
    | Recover of n: string

/// The action's name as in the spec and in traces (its union case name).
let actionName (a: Action) : string = Ids.ActionInfo.name a

/// The action's parameters by their spec names (its union case field names).
let actionParams (a: Action) : (string * string) list = Ids.ActionInfo.parameters a

/// The action as the spec writes it, e.g. `BeginMigration(r1, n2)`.
let label (a: Action) : string = Ids.ActionInfo.label a

/// `Owned(n, v) == hist[n][v]` for 1 <= v <= view[n]; the empty set otherwise (TLC would fail;
/// every guard below only asks for views that exist).
let Owned (st: State) (n: string) (v: int) : Set<string> =
    let h = st.hist[n]
    if v >= 1 && v <= List.length h then List.item (v - 1) h else Set.empty

/// `CutComplete(r)`: every core of the handoff's source is down or has left the old view.
/// False when no handoff is in progress.
let CutComplete (cfg: Config) (st: State) (r: string) : bool =
    match st.handoff[r] with
    | None -> false
    | Some h -> cfg.Cores |> Set.forall (fun c -> let cv = st.coreView[h.src][c] in cv = 0 || cv >= h.v)

/// `CutOK(r) == Bug = "EarlyServe" \/ CutComplete(r)`.
let CutOK (cfg: Config) (st: State) (r: string) : bool = cfg.Bug = "EarlyServe" || CutComplete cfg st r

/// `Init`.
let init (cfg: Config) : State =
    let ofSet (s: Set<string>) f = s |> Seq.map (fun x -> x, f x) |> Map.ofSeq
    { up = ofSet cfg.Nodes (fun _ -> true)
      owner = cfg.InitOwner
      view = ofSet cfg.Nodes (fun _ -> 1)
      hist = ofSet cfg.Nodes (fun n -> [ cfg.Ranges |> Set.filter (fun r -> cfg.InitOwner[r] = n) ])
      handoff = ofSet cfg.Ranges (fun _ -> None)
      coreView = ofSet cfg.Nodes (fun _ -> ofSet cfg.Cores (fun _ -> 1))
      sessMap = ofSet cfg.Sessions (fun _ -> cfg.InitOwner)
      sessView = ofSet cfg.Sessions (fun _ -> ofSet cfg.Nodes (fun _ -> 1))
      req = ofSet cfg.Sessions (fun _ -> None)
      revokes = 0
      crashes = 0
      lastExec = None }

/// `Revoke(r, tgt)`: the owner's view advances to one without r, and the handoff is recorded.
/// Ownership in the metadata stays with the source until `Grant`.
let Revoke (cfg: Config) (r: string) (tgt: string) (st: State) : State option =
    let src = st.owner[r]
    if st.handoff[r].IsNone && st.revokes < cfg.MaxRevokes && tgt <> src && st.up[src] then
        let v = st.view[src] + 1
        Some
            { st with
                view = st.view.Add(src, v)
                hist = st.hist.Add(src, st.hist[src] @ [ (Owned st src st.view[src]).Remove r ])
                handoff = st.handoff.Add(r, Some { src = src; tgt = tgt; v = v })
                revokes = st.revokes + 1 }
    else
        None

/// `Grant(r)`: when the cut is complete (`CutOK`), the target owns r in its new view.
let Grant (cfg: Config) (r: string) (st: State) : State option =
    match st.handoff[r] with
    | Some h when CutOK cfg st r && st.up[h.tgt] ->
        let v = st.view[h.tgt] + 1
        Some
            { st with
                owner = st.owner.Add(r, h.tgt)
                view = st.view.Add(h.tgt, v)
                hist = st.hist.Add(h.tgt, st.hist[h.tgt] @ [ (Owned st h.tgt st.view[h.tgt]).Add r ])
                handoff = st.handoff.Add(r, None) }
    | _ -> None

/// `CoreRefresh(n, c)`: the core adopts its node's newest view at its next epoch refresh.
let CoreRefresh (_cfg: Config) (n: string) (c: string) (st: State) : State option =
    if st.up[n] && st.coreView[n][c] < st.view[n] then
        Some { st with coreView = st.coreView.Add(n, st.coreView[n].Add(c, st.view[n])) }
    else
        None

/// `Send(s, r)`: the session addresses a batch for r to the owner and view it has cached.
let Send (_cfg: Config) (s: string) (r: string) (st: State) : State option =
    if st.req[s].IsNone then
        let node = st.sessMap[s][r]
        let b = { rng = r; node = node; view = st.sessView[s][node]; rejected = false }
        Some { st with req = st.req.Add(s, Some b) }
    else
        None

/// What a core does with a batch stamped `bview` for range `rng` while it executes in view
/// `cview`: the guards of `Execute` and `Reject`, and the per-batch check of the node's hot path.
type Admission =
    /// `b.view = coreView /\ b.rng \in Owned(n, coreView)`: run it.
    | Admit
    /// `b.view < coreView`: reject, the session refreshes (ViewChanged).
    | ViewChanged
    /// `b.view = coreView /\ b.rng \notin Owned(n, b.view)`: reject (NotOwner).
    | NotOwner
    /// `b.view > coreView`: neither; the core must `CoreRefresh` first.
    | Wait

/// The admission decision of a core of node n in view `cview` (>= 1) for a batch stamped `bview`.
let admission (st: State) (n: string) (cview: int) (bview: int) (rng: string) : Admission =
    if bview > cview then Wait
    elif bview < cview then ViewChanged
    elif (Owned st n cview).Contains rng then Admit
    else NotOwner

/// The batch of session s if it is addressed to n, not rejected, and n is up.
let private pendingAt (st: State) (n: string) (s: string) : Batch option =
    match st.req[s] with
    | Some b when st.up[n] && b.node = n && not b.rejected -> Some b
    | _ -> None

/// The guard of `Execute(n, c, s)`, shared with the Migration actions that refine it.
let ExecuteGuard (st: State) (n: string) (c: string) (s: string) : bool =
    match pendingAt st n s with
    | Some b -> admission st n (st.coreView[n][c]) b.view b.rng = Admit
    | None -> false

/// `Execute(n, c, s)`: a core runs a batch stamped with its own view for a range it owns there.
let Execute (_cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    if ExecuteGuard st n c s then
        let b = st.req[s].Value
        Some
            { st with
                req = st.req.Add(s, None)
                lastExec = Some { node = n; core = c; bview = b.view; cview = st.coreView[n][c] } }
    else
        None

/// `Reject(n, c, s)`: an older view (ViewChanged) or a range not owned in the batch's view
/// (NotOwner); the session learns the core's view. A batch newer than the core waits instead.
let Reject (_cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    match pendingAt st n s with
    | Some b ->
        let cv = st.coreView[n][c]
        match admission st n cv b.view b.rng with
        | ViewChanged
        | NotOwner ->
            Some
                { st with
                    req = st.req.Add(s, Some { b with rejected = true })
                    sessView = st.sessView.Add(s, st.sessView[s].Add(n, cv)) }
        | Admit
        | Wait -> None
    | None -> None

/// `SessionRefresh(s)`: after a rejection (or when the addressed node is down) the session takes
/// the metadata's owners and views and re-addresses its batch.
let SessionRefresh (_cfg: Config) (s: string) (st: State) : State option =
    match st.req[s] with
    | Some b when b.rejected || not st.up[b.node] ->
        let o = st.owner[b.rng]
        Some
            { st with
                sessMap = st.sessMap.Add(s, st.owner)
                sessView = st.sessView.Add(s, st.view)
                req = st.req.Add(s, Some { rng = b.rng; node = o; view = st.view[o]; rejected = false }) }
    | _ -> None

/// `Crash(n)`: the node stops and all its cores go down (core view 0).
let Crash (cfg: Config) (n: string) (st: State) : State option =
    if st.up[n] && st.crashes < cfg.MaxCrashes then
        Some
            { st with
                up = st.up.Add(n, false)
                coreView = st.coreView.Add(n, st.coreView[n] |> Map.map (fun _ _ -> 0))
                crashes = st.crashes + 1 }
    else
        None

/// `Recover(n)`: the node restarts with every core in its newest (durable) view.
let Recover (_cfg: Config) (n: string) (st: State) : State option =
    if not st.up[n] then
        Some
            { st with
                up = st.up.Add(n, true)
                coreView = st.coreView.Add(n, st.coreView[n] |> Map.map (fun _ _ -> st.view[n])) }
    else
        None

/// Applies one action (the `Next` disjunct it names) to a state.
let step (cfg: Config) (a: Action) (st: State) : State option =
    match a with
    | Action.Revoke(r, tgt) -> Revoke cfg r tgt st
    | Action.Grant r -> Grant cfg r st
    | Action.CoreRefresh(n, c) -> CoreRefresh cfg n c st
    | Action.Send(s, r) -> Send cfg s r st
    | Action.Execute(n, c, s) -> Execute cfg n c s st
    | Action.Reject(n, c, s) -> Reject cfg n c s st
    | Action.SessionRefresh s -> SessionRefresh cfg s st
    | Action.Crash n -> Crash cfg n st
    | Action.Recover n -> Recover cfg n st

/// Every action instance of `Next`, in a fixed order (by action, then parameters ascending).
let actions (cfg: Config) : Action list =
    [ for r in cfg.Ranges do for tgt in cfg.Nodes do Action.Revoke(r, tgt)
      for r in cfg.Ranges do Action.Grant r
      for n in cfg.Nodes do for c in cfg.Cores do Action.CoreRefresh(n, c)
      for s in cfg.Sessions do for r in cfg.Ranges do Action.Send(s, r)
      for n in cfg.Nodes do for c in cfg.Cores do for s in cfg.Sessions do Action.Execute(n, c, s)
      for n in cfg.Nodes do for c in cfg.Cores do for s in cfg.Sessions do Action.Reject(n, c, s)
      for s in cfg.Sessions do Action.SessionRefresh s
      for n in cfg.Nodes do Action.Crash n
      for n in cfg.Nodes do Action.Recover n ]

/// The successors of `st` through each action of `all` that `step` enables. A step that changes
/// nothing is a stuttering step and is left out, as TLC leaves it out of a behaviour: an action that
/// returns the very same state object, or one for which `canStutter` is true and whose result is
/// equal to the state (the others always change it), which keeps enumeration cheap. Shared by Cuts
/// and Migration.
let successors (all: 'A list) (step: 'A -> 'S -> 'S option) (canStutter: 'A -> bool) (st: 'S) : ('A * 'S) list when 'S: equality =
    all
    |> List.choose (fun a ->
        match step a st with
        | Some s' when LanguagePrimitives.PhysicalEquality s' st || (canStutter a && s' = st) -> None
        | Some s' -> Some(a, s')
        | None -> None)

/// All successors of a state: every enabled action instance with the state it leads to, without
/// stuttering steps. Only `SessionRefresh` can stutter (every other action changes a counter,
/// flag, view or batch).
let enabled (cfg: Config) : State -> (Action * State) list =
    let all = actions cfg
    successors all (step cfg) (function Action.SessionRefresh _ -> true | _ -> false)
