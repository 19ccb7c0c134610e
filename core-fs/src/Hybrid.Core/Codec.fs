/// States and constants as JSON-like values, in exactly the shapes TLC's Json module writes them
/// (traces/vectors/README.md): functions over strings and records are objects, sets, optionals
/// and sequences are arrays, strings ascending. Used to read TLC vectors, to compare a trace line's
/// logged post-values with a model state, and to write golden traces.
module Hybrid.Core.Codec

open Hybrid.Core.JsonValue

/// Cuts states and constants.
module OfCuts =
    open Hybrid.Core.Cuts

    let private handoff (h: Handoff) = obj [ "src", str h.src; "tgt", str h.tgt; "v", int h.v ]
    let private batch (b: Batch) =
        obj [ "rng", str b.rng; "node", str b.node; "view", int b.view; "rejected", Value.Bool b.rejected ]
    let private exec (e: ExecRecord) =
        obj [ "node", str e.node; "core", str e.core; "bview", int e.bview; "cview", int e.cview ]

    /// The state's variables by name, each as TLC writes it.
    let variables (st: State) : Map<string, Value> =
        Map.ofList
            [ "up", fcn Value.Bool st.up
              "owner", fcn str st.owner
              "view", fcn int st.view
              "hist", fcn (fun h -> Value.Arr(h |> List.map strSet)) st.hist
              "handoff", fcn (opt handoff) st.handoff
              "coreView", fcn (fcn int) st.coreView
              "sessMap", fcn (fcn str) st.sessMap
              "sessView", fcn (fcn int) st.sessView
              "req", fcn (opt batch) st.req
              "revokes", int st.revokes
              "crashes", int st.crashes
              "lastExec", opt exec st.lastExec ]

    /// The state from its variables (an object with every variable); fails with the path on a
    /// shape mismatch.
    let ofVariables (v: Value) : State =
        let f name = field "state" name v
        let p name = "state." + name
        { up = asFcn (p "up") asBool (f "up")
          owner = asFcn (p "owner") asStr (f "owner")
          view = asFcn (p "view") asInt (f "view")
          hist = asFcn (p "hist") (fun path h -> asArr path h |> List.map (asStrSet path)) (f "hist")
          handoff =
            asFcn (p "handoff") (fun path x ->
                asOpt path (fun path h ->
                    { src = asStr path (field path "src" h)
                      tgt = asStr path (field path "tgt" h)
                      v = asInt path (field path "v" h) }) x) (f "handoff")
          coreView = asFcn (p "coreView") (fun path x -> asFcn path asInt x) (f "coreView")
          sessMap = asFcn (p "sessMap") (fun path x -> asFcn path asStr x) (f "sessMap")
          sessView = asFcn (p "sessView") (fun path x -> asFcn path asInt x) (f "sessView")
          req =
            asFcn (p "req") (fun path x ->
                asOpt path (fun path b ->
                    { rng = asStr path (field path "rng" b)
                      node = asStr path (field path "node" b)
                      view = asInt path (field path "view" b)
                      rejected = asBool path (field path "rejected" b) }) x) (f "req")
          revokes = asInt (p "revokes") (f "revokes")
          crashes = asInt (p "crashes") (f "crashes")
          lastExec =
            asOpt (p "lastExec") (fun path e ->
                { node = asStr path (field path "node" e)
                  core = asStr path (field path "core" e)
                  bview = asInt path (field path "bview" e)
                  cview = asInt path (field path "cview" e) }) (f "lastExec") }

    /// The Cuts constants from a constants object (traces/vectors/*/constants.json shape).
    /// `MaxRevokes` defaults to `MaxMigrations` when absent (Migration models).
    let configOf (v: Value) : Config =
        let f name = field "constants" name v
        let tryF name = (asObj "constants" v).TryFind name
        { Nodes = asStrSet "Nodes" (f "Nodes")
          Cores = asStrSet "Cores" (f "Cores")
          Ranges = asStrSet "Ranges" (f "Ranges")
          Sessions = asStrSet "Sessions" (f "Sessions")
          InitOwner = asFcn "InitOwner" asStr (f "InitOwner")
          MaxRevokes =
            match tryF "MaxRevokes" with
            | Some x -> asInt "MaxRevokes" x
            | None -> asInt "MaxMigrations" (f "MaxMigrations")
          MaxCrashes = asInt "MaxCrashes" (f "MaxCrashes")
          Bug = asStr "Bug" (f "Bug") }

/// Migration states and constants.
module OfMigration =
    open Hybrid.Core.Migration

    /// The phase's spec string ("Locking", ...).
    let phaseName (p: Phase) : string =
        match p with
        | Phase.Locking -> "Locking"
        | Phase.Prepared -> "Prepared"
        | Phase.Pulling -> "Pulling"
        | Phase.Pulled -> "Pulled"
        | Phase.Durable -> "Durable"
        | Phase.Dropped -> "Dropped"

    /// The phase named by a spec string.
    let phaseOf (path: string) (v: Value) : Phase =
        match asStr path v with
        | "Locking" -> Phase.Locking
        | "Prepared" -> Phase.Prepared
        | "Pulling" -> Phase.Pulling
        | "Pulled" -> Phase.Pulled
        | "Durable" -> Phase.Durable
        | "Dropped" -> Phase.Dropped
        | _ -> shapeError path "a phase name" v

    let private mig (m: Mig) =
        obj [ "src", str m.src; "tgt", str m.tgt; "phase", str (phaseName m.phase); "srcFloor", int m.srcFloor ]

    /// The state's variables by name (the Cuts ones and Migration's own), each as TLC writes it.
    let variables (st: State) : Map<string, Value> =
        let own =
            [ "store", fcn (fcn int) st.store
              "durable", fcn (fcn int) st.durable
              "floor", fcn int st.floor
              "mig", fcn (opt mig) st.mig
              "lineage", fcn (opt (fun (l: Lineage) -> obj [ "src", str l.src; "tgt", str l.tgt ])) st.lineage
              "have", fcn strSet st.have
              "cursor", fcn (fcn int) st.cursor
              "prio", fcn strSet st.prio
              "reqOp", fcn (opt (fun (o: ReqOp) -> obj [ "op", str o.op; "key", str o.key ])) st.reqOp
              "acked", fcn int st.acked
              "writes", int st.writes
              "migrations", int st.migrations
              "lastRead", opt (fun (e: ReadRecord) -> obj [ "key", str e.key; "got", int e.got; "expected", int e.expected ]) st.lastRead
              "lastWrite", opt (fun (e: WriteRecord) -> obj [ "key", str e.key; "prev", int e.prev; "new", int e.``new`` ]) st.lastWrite ]
        own |> List.fold (fun (m: Map<string, Value>) (k, v) -> m.Add(k, v)) (OfCuts.variables st.cuts)

    /// The state from its variables (an object with every variable).
    let ofVariables (v: Value) : State =
        let f name = field "state" name v
        let p name = "state." + name
        let intFcn path x = asFcn path asInt x
        let rec' path x (g: string -> Value -> 'a) = asOpt path g x
        { cuts = OfCuts.ofVariables v
          store = asFcn (p "store") intFcn (f "store")
          durable = asFcn (p "durable") intFcn (f "durable")
          floor = intFcn (p "floor") (f "floor")
          mig =
            asFcn (p "mig") (fun path x ->
                rec' path x (fun path m ->
                    { src = asStr path (field path "src" m)
                      tgt = asStr path (field path "tgt" m)
                      phase = phaseOf path (field path "phase" m)
                      srcFloor = asInt path (field path "srcFloor" m) })) (f "mig")
          lineage =
            asFcn (p "lineage") (fun path x ->
                rec' path x (fun path l -> { src = asStr path (field path "src" l); tgt = asStr path (field path "tgt" l) })) (f "lineage")
          have = asFcn (p "have") asStrSet (f "have")
          cursor = asFcn (p "cursor") intFcn (f "cursor")
          prio = asFcn (p "prio") asStrSet (f "prio")
          reqOp =
            asFcn (p "reqOp") (fun path x ->
                rec' path x (fun path o -> { op = asStr path (field path "op" o); key = asStr path (field path "key" o) })) (f "reqOp")
          acked = intFcn (p "acked") (f "acked")
          writes = asInt (p "writes") (f "writes")
          migrations = asInt (p "migrations") (f "migrations")
          lastRead =
            asOpt (p "lastRead") (fun path e ->
                { key = asStr path (field path "key" e)
                  got = asInt path (field path "got" e)
                  expected = asInt path (field path "expected" e) }) (f "lastRead")
          lastWrite =
            asOpt (p "lastWrite") (fun path e ->
                { key = asStr path (field path "key" e)
                  prev = asInt path (field path "prev" e)
                  ``new`` = asInt path (field path "new" e) }) (f "lastWrite") }

    /// The Migration constants as a constants object (the shape `configOf` reads).
    let constants (cfg: Config) : Value =
        let c = cfg.Cuts
        obj
            [ "Nodes", strSet c.Nodes
              "Cores", strSet c.Cores
              "Ranges", strSet c.Ranges
              "Sessions", strSet c.Sessions
              "InitOwner", fcn str c.InitOwner
              "MaxCrashes", int c.MaxCrashes
              "Bug", str c.Bug
              "Keys", strSet cfg.Keys
              "KeyRange", fcn str cfg.KeyRange
              "Partitions", strSet cfg.Partitions
              "PartKeys",
              Value.Obj(
                  c.Ranges
                  |> Seq.map (fun r ->
                      r, Value.Obj(cfg.Partitions |> Seq.map (fun p -> p, Value.Arr(partKeys cfg r p |> List.map str)) |> Map.ofSeq))
                  |> Map.ofSeq)
              "MaxWrites", int cfg.MaxWrites
              "MaxMigrations", int cfg.MaxMigrations ]

    /// The Migration constants from a constants object (`PartKeys` nested as `{r: {p: [keys]}}`).
    let configOf (v: Value) : Config =
        let f name = field "constants" name v
        let partKeys =
            asFcn "PartKeys" (fun path x -> asFcn path (fun path ks -> asArr path ks |> List.map (asStr path)) x) (f "PartKeys")
            |> Map.toSeq
            |> Seq.collect (fun (r, ps) -> ps |> Map.toSeq |> Seq.map (fun (p, ks) -> (r, p), ks))
            |> Map.ofSeq
        { Cuts = OfCuts.configOf v
          Keys = asStrSet "Keys" (f "Keys")
          KeyRange = asFcn "KeyRange" asStr (f "KeyRange")
          Partitions = asStrSet "Partitions" (f "Partitions")
          PartKeys = partKeys
          MaxWrites = asInt "MaxWrites" (f "MaxWrites")
          MaxMigrations = asInt "MaxMigrations" (f "MaxMigrations") }
