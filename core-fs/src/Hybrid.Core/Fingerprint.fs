/// 64-bit fingerprints of model states, as TLC keeps fingerprints rather than states: the explorer
/// stores only these to tell visited states apart, which keeps 10^5..10^6 states cheap. Two equal
/// states always have the same fingerprint; two different ones collide with probability about
/// n^2 / 2^65 for n states (TLC reports the same kind of estimate). Fingerprints are only compared
/// within one process (string hashes are randomized per process), never stored.
module Hybrid.Core.Fingerprint

/// Mixes a value into a running 64-bit hash (splitmix64 finalizer over a multiply-add).
let inline mix (h: uint64) (x: uint64) : uint64 =
    let mutable z = (h ^^^ x) * 0x9E3779B97F4A7C15UL
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

let inline private str (h: uint64) (s: string) = mix h (uint64 (uint32 (s.GetHashCode())))
let inline private num (h: uint64) (i: int) = mix h (uint64 (uint32 i) + 0x100000000UL)
let inline private flag (h: uint64) (b: bool) = mix h (if b then 3UL else 5UL)

let private strs (h: uint64) (s: Set<string>) =
    let mutable h = mix h 7UL
    for x in s do h <- str h x
    mix h 11UL

/// Folds a function over strings: each key and its value (hashed by `f`), in key order.
let private fcn (f: uint64 -> 'a -> uint64) (h: uint64) (m: Map<string, 'a>) =
    let mutable h = mix h 13UL
    for KeyValue(k, v) in m do h <- f (str h k) v
    mix h 17UL

let private optional (f: uint64 -> 'a -> uint64) (h: uint64) (o: 'a option) =
    match o with
    | None -> mix h 19UL
    | Some x -> f (mix h 23UL) x

/// The fingerprint of a Cuts state (every variable).
let ofCuts (st: Cuts.State) : uint64 =
    let mutable h = 0x243F6A8885A308D3UL
    h <- fcn flag h st.up
    h <- fcn str h st.owner
    h <- fcn num h st.view
    h <- fcn (fun h l -> List.fold strs (mix h 29UL) l) h st.hist
    h <- fcn (optional (fun h (x: Cuts.Handoff) -> num (str (str h x.src) x.tgt) x.v)) h st.handoff
    h <- fcn (fcn num) h st.coreView
    h <- fcn (fcn str) h st.sessMap
    h <- fcn (fcn num) h st.sessView
    h <- fcn (optional (fun h (b: Cuts.Batch) -> flag (num (str (str h b.rng) b.node) b.view) b.rejected)) h st.req
    h <- num (num h st.revokes) st.crashes
    optional (fun h (e: Cuts.ExecRecord) -> num (num (str (str h e.node) e.core) e.bview) e.cview) h st.lastExec

/// The fingerprint of a Migration state (the Cuts variables and its own).
let ofMigration (st: Migration.State) : uint64 =
    let mutable h = ofCuts st.cuts
    h <- fcn (fcn num) h st.store
    h <- fcn (fcn num) h st.durable
    h <- fcn num h st.floor
    h <- fcn (optional (fun h (m: Migration.Mig) -> num (num (str (str h m.src) m.tgt) (m.phase.GetHashCode())) m.srcFloor)) h st.mig
    h <- fcn (optional (fun h (l: Migration.Lineage) -> str (str h l.src) l.tgt)) h st.lineage
    h <- fcn strs h st.have
    h <- fcn (fcn num) h st.cursor
    h <- fcn strs h st.prio
    h <- fcn (optional (fun h (o: Migration.ReqOp) -> str (str h o.op) o.key)) h st.reqOp
    h <- fcn num h st.acked
    h <- num (num h st.writes) st.migrations
    h <- optional (fun h (e: Migration.ReadRecord) -> num (num (str h e.key) e.got) e.expected) h st.lastRead
    optional (fun h (e: Migration.WriteRecord) -> num (num (str h e.key) e.prev) e.``new``) h st.lastWrite
