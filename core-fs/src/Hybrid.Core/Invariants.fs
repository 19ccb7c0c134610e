/// The invariants of MODEL.md, one predicate per TLA+ invariant with the same name, and the lists
/// the explorer, the property tests and the trace checker check.
module Hybrid.Core.Invariants

open Hybrid.Core

/// A named invariant over states of type 'S.
type Invariant<'S> =
    { /// The TLA+ name.
      Name: string
      /// True when the state satisfies it.
      Holds: 'S -> bool }

/// The invariants of Cuts.tla.
module OfCuts =
    open Hybrid.Core.Cuts

    /// True when the map's domain is exactly `s`.
    let domainIs (s: Set<string>) (m: Map<string, 'a>) : bool = m.Count = s.Count && s |> Set.forall m.ContainsKey

    /// `TypeOK`: every variable is a function over the right domain with values of the right kind
    /// (what F# types cannot say: domains, node names, `Len(hist[n]) = view[n]`).
    let TypeOK (cfg: Config) (st: State) : bool =
        let isNode n = cfg.Nodes.Contains n
        domainIs cfg.Nodes st.up
        && domainIs cfg.Ranges st.owner
        && st.owner |> Map.forall (fun _ n -> isNode n)
        && domainIs cfg.Nodes st.view
        && domainIs cfg.Nodes st.hist
        && st.hist |> Map.forall (fun n h -> List.length h = st.view[n] && h |> List.forall (fun rs -> Set.isSubset rs cfg.Ranges))
        && domainIs cfg.Ranges st.handoff
        && st.handoff |> Map.forall (fun _ h -> h |> Option.forall (fun h -> isNode h.src && isNode h.tgt && h.v >= 1))
        && domainIs cfg.Nodes st.coreView
        && st.coreView |> Map.forall (fun _ cv -> domainIs cfg.Cores cv && cv |> Map.forall (fun _ v -> v >= 0))
        && domainIs cfg.Sessions st.sessMap
        && st.sessMap |> Map.forall (fun _ m -> domainIs cfg.Ranges m && m |> Map.forall (fun _ n -> isNode n))
        && domainIs cfg.Sessions st.sessView
        && st.sessView |> Map.forall (fun _ m -> domainIs cfg.Nodes m)
        && domainIs cfg.Sessions st.req
        && st.req |> Map.forall (fun _ b -> b |> Option.forall (fun b -> cfg.Ranges.Contains b.rng && isNode b.node && b.view >= 0))
        && st.revokes >= 0
        && st.crashes >= 0

    /// `SingleExecutingOwner`: among executing cores (view not 0), at most one node owns each range.
    let SingleExecutingOwner (cfg: Config) (st: State) : bool =
        // the ranges each node owns in the views its executing cores are in, then no range twice
        let executing =
            cfg.Nodes
            |> Seq.map (fun n -> st.coreView[n] |> Seq.fold (fun acc (KeyValue(_, v)) -> if v <> 0 then Set.union acc (Owned st n v) else acc) Set.empty)
            |> List.ofSeq
        cfg.Ranges |> Set.forall (fun r -> (executing |> List.filter (fun owned -> owned.Contains r) |> List.length) <= 1)

    /// `ExecInOwnView`: the last executed batch was stamped with the view the core executed in.
    let ExecInOwnView (_cfg: Config) (st: State) : bool =
        st.lastExec |> Option.forall (fun e -> e.bview = e.cview)

    /// `SessionViewsBounded`: no session believes a node is in a view it has not reached.
    let SessionViewsBounded (cfg: Config) (st: State) : bool =
        cfg.Sessions |> Set.forall (fun s -> cfg.Nodes |> Set.forall (fun n -> st.sessView[s][n] <= st.view[n]))

    /// Every Cuts invariant, by name.
    let all (cfg: Config) : Invariant<State> list =
        [ { Name = "TypeOK"; Holds = TypeOK cfg }
          { Name = "SingleExecutingOwner"; Holds = SingleExecutingOwner cfg }
          { Name = "ExecInOwnView"; Holds = ExecInOwnView cfg }
          { Name = "SessionViewsBounded"; Holds = SessionViewsBounded cfg } ]

/// The invariants of Migration.tla (it also checks the Cuts ones on the Cuts variables).
module OfMigration =
    open Hybrid.Core.Migration

    /// `Recoverable(k)`: the key's version recoverable after any crash: the owner's log, or with a
    /// lineage the newer of the source's and the target's logs.
    let Recoverable (cfg: Config) (st: State) (k: string) : int =
        let r = cfg.KeyRange[k]
        match st.lineage[r] with
        | Some l -> max (st.durable[l.src][k]) (st.durable[l.tgt][k])
        | None -> st.durable[st.cuts.owner[r]][k]

    /// `TypeOK`: the Cuts `TypeOK` plus the Migration variables' domains and kinds.
    let TypeOK (cfg: Config) (st: State) : bool =
        let nodes, ranges = cfg.Cuts.Nodes, cfg.Cuts.Ranges
        let dom (s: Set<string>) (m: Map<string, 'a>) = OfCuts.domainIs s m
        let nat (m: Map<string, int>) = m |> Map.forall (fun _ v -> v >= 0)
        OfCuts.TypeOK cfg.Cuts st.cuts
        && dom nodes st.store && st.store |> Map.forall (fun _ m -> dom cfg.Keys m && nat m)
        && dom nodes st.durable && st.durable |> Map.forall (fun _ m -> dom cfg.Keys m && nat m)
        && dom nodes st.floor && nat st.floor
        && dom ranges st.mig && st.mig |> Map.forall (fun _ m -> m |> Option.forall (fun m -> nodes.Contains m.src && nodes.Contains m.tgt && m.srcFloor >= 0))
        && dom ranges st.lineage
        && dom ranges st.have && st.have |> Map.forall (fun _ ks -> Set.isSubset ks cfg.Keys)
        && dom ranges st.cursor && st.cursor |> Map.forall (fun _ m -> dom cfg.Partitions m && nat m)
        && dom ranges st.prio && st.prio |> Map.forall (fun _ ks -> Set.isSubset ks cfg.Keys)
        && dom cfg.Cuts.Sessions st.reqOp
        && st.reqOp |> Map.forall (fun _ o -> o |> Option.forall (fun o -> (o.op = "read" || o.op = "write") && cfg.Keys.Contains o.key))
        && dom cfg.Keys st.acked && nat st.acked
        && st.writes >= 0 && st.migrations >= 0

    /// `NoLostAckedWrite`: every acknowledged write survives any crash.
    let NoLostAckedWrite (cfg: Config) (st: State) : bool =
        cfg.Keys |> Set.forall (fun k -> st.acked[k] <= Recoverable cfg st k)

    /// `ReadLatest`: the last read returned the latest acknowledged version (per-key linearizability).
    let ReadLatest (_cfg: Config) (st: State) : bool =
        st.lastRead |> Option.forall (fun e -> e.got = e.expected)

    /// `VersionMonotonic`: the last write's version is above the previously acknowledged one.
    let VersionMonotonic (_cfg: Config) (st: State) : bool =
        st.lastWrite |> Option.forall (fun e -> e.``new`` > e.prev)

    /// `FloorCoversStore`: no node holds a version above its floor.
    let FloorCoversStore (_cfg: Config) (st: State) : bool =
        st.store |> Map.forall (fun n kv -> let f = st.floor[n] in kv |> Map.forall (fun _ v -> v <= f))

    /// `HaveIsLatest`: every key the target counts as held is at least the acknowledged version.
    let HaveIsLatest (_cfg: Config) (st: State) : bool =
        st.mig
        |> Map.forall (fun r mo ->
            match mo with
            | Some m -> st.have[r] |> Set.forall (fun k -> st.store[m.tgt][k] >= st.acked[k])
            | None -> true)

    /// Every Migration invariant, by name: the Cuts ones on the Cuts variables, then its own.
    let all (cfg: Config) : Invariant<State> list =
        (OfCuts.all cfg.Cuts
         |> List.filter (fun i -> i.Name <> "TypeOK")
         |> List.map (fun i -> { Name = i.Name; Holds = fun (s: State) -> i.Holds s.cuts }))
        @ [ { Name = "TypeOK"; Holds = TypeOK cfg }
            { Name = "NoLostAckedWrite"; Holds = NoLostAckedWrite cfg }
            { Name = "ReadLatest"; Holds = ReadLatest cfg }
            { Name = "VersionMonotonic"; Holds = VersionMonotonic cfg }
            { Name = "FloorCoversStore"; Holds = FloorCoversStore cfg }
            { Name = "HaveIsLatest"; Holds = HaveIsLatest cfg } ]

/// The names of the invariants that MODEL.md's table expects each buggy variant to violate.
let expectedViolations (bug: string) : string list =
    match bug with
    | "EarlyServe" -> [ "SingleExecutingOwner" ]
    | "PullOverwrites" -> [ "ReadLatest"; "HaveIsLatest" ]
    | "NoFloorRaise" -> [ "VersionMonotonic"; "ReadLatest" ]
    | _ -> []
