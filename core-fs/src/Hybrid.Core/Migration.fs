/// Rocksteady live migration (spec/migration/Migration.tla, contract in spec/MODEL.md), which
/// EXTENDS Cuts: the state holds the Cuts state, and every action that changes a Cuts variable
/// calls the Cuts action of the same meaning (`BeginMigration` = `Revoke` + data bookkeeping,
/// `TransferOwnership` = `Grant` + lineage + floor), so Migration refines Cuts by projection.
module Hybrid.Core.Migration

/// The CONSTANTS of Migration.tla beyond those of Cuts (which it holds in `Cuts`).
type Config =
    { /// The Cuts constants. Its `MaxRevokes` must equal `MaxMigrations` (see `config`).
      Cuts: Cuts.Config
      /// Key identifiers.
      Keys: Set<string>
      /// The range of each key.
      KeyRange: Map<string, string>
      /// Background-pull partition identifiers.
      Partitions: Set<string>
      /// `PartKeys[r, p]`: the keys of range r in partition p, in pull order; each key of a range is
      /// in exactly one partition.
      PartKeys: Map<string * string, string list>
      /// Bound on client writes.
      MaxWrites: int
      /// Bound on migrations (drives Cuts' `MaxRevokes`).
      MaxMigrations: int }

    /// The `Bug` constant (shared with Cuts).
    member this.Bug = this.Cuts.Bug

/// A migration phase (`Phases` in the spec).
[<RequireQualifiedAccess>]
type Phase =
    /// Revoked at the source; waiting for the source's cores to leave the old view.
    | Locking
    /// The source reported its version floor.
    | Prepared
    /// Ownership moved; the target pulls the records.
    | Pulling
    /// Every record has been pulled.
    | Pulled
    /// The target's checkpoint covers the range.
    | Durable
    /// The source dropped its copy.
    | Dropped

/// A migration in flight (`mig[r]`).
type Mig =
    { /// The node giving the range up.
      src: string
      /// The node receiving it.
      tgt: string
      /// The phase it is in.
      phase: Phase
      /// The source's version floor reported by `Prepare` (0 before).
      srcFloor: int }

/// The dependency recorded at transfer (`lineage[r]`): the range is recoverable from the source's
/// log plus the target's log until the lineage is removed.
type Lineage =
    { /// The migration's source.
      src: string
      /// The migration's target.
      tgt: string }

/// What a session's outstanding batch does (`reqOp[s]`); `op` is "read" or "write".
type ReqOp =
    { /// "read" or "write".
      op: string
      /// The key it reads or writes.
      key: string }

/// The last read (`lastRead`): what it returned and the latest acknowledged version then.
type ReadRecord =
    { /// The key read.
      key: string
      /// The version the read returned.
      got: int
      /// The latest acknowledged version of the key at that moment.
      expected: int }

/// The last write (`lastWrite`): its new version and the previously acknowledged one.
type WriteRecord =
    { /// The key written.
      key: string
      /// The previously acknowledged version.
      prev: int
      /// The version this write created.
      ``new``: int }

/// The VARIABLES of Migration.tla: the Cuts ones (in `cuts`) and 13 more.
type State =
    { /// The Cuts variables.
      cuts: Cuts.State
      /// Version of each key in memory per node (0 = absent); a value is its version.
      store: Map<string, Map<string, int>>
      /// Version of each key in the node's log/checkpoint.
      durable: Map<string, Map<string, int>>
      /// The node's version floor (highest version issued).
      floor: Map<string, int>
      /// Migration in flight per range.
      mig: Map<string, Mig option>
      /// Lineage per range.
      lineage: Map<string, Lineage option>
      /// Keys of a migrating range whose latest version the target holds.
      have: Map<string, Set<string>>
      /// Background-pull cursor per range and partition (index of the last pulled key).
      cursor: Map<string, Map<string, int>>
      /// Keys waiting for a batched priority pull.
      prio: Map<string, Set<string>>
      /// What each session's outstanding batch does.
      reqOp: Map<string, ReqOp option>
      /// Version of the latest acknowledged write per key.
      acked: Map<string, int>
      /// Number of client writes so far.
      writes: int
      /// Number of migrations begun so far.
      migrations: int
      /// The last read.
      lastRead: ReadRecord option
      /// The last write.
      lastWrite: WriteRecord option }

/// One step of Migration.tla: a case per action of its `Next`, carrying its parameters.
[<RequireQualifiedAccess>]
type Action =
    /// `BeginMigration(r, tgt)` = `Revoke(r, tgt)` + a migration in phase Locking.
    | BeginMigration of r: string * tgt: string
    /// `Prepare(r)`: once the cut is complete the source reports its version floor.
    | Prepare of r: string
    /// `TransferOwnership(r)` = `Grant(r)` + lineage + the target raises its floor.
    | TransferOwnership of r: string
    /// `CoreRefresh(n, c)` (Cuts).
    | CoreRefresh of n: string * c: string
    /// `Reject(n, c, s)` (Cuts).
    | Reject of n: string * c: string * s: string
    /// `SessionRefresh(s)` (Cuts).
    | SessionRefresh of s: string
    /// `Recover(n)` (Cuts).
    | Recover of n: string
    /// `SendRead(s, k)` = `Send(s, KeyRange[k])` of a read.
    | SendRead of s: string * k: string
    /// `SendWrite(s, k)` = `Send(s, KeyRange[k])` of a write.
    | SendWrite of s: string * k: string
    /// `ExecuteWrite(n, c, s)` = `Execute(n, c, s)` of a write.
    | ExecuteWrite of n: string * c: string * s: string
    /// `ExecuteRead(n, c, s)` = `Execute(n, c, s)` of a read whose record is present.
    | ExecuteRead of n: string * c: string * s: string
    /// `ReadMiss(n, c, s)`: a read at the target of a record not pulled yet queues a priority pull.
    | ReadMiss of n: string * c: string * s: string
    /// `PriorityPull(r)`: one batched pull of every queued key.
    | PriorityPull of r: string
    /// `BackgroundPull(r, p)`: pulls the next key of partition p.
    | BackgroundPull of r: string * p: string
    /// `FinishPulls(r)`: every cursor at its end and no queued key.
    | FinishPulls of r: string
    /// `Checkpoint(n)`: the node's log/checkpoint catches up with memory.
    | Checkpoint of n: string
    /// `DropSource(r)`: the source deletes its copy once the target's checkpoint covers it.
    | DropSource of r: string
    /// `RemoveLineage(r)`: the migration ends.
    | RemoveLineage of r: string
    /// `Crash(n)` = Cuts `Crash(n)` + memory lost.
    | Crash of n: string

/// The action's name as in the spec and in traces (its union case name).
let actionName (a: Action) : string = Ids.ActionInfo.name a

/// The action's parameters by their spec names (its union case field names).
let actionParams (a: Action) : (string * string) list = Ids.ActionInfo.parameters a

/// The action as the spec writes it, e.g. `BeginMigration(r1, n2)`.
let label (a: Action) : string = Ids.ActionInfo.label a

/// Builds a configuration with Cuts' `MaxRevokes` set to `MaxMigrations`, as the MC files do.
let config
    (cuts: Cuts.Config)
    (keys: Map<string, string>)
    (partKeys: Map<string * string, string list>)
    (maxWrites: int)
    (maxMigrations: int)
    : Config =
    { Cuts = { cuts with MaxRevokes = maxMigrations }
      Keys = keys |> Map.keys |> Set.ofSeq
      KeyRange = keys
      Partitions = partKeys |> Map.keys |> Seq.map snd |> Set.ofSeq
      PartKeys = partKeys
      MaxWrites = maxWrites
      MaxMigrations = maxMigrations }

/// `PartKeys[r, p]` (empty if the configuration lists no keys for that pair).
let partKeys (cfg: Config) (r: string) (p: string) : string list =
    cfg.PartKeys.TryFind((r, p)) |> Option.defaultValue []

/// `RangeKeys(r)`: the keys of range r.
let RangeKeys (cfg: Config) (r: string) : Set<string> = cfg.Keys |> Set.filter (fun k -> cfg.KeyRange[k] = r)

/// `Pulled(cur, pulled)`: the replay rule; a pulled record never overwrites a newer one
/// (except in the buggy variant "PullOverwrites").
let Pulled (cfg: Config) (cur: int) (pulled: int) : int =
    if cfg.Bug = "PullOverwrites" then pulled else max cur pulled

/// `TargetMissing(n, k)`: n is pulling k's range and does not hold k's latest version yet.
let TargetMissing (cfg: Config) (st: State) (n: string) (k: string) : bool =
    let r = cfg.KeyRange[k]
    match st.mig[r] with
    | Some m -> m.tgt = n && m.phase = Phase.Pulling && not (st.have[r].Contains k)
    | None -> false

let private zeros (s: Set<string>) : Map<string, int> = s |> Seq.map (fun x -> x, 0) |> Map.ofSeq

/// `Init`: the Cuts initial state, no data, no migration.
let init (cfg: Config) : State =
    let perNode f = cfg.Cuts.Nodes |> Seq.map (fun n -> n, f n) |> Map.ofSeq
    let perRange f = cfg.Cuts.Ranges |> Seq.map (fun r -> r, f r) |> Map.ofSeq
    let perSession f = cfg.Cuts.Sessions |> Seq.map (fun s -> s, f s) |> Map.ofSeq
    { cuts = Cuts.init cfg.Cuts
      store = perNode (fun _ -> zeros cfg.Keys)
      durable = perNode (fun _ -> zeros cfg.Keys)
      floor = perNode (fun _ -> 0)
      mig = perRange (fun _ -> None)
      lineage = perRange (fun _ -> None)
      have = perRange (fun _ -> Set.empty)
      cursor = perRange (fun _ -> zeros cfg.Partitions)
      prio = perRange (fun _ -> Set.empty)
      reqOp = perSession (fun _ -> None)
      acked = zeros cfg.Keys
      writes = 0
      migrations = 0
      lastRead = None
      lastWrite = None }

/// Lifts a Cuts action that leaves every Migration variable unchanged.
let private lift (f: Cuts.State -> Cuts.State option) (st: State) : State option =
    f st.cuts |> Option.map (fun c -> { st with cuts = c })

/// Sets `mig[r]`'s phase and floor fields through `f` (the caller has checked it exists).
let private withMig (r: string) (f: Mig -> Mig) (st: State) : State =
    { st with mig = st.mig.Add(r, Some(f st.mig[r].Value)) }

/// `BeginMigration(r, tgt)`: `Revoke(r, tgt)` and a migration in phase Locking.
let BeginMigration (cfg: Config) (r: string) (tgt: string) (st: State) : State option =
    if st.mig[r].IsNone && st.migrations < cfg.MaxMigrations && st.cuts.up[tgt] then
        let src = st.cuts.owner[r]
        Cuts.Revoke cfg.Cuts r tgt st.cuts
        |> Option.map (fun c ->
            { st with
                cuts = c
                mig = st.mig.Add(r, Some { src = src; tgt = tgt; phase = Phase.Locking; srcFloor = 0 })
                migrations = st.migrations + 1 })
    else
        None

/// `Prepare(r)`: once the source's cores have left the old view (`CutOK`), the source reports
/// its version floor.
let Prepare (cfg: Config) (r: string) (st: State) : State option =
    match st.mig[r] with
    | Some m when m.phase = Phase.Locking && st.cuts.up[m.src] && Cuts.CutOK cfg.Cuts st.cuts r ->
        Some(withMig r (fun m -> { m with phase = Phase.Prepared; srcFloor = st.floor[m.src] }) st)
    | _ -> None

/// `TransferOwnership(r)`: `Grant(r)`, the lineage is recorded, and the target raises its version
/// floor to the source's (not in "NoFloorRaise"), so versions stay monotonic across the move.
let TransferOwnership (cfg: Config) (r: string) (st: State) : State option =
    match st.mig[r] with
    | Some m when m.phase = Phase.Prepared ->
        Cuts.Grant cfg.Cuts r st.cuts
        |> Option.map (fun c ->
            let fl = if cfg.Bug = "NoFloorRaise" then st.floor[m.tgt] else max (st.floor[m.tgt]) m.srcFloor
            { st with
                cuts = c
                lineage = st.lineage.Add(r, Some { src = m.src; tgt = m.tgt })
                floor = st.floor.Add(m.tgt, fl)
                mig = st.mig.Add(r, Some { m with phase = Phase.Pulling })
                have = st.have.Add(r, Set.empty)
                cursor = st.cursor.Add(r, zeros cfg.Partitions)
                prio = st.prio.Add(r, Set.empty) })
    | _ -> None

/// `CoreRefresh(n, c)` (Cuts; Migration variables unchanged).
let CoreRefresh (cfg: Config) (n: string) (c: string) (st: State) : State option =
    lift (Cuts.CoreRefresh cfg.Cuts n c) st

/// `Reject(n, c, s)` (Cuts; Migration variables unchanged).
let Reject (cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    lift (Cuts.Reject cfg.Cuts n c s) st

/// `SessionRefresh(s)` (Cuts; Migration variables unchanged).
let SessionRefresh (cfg: Config) (s: string) (st: State) : State option = lift (Cuts.SessionRefresh cfg.Cuts s) st

/// `Recover(n)` (Cuts; memory was already reset to the log at `Crash`).
let Recover (cfg: Config) (n: string) (st: State) : State option = lift (Cuts.Recover cfg.Cuts n) st

/// `SendRead(s, k)`: `Send(s, KeyRange[k])` of a read of k.
let SendRead (cfg: Config) (s: string) (k: string) (st: State) : State option =
    Cuts.Send cfg.Cuts s cfg.KeyRange[k] st.cuts
    |> Option.map (fun c -> { st with cuts = c; reqOp = st.reqOp.Add(s, Some { op = "read"; key = k }) })

/// `SendWrite(s, k)`: `Send(s, KeyRange[k])` of a write of k, within `MaxWrites`.
let SendWrite (cfg: Config) (s: string) (k: string) (st: State) : State option =
    if st.writes < cfg.MaxWrites then
        Cuts.Send cfg.Cuts s cfg.KeyRange[k] st.cuts
        |> Option.map (fun c ->
            { st with
                cuts = c
                writes = st.writes + 1
                reqOp = st.reqOp.Add(s, Some { op = "write"; key = k }) })
    else
        None

/// The key of session s's outstanding operation if it is `op`.
let private opKey (st: State) (s: string) (op: string) : string option =
    match st.reqOp[s] with
    | Some o when o.op = op -> Some o.key
    | _ -> None

/// `ExecuteWrite(n, c, s)`: `Execute(n, c, s)` of a write. The new version is above both the
/// stored one and the node's floor; the write is acknowledged once in the log (sync durability).
let ExecuteWrite (cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    match opKey st s "write" with
    | Some k ->
        Cuts.Execute cfg.Cuts n c s st.cuts
        |> Option.map (fun cu ->
            let v = max (st.store[n][k]) (st.floor[n]) + 1
            let r = cfg.KeyRange[k]
            let targetPulling =
                match st.mig[r] with
                | Some m -> m.tgt = n && m.phase = Phase.Pulling
                | None -> false
            { st with
                cuts = cu
                store = st.store.Add(n, st.store[n].Add(k, v))
                durable = st.durable.Add(n, st.durable[n].Add(k, v))
                floor = st.floor.Add(n, v)
                acked = st.acked.Add(k, v)
                lastWrite = Some { key = k; prev = st.acked[k]; ``new`` = v }
                have = (if targetPulling then st.have.Add(r, st.have[r].Add k) else st.have)
                reqOp = st.reqOp.Add(s, None) })
    | None -> None

/// `ExecuteRead(n, c, s)`: `Execute(n, c, s)` of a read whose record the node holds.
let ExecuteRead (cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    match opKey st s "read" with
    | Some k when not (TargetMissing cfg st n k) ->
        Cuts.Execute cfg.Cuts n c s st.cuts
        |> Option.map (fun cu ->
            { st with
                cuts = cu
                lastRead = Some { key = k; got = st.store[n][k]; expected = st.acked[k] }
                reqOp = st.reqOp.Add(s, None) })
    | _ -> None

/// `ReadMiss(n, c, s)`: the read could execute but its record has not arrived at the target:
/// the key is queued for a priority pull and the batch waits.
let ReadMiss (cfg: Config) (n: string) (c: string) (s: string) (st: State) : State option =
    match opKey st s "read" with
    | Some k when Cuts.ExecuteGuard st.cuts n c s && TargetMissing cfg st n k ->
        let r = cfg.KeyRange[k]
        if st.prio[r].Contains k then None else Some { st with prio = st.prio.Add(r, st.prio[r].Add k) }
    | _ -> None

/// The migration of r if it is in phase Pulling with both nodes up.
let private pulling (st: State) (r: string) : Mig option =
    match st.mig[r] with
    | Some m when m.phase = Phase.Pulling && st.cuts.up[m.src] && st.cuts.up[m.tgt] -> Some m
    | _ -> None

/// Pulls keys `ks` from the source into the target's memory with the replay rule `Pulled`.
let private pullKeys (cfg: Config) (m: Mig) (ks: Set<string>) (st: State) : State =
    let tgtStore =
        ks |> Set.fold (fun (acc: Map<string, int>) k -> acc.Add(k, Pulled cfg acc[k] (st.store[m.src][k]))) (st.store[m.tgt])
    { st with store = st.store.Add(m.tgt, tgtStore) }

/// `PriorityPull(r)`: one batched pull of every queued key.
let PriorityPull (cfg: Config) (r: string) (st: State) : State option =
    match pulling st r with
    | Some m when not st.prio[r].IsEmpty ->
        let st' = pullKeys cfg m st.prio[r] st
        Some { st' with have = st.have.Add(r, st.have[r] + st.prio[r]); prio = st.prio.Add(r, Set.empty) }
    | _ -> None

/// `BackgroundPull(r, p)`: pulls the key after partition p's cursor (the source keeps no state).
let BackgroundPull (cfg: Config) (r: string) (p: string) (st: State) : State option =
    match pulling st r with
    | Some m when st.cursor[r][p] < List.length (partKeys cfg r p) ->
        let k = List.item (st.cursor[r][p]) (partKeys cfg r p)
        let st' = pullKeys cfg m (Set.singleton k) st
        Some
            { st' with
                have = st.have.Add(r, st.have[r].Add k)
                cursor = st.cursor.Add(r, st.cursor[r].Add(p, st.cursor[r][p] + 1)) }
    | _ -> None

/// `FinishPulls(r)`: every cursor at its end and nothing queued.
let FinishPulls (cfg: Config) (r: string) (st: State) : State option =
    match st.mig[r] with
    | Some m when
        m.phase = Phase.Pulling
        && cfg.Partitions |> Set.forall (fun p -> st.cursor[r][p] = List.length (partKeys cfg r p))
        && st.prio[r].IsEmpty
        ->
        Some(withMig r (fun m -> { m with phase = Phase.Pulled }) st)
    | _ -> None

/// `Checkpoint(n)`: the log/checkpoint catches up with memory; migrations to n whose pulls are
/// finished become Durable (the checkpoint covers the range).
let Checkpoint (_cfg: Config) (n: string) (st: State) : State option =
    if st.cuts.up[n] then
        let covers (mo: Mig option) =
            match mo with
            | Some m -> m.tgt = n && m.phase = Phase.Pulled
            | None -> false
        if st.durable[n] = st.store[n] && not (st.mig |> Map.exists (fun _ mo -> covers mo)) then
            Some st // nothing to write: the same state (a stuttering step)
        else
            Some
                { st with
                    durable = st.durable.Add(n, st.store[n])
                    mig = st.mig |> Map.map (fun _ mo -> if covers mo then Some { mo.Value with phase = Phase.Durable } else mo) }
    else
        None

/// `DropSource(r)`: the source deletes the range's records from memory and log.
let DropSource (cfg: Config) (r: string) (st: State) : State option =
    match st.mig[r] with
    | Some m when m.phase = Phase.Durable && st.cuts.up[m.src] ->
        let clear (kv: Map<string, int>) = RangeKeys cfg r |> Set.fold (fun (acc: Map<string, int>) k -> acc.Add(k, 0)) kv
        Some
            { st with
                store = st.store.Add(m.src, clear st.store[m.src])
                durable = st.durable.Add(m.src, clear st.durable[m.src])
                mig = st.mig.Add(r, Some { m with phase = Phase.Dropped }) }
    | _ -> None

/// `RemoveLineage(r)`: the migration ends; the target alone holds the range.
let RemoveLineage (cfg: Config) (r: string) (st: State) : State option =
    match st.mig[r] with
    | Some m when m.phase = Phase.Dropped ->
        Some
            { st with
                lineage = st.lineage.Add(r, None)
                mig = st.mig.Add(r, None)
                have = st.have.Add(r, Set.empty)
                cursor = st.cursor.Add(r, zeros cfg.Partitions)
                prio = st.prio.Add(r, Set.empty) }
    | _ -> None

/// `Crash(n)`: Cuts `Crash(n)`; memory is lost (recovery replays the log), and every migration to
/// n forgets its volatile pull state: Pulled falls back to Pulling, cursors restart, and only keys
/// written at the target after the transfer (or a range its checkpoint covers) count as held.
let Crash (cfg: Config) (n: string) (st: State) : State option =
    Cuts.Crash cfg.Cuts n st.cuts
    |> Option.map (fun cu ->
        let migsToN = st.mig |> Map.toList |> List.choose (fun (r, mo) -> mo |> Option.filter (fun m -> m.tgt = n) |> Option.map (fun m -> r, m))
        let folded =
            migsToN
            |> List.fold
                (fun (acc: State) (r, m) ->
                    let held =
                        if m.phase = Phase.Durable || m.phase = Phase.Dropped then RangeKeys cfg r
                        else RangeKeys cfg r |> Set.filter (fun k -> st.durable[n][k] > m.srcFloor)
                    { acc with
                        mig = acc.mig.Add(r, Some { m with phase = (if m.phase = Phase.Pulled then Phase.Pulling else m.phase) })
                        cursor = acc.cursor.Add(r, zeros cfg.Partitions)
                        prio = acc.prio.Add(r, Set.empty)
                        have = acc.have.Add(r, held) })
                st
        { folded with cuts = cu; store = st.store.Add(n, st.durable[n]) })

/// Applies one action (the `Next` disjunct it names) to a state.
let step (cfg: Config) (a: Action) (st: State) : State option =
    match a with
    | Action.BeginMigration(r, tgt) -> BeginMigration cfg r tgt st
    | Action.Prepare r -> Prepare cfg r st
    | Action.TransferOwnership r -> TransferOwnership cfg r st
    | Action.CoreRefresh(n, c) -> CoreRefresh cfg n c st
    | Action.Reject(n, c, s) -> Reject cfg n c s st
    | Action.SessionRefresh s -> SessionRefresh cfg s st
    | Action.Recover n -> Recover cfg n st
    | Action.SendRead(s, k) -> SendRead cfg s k st
    | Action.SendWrite(s, k) -> SendWrite cfg s k st
    | Action.ExecuteWrite(n, c, s) -> ExecuteWrite cfg n c s st
    | Action.ExecuteRead(n, c, s) -> ExecuteRead cfg n c s st
    | Action.ReadMiss(n, c, s) -> ReadMiss cfg n c s st
    | Action.PriorityPull r -> PriorityPull cfg r st
    | Action.BackgroundPull(r, p) -> BackgroundPull cfg r p st
    | Action.FinishPulls r -> FinishPulls cfg r st
    | Action.Checkpoint n -> Checkpoint cfg n st
    | Action.DropSource r -> DropSource cfg r st
    | Action.RemoveLineage r -> RemoveLineage cfg r st
    | Action.Crash n -> Crash cfg n st

/// Every action instance of `Next`, in a fixed order (by action, then parameters ascending).
let actions (cfg: Config) : Action list =
    let c = cfg.Cuts
    [ for r in c.Ranges do for tgt in c.Nodes do Action.BeginMigration(r, tgt)
      for r in c.Ranges do Action.Prepare r
      for r in c.Ranges do Action.TransferOwnership r
      for n in c.Nodes do for cr in c.Cores do Action.CoreRefresh(n, cr)
      for n in c.Nodes do for cr in c.Cores do for s in c.Sessions do Action.Reject(n, cr, s)
      for s in c.Sessions do Action.SessionRefresh s
      for n in c.Nodes do Action.Recover n
      for s in c.Sessions do for k in cfg.Keys do Action.SendRead(s, k)
      for s in c.Sessions do for k in cfg.Keys do Action.SendWrite(s, k)
      for n in c.Nodes do for cr in c.Cores do for s in c.Sessions do Action.ExecuteWrite(n, cr, s)
      for n in c.Nodes do for cr in c.Cores do for s in c.Sessions do Action.ExecuteRead(n, cr, s)
      for n in c.Nodes do for cr in c.Cores do for s in c.Sessions do Action.ReadMiss(n, cr, s)
      for r in c.Ranges do Action.PriorityPull r
      for r in c.Ranges do for p in cfg.Partitions do Action.BackgroundPull(r, p)
      for r in c.Ranges do Action.FinishPulls r
      for n in c.Nodes do Action.Checkpoint n
      for r in c.Ranges do Action.DropSource r
      for r in c.Ranges do Action.RemoveLineage r
      for n in c.Nodes do Action.Crash n ]

/// All successors of a state: every enabled action instance with the state it leads to, without
/// stuttering steps (a `Checkpoint` with memory already in the log returns the same state object).
/// Only `Checkpoint` and `SessionRefresh` can stutter (every other action changes a counter, phase,
/// flag, view, queue or batch).
let enabled (cfg: Config) : State -> (Action * State) list =
    let all = actions cfg
    Cuts.successors all (step cfg) (function Action.SessionRefresh _ -> true | _ -> false)
