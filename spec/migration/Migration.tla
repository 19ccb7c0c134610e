------------------------------ MODULE Migration ------------------------------
(***************************************************************************)
(* Live migration of a range (Rocksteady) on top of asynchronous cuts.    *)
(*                                                                         *)
(* Data: a value *is* its version.  Each node keeps a store in memory, a  *)
(* durable log/checkpoint and a version floor (the highest version it has *)
(* issued).  Writes are synchronous: acknowledged once in the log.        *)
(*                                                                         *)
(* Moving range r from src to tgt:                                        *)
(*   BeginMigration   = Cuts Revoke: src leaves the views that hold r;    *)
(*   Prepare          once the cut is complete, src reports its floor;    *)
(*   TransferOwnership = Cuts Grant: tgt owns r at once, records the      *)
(*                      lineage (src, tgt) and raises its floor above     *)
(*                      src's, so later writes at tgt get newer versions; *)
(*   the target serves immediately: writes never wait; a read of a key it *)
(*   does not hold yet queues a priority pull (ReadMiss, PriorityPull);   *)
(*   BackgroundPull walks every partition of the range with a cursor;     *)
(*   FinishPulls, then a Checkpoint of the target makes the range Durable *)
(*   there, DropSource frees the source's copy and RemoveLineage ends it. *)
(* A crash loses memory (store := durable); a target crash mid-pull      *)
(* restarts the pulls from the lineage's source.                          *)
(*                                                                         *)
(* Migration declares the Cuts constants and variables itself and uses    *)
(* the Cuts actions through the instance C: every Migration action that   *)
(* changes a Cuts variable conjoins the Cuts action of the same meaning,  *)
(* so Migration refines Cuts (property CutsRefinement).  (An EXTENDS      *)
(* could not define Init, Next, Crash, ... again, and TLC names an action *)
(* after the operator of its Next disjunct, so the five Cuts actions used *)
(* unchanged need Migration operators of the same name.)                  *)
(*                                                                         *)
(* This is the contract of spec/MODEL.md, mirrored verbatim by core-fs.   *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    Nodes,          \* Set of node ids (strings "n1", ...).
    Cores,          \* Set of core ids (strings "c1", ...); every node has these cores.
    Ranges,         \* Set of range ids (strings "r1", ...).
    Sessions,       \* Set of client session ids (strings "s1", ...).
    InitOwner,      \* [Ranges -> Nodes]: the owner of each range at start.
    MaxMigrations,  \* Bound on BeginMigration steps (Cuts' MaxRevokes).
    MaxCrashes,     \* Bound on Crash steps.
    Bug,            \* "none", or "EarlyServe", "PullOverwrites", "NoFloorRaise".
    Keys,           \* Set of key ids (strings "k1", ...).
    KeyRange,       \* [Keys -> Ranges]: the range of each key.
    Partitions,     \* Set of background-pull partition ids (strings "p1", ...).
    PartKeys,       \* [Ranges \X Partitions -> Seq(Keys)]: each key of r in exactly one PartKeys[r, p].
    MaxWrites       \* Bound on client writes (SendWrite steps).

ASSUME /\ KeyRange \in [Keys -> Ranges]
       /\ PartKeys \in [Ranges \X Partitions -> Seq(Keys)]
       /\ \A r \in Ranges : \A k \in Keys :
             KeyRange[k] = r <=>
                Cardinality({<<p, i>> \in Partitions \X (1..Cardinality(Keys)) :
                                 i <= Len(PartKeys[r, p]) /\ PartKeys[r, p][i] = k}) = 1
       /\ MaxMigrations \in Nat /\ MaxWrites \in Nat

VARIABLES
    up,          \* Cuts: [Nodes -> BOOLEAN], the node is running.
    owner,       \* Cuts: [Ranges -> Nodes], owner of each range in the metadata.
    view,        \* Cuts: [Nodes -> Nat], the node's newest view number.
    hist,        \* Cuts: [Nodes -> Seq(SUBSET Ranges)], hist[n][v] = ranges n owns in view v.
    handoff,     \* Cuts: [Ranges -> SUBSET [src, tgt, v]] (<= 1), ownership change in progress.
    coreView,    \* Cuts: [Nodes -> [Cores -> Nat]], view each core executes in (0 = down).
    sessMap,     \* Cuts: [Sessions -> [Ranges -> Nodes]], the session's cached owner map.
    sessView,    \* Cuts: [Sessions -> [Nodes -> Nat]], the session's cached view of each node.
    req,         \* Cuts: [Sessions -> SUBSET [rng, node, view, rejected]] (<= 1), outstanding batch.
    revokes,     \* Cuts: Nat, number of Revoke (here BeginMigration) steps.
    crashes,     \* Cuts: Nat, number of Crash steps.
    lastExec,    \* Cuts: SUBSET [node, core, bview, cview] (<= 1), the last executed batch.
    store,       \* [Nodes -> [Keys -> Nat]]: version of each key in memory (0 = absent).
    durable,     \* [Nodes -> [Keys -> Nat]]: version of each key in the node's log/checkpoint.
    floor,       \* [Nodes -> Nat]: the node's version floor (highest version issued; durable).
    mig,         \* [Ranges -> SUBSET [src, tgt, phase, srcFloor]] (<= 1): migration in flight.
    lineage,     \* [Ranges -> SUBSET [src, tgt]] (<= 1): r is recoverable from src's plus tgt's log.
    have,        \* [Ranges -> SUBSET Keys]: keys whose latest version the target holds.
    cursor,      \* [Ranges -> [Partitions -> Nat]]: background-pull cursor per partition.
    prio,        \* [Ranges -> SUBSET Keys]: keys waiting for a batched priority pull.
    reqOp,       \* [Sessions -> SUBSET [op, key]] (<= 1): what the outstanding batch does.
    acked,       \* [Keys -> Nat]: version of the latest acknowledged write per key.
    writes,      \* Nat: number of SendWrite steps (bounded by MaxWrites).
    migrations,  \* Nat: number of BeginMigration steps (bounded by MaxMigrations).
    lastRead,    \* SUBSET [key, got, expected] (<= 1): the last read and the latest acked version then.
    lastWrite    \* SUBSET [key, prev, new] (<= 1): the last write's version and the previous acked one.

cutsVars == <<up, owner, view, hist, handoff, coreView, sessMap, sessView, req,
              revokes, crashes, lastExec>>
migVars == <<store, durable, floor, mig, lineage, have, cursor, prio, reqOp, acked,
             writes, migrations, lastRead, lastWrite>>
vars == <<cutsVars, migVars>>

C == INSTANCE Cuts WITH MaxRevokes <- MaxMigrations

Phases == {"Locking", "Prepared", "Pulling", "Pulled", "Durable", "Dropped"}

-----------------------------------------------------------------------------
(* Helpers *)

Max(a, b) == IF a >= b THEN a ELSE b

Owned(n, v) == C!Owned(n, v)
CutOK(r) == C!CutOK(r)

RangeKeys(r) == {k \in Keys : KeyRange[k] = r}

\* The replay rule of a pull: a pulled record never overwrites a newer one (unless buggy).
Pulled(cur, pulled) == IF Bug = "PullOverwrites" THEN pulled ELSE Max(cur, pulled)

\* n is the target of k's range, still pulling, and does not hold k's latest version yet.
TargetMissing(n, k) ==
    \E m \in mig[KeyRange[k]] : m.tgt = n /\ m.phase = "Pulling" /\ k \notin have[KeyRange[k]]

\* The migration of r (only meaningful when mig[r] # {}).
TheMig(r) == CHOOSE m \in mig[r] : TRUE

\* mig[r] with its phase replaced.
SetPhase(r, ph) == [mig EXCEPT ![r] = {[TheMig(r) EXCEPT !.phase = ph]}]

\* The version of k that recovery can rebuild from the logs.
Recoverable(k) ==
    LET r == KeyRange[k]
    IN  IF lineage[r] = {} THEN durable[owner[r]][k]
        ELSE LET l == CHOOSE x \in lineage[r] : TRUE
             IN  Max(durable[l.src][k], durable[l.tgt][k])

\* The outstanding batch of s, with its operation (only meaningful when both are set).
TheReq(s) == CHOOSE b \in req[s] : TRUE
TheOp(s) == CHOOSE o \in reqOp[s] : TRUE

-----------------------------------------------------------------------------
Init ==
    /\ C!Init
    /\ store = [n \in Nodes |-> [k \in Keys |-> 0]]
    /\ durable = [n \in Nodes |-> [k \in Keys |-> 0]]
    /\ floor = [n \in Nodes |-> 0]
    /\ mig = [r \in Ranges |-> {}]
    /\ lineage = [r \in Ranges |-> {}]
    /\ have = [r \in Ranges |-> {}]
    /\ cursor = [r \in Ranges |-> [p \in Partitions |-> 0]]
    /\ prio = [r \in Ranges |-> {}]
    /\ reqOp = [s \in Sessions |-> {}]
    /\ acked = [k \in Keys |-> 0]
    /\ writes = 0
    /\ migrations = 0
    /\ lastRead = {}
    /\ lastWrite = {}

\* The target asks for the range: the source leaves the views that hold r (Cuts Revoke).
BeginMigration(r, tgt) ==
    /\ mig[r] = {}
    /\ migrations < MaxMigrations
    /\ up[tgt]
    /\ C!Revoke(r, tgt)
    /\ mig' = [mig EXCEPT ![r] = {[src |-> owner[r], tgt |-> tgt, phase |-> "Locking", srcFloor |-> 0]}]
    /\ migrations' = migrations + 1
    /\ UNCHANGED <<store, durable, floor, lineage, have, cursor, prio, reqOp, acked, writes,
                   lastRead, lastWrite>>

\* Once the cut is complete, the source reports its version floor.
Prepare(r) ==
    /\ mig[r] # {}
    /\ LET m == TheMig(r)
       IN  /\ m.phase = "Locking"
           /\ up[m.src]
           /\ CutOK(r)
           /\ mig' = [mig EXCEPT ![r] = {[m EXCEPT !.phase = "Prepared", !.srcFloor = floor[m.src]]}]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<store, durable, floor, lineage, have, cursor, prio, reqOp, acked, writes,
                   migrations, lastRead, lastWrite>>

\* Ownership moves to the target at once (Cuts Grant); lineage recorded; floor raised.
TransferOwnership(r) ==
    /\ mig[r] # {}
    /\ LET m == TheMig(r)
       IN  /\ m.phase = "Prepared"
           /\ C!Grant(r)
           /\ lineage' = [lineage EXCEPT ![r] = {[src |-> m.src, tgt |-> m.tgt]}]
           /\ floor' = [floor EXCEPT ![m.tgt] =
                           IF Bug = "NoFloorRaise" THEN @ ELSE Max(@, m.srcFloor)]
           /\ mig' = SetPhase(r, "Pulling")
    /\ have' = [have EXCEPT ![r] = {}]
    /\ cursor' = [cursor EXCEPT ![r] = [p \in Partitions |-> 0]]
    /\ prio' = [prio EXCEPT ![r] = {}]
    /\ UNCHANGED <<store, durable, reqOp, acked, writes, migrations, lastRead, lastWrite>>

\* The Cuts actions used unchanged: no Migration variable moves.
CoreRefresh(n, c) == C!CoreRefresh(n, c) /\ UNCHANGED migVars
Reject(n, c, s) == C!Reject(n, c, s) /\ UNCHANGED migVars
SessionRefresh(s) == C!SessionRefresh(s) /\ UNCHANGED migVars
Recover(n) == C!Recover(n) /\ UNCHANGED migVars

\* The session sends a read of k (Cuts Send for k's range).
SendRead(s, k) ==
    /\ C!Send(s, KeyRange[k])
    /\ reqOp' = [reqOp EXCEPT ![s] = {[op |-> "read", key |-> k]}]
    /\ UNCHANGED <<store, durable, floor, mig, lineage, have, cursor, prio, acked, writes,
                   migrations, lastRead, lastWrite>>

\* The session sends a write of k (Cuts Send for k's range); writes are bounded.
SendWrite(s, k) ==
    /\ writes < MaxWrites
    /\ C!Send(s, KeyRange[k])
    /\ reqOp' = [reqOp EXCEPT ![s] = {[op |-> "write", key |-> k]}]
    /\ writes' = writes + 1
    /\ UNCHANGED <<store, durable, floor, mig, lineage, have, cursor, prio, acked,
                   migrations, lastRead, lastWrite>>

\* Core c of n executes a write (Cuts Execute): a new version above the floor, logged, acked.
\* Writes never wait for pulls; at a pulling target the key becomes known-latest.
ExecuteWrite(n, c, s) ==
    /\ C!Execute(n, c, s)
    /\ reqOp[s] # {}
    /\ TheOp(s).op = "write"
    /\ LET k == TheOp(s).key
           r == KeyRange[k]
           v == Max(store[n][k], floor[n]) + 1
       IN  /\ store' = [store EXCEPT ![n][k] = v]
           /\ durable' = [durable EXCEPT ![n][k] = v]
           /\ floor' = [floor EXCEPT ![n] = v]
           /\ acked' = [acked EXCEPT ![k] = v]
           /\ lastWrite' = {[key |-> k, prev |-> acked[k], new |-> v]}
           /\ have' = IF \E m \in mig[r] : m.tgt = n /\ m.phase = "Pulling"
                      THEN [have EXCEPT ![r] = @ \cup {k}]
                      ELSE have
    /\ reqOp' = [reqOp EXCEPT ![s] = {}]
    /\ UNCHANGED <<mig, lineage, cursor, prio, writes, migrations, lastRead>>

\* Core c of n executes a read (Cuts Execute) of a key it holds the latest version of.
ExecuteRead(n, c, s) ==
    /\ C!Execute(n, c, s)
    /\ reqOp[s] # {}
    /\ TheOp(s).op = "read"
    /\ LET k == TheOp(s).key
       IN  /\ ~TargetMissing(n, k)
           /\ lastRead' = {[key |-> k, got |-> store[n][k], expected |-> acked[k]]}
    /\ reqOp' = [reqOp EXCEPT ![s] = {}]
    /\ UNCHANGED <<store, durable, floor, mig, lineage, have, cursor, prio, acked, writes,
                   migrations, lastWrite>>

\* A read at the target of a key not pulled yet: the key joins the priority-pull batch and the
\* read waits (Execute's guards hold, but it does not fire).
ReadMiss(n, c, s) ==
    /\ C!CanExecute(n, c, s)
    /\ reqOp[s] # {}
    /\ TheOp(s).op = "read"
    /\ LET k == TheOp(s).key
           r == KeyRange[k]
       IN  /\ TargetMissing(n, k)
           /\ k \notin prio[r]
           /\ prio' = [prio EXCEPT ![r] = @ \cup {k}]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<store, durable, floor, mig, lineage, have, cursor, reqOp, acked, writes,
                   migrations, lastRead, lastWrite>>

\* One batched pull of all queued keys from the source.
PriorityPull(r) ==
    /\ mig[r] # {}
    /\ prio[r] # {}
    /\ LET m == TheMig(r)
       IN  /\ m.phase = "Pulling"
           /\ up[m.src] /\ up[m.tgt]
           /\ store' = [store EXCEPT ![m.tgt] =
                           [k \in Keys |-> IF k \in prio[r]
                                           THEN Pulled(store[m.tgt][k], store[m.src][k])
                                           ELSE store[m.tgt][k]]]
    /\ have' = [have EXCEPT ![r] = @ \cup prio[r]]
    /\ prio' = [prio EXCEPT ![r] = {}]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<durable, floor, mig, lineage, cursor, reqOp, acked, writes, migrations,
                   lastRead, lastWrite>>

\* The background pull of partition p takes the next key after its cursor.
BackgroundPull(r, p) ==
    /\ mig[r] # {}
    /\ cursor[r][p] < Len(PartKeys[r, p])
    /\ LET m == TheMig(r)
           k == PartKeys[r, p][cursor[r][p] + 1]
       IN  /\ m.phase = "Pulling"
           /\ up[m.src] /\ up[m.tgt]
           /\ store' = [store EXCEPT ![m.tgt][k] = Pulled(@, store[m.src][k])]
           /\ have' = [have EXCEPT ![r] = @ \cup {k}]
           /\ cursor' = [cursor EXCEPT ![r][p] = @ + 1]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<durable, floor, mig, lineage, prio, reqOp, acked, writes, migrations,
                   lastRead, lastWrite>>

\* Every partition's cursor is at its end and no priority pull is queued.
FinishPulls(r) ==
    /\ mig[r] # {}
    /\ TheMig(r).phase = "Pulling"
    /\ \A p \in Partitions : cursor[r][p] = Len(PartKeys[r, p])
    /\ prio[r] = {}
    /\ mig' = SetPhase(r, "Pulled")
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<store, durable, floor, lineage, have, cursor, prio, reqOp, acked, writes,
                   migrations, lastRead, lastWrite>>

\* n's checkpoint makes its memory durable; a pulled range it is the target of becomes Durable.
Checkpoint(n) ==
    /\ up[n]
    /\ durable' = [durable EXCEPT ![n] = store[n]]
    /\ mig' = [r \in Ranges |->
                 {IF m.tgt = n /\ m.phase = "Pulled" THEN [m EXCEPT !.phase = "Durable"] ELSE m :
                  m \in mig[r]}]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<store, floor, lineage, have, cursor, prio, reqOp, acked, writes, migrations,
                   lastRead, lastWrite>>

\* The target's checkpoint covers the range: the source drops its copy.
DropSource(r) ==
    /\ mig[r] # {}
    /\ LET m == TheMig(r)
       IN  /\ m.phase = "Durable"
           /\ up[m.src]
           /\ store' = [store EXCEPT ![m.src] =
                           [k \in Keys |-> IF k \in RangeKeys(r) THEN 0 ELSE store[m.src][k]]]
           /\ durable' = [durable EXCEPT ![m.src] =
                             [k \in Keys |-> IF k \in RangeKeys(r) THEN 0 ELSE durable[m.src][k]]]
    /\ mig' = SetPhase(r, "Dropped")
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<floor, lineage, have, cursor, prio, reqOp, acked, writes, migrations,
                   lastRead, lastWrite>>

\* The migration is over: the lineage entry and the target's pull state go.
RemoveLineage(r) ==
    /\ mig[r] # {}
    /\ TheMig(r).phase = "Dropped"
    /\ lineage' = [lineage EXCEPT ![r] = {}]
    /\ mig' = [mig EXCEPT ![r] = {}]
    /\ have' = [have EXCEPT ![r] = {}]
    /\ cursor' = [cursor EXCEPT ![r] = [p \in Partitions |-> 0]]
    /\ prio' = [prio EXCEPT ![r] = {}]
    /\ UNCHANGED cutsVars
    /\ UNCHANGED <<store, durable, floor, reqOp, acked, writes, migrations, lastRead, lastWrite>>

\* A node crashes (Cuts Crash): memory is lost and rebuilt from its log.  A migration it is the
\* target of loses its pull state: Pulled falls back to Pulling, the cursors restart, and only
\* keys written at the target after the transfer (or everything, once Durable) stay known-latest.
Crash(n) ==
    /\ C!Crash(n)
    /\ store' = [store EXCEPT ![n] = durable[n]]
    /\ mig' = [r \in Ranges |->
                 {IF m.tgt = n /\ m.phase = "Pulled" THEN [m EXCEPT !.phase = "Pulling"] ELSE m :
                  m \in mig[r]}]
    /\ cursor' = [r \in Ranges |->
                    IF \E m \in mig[r] : m.tgt = n THEN [p \in Partitions |-> 0] ELSE cursor[r]]
    /\ prio' = [r \in Ranges |-> IF \E m \in mig[r] : m.tgt = n THEN {} ELSE prio[r]]
    /\ have' = [r \in Ranges |->
                  IF \E m \in mig[r] : m.tgt = n
                  THEN LET m == TheMig(r)
                       IN  IF m.phase \in {"Durable", "Dropped"} THEN RangeKeys(r)
                           ELSE {k \in RangeKeys(r) : durable[n][k] > m.srcFloor}
                  ELSE have[r]]
    /\ UNCHANGED <<durable, floor, lineage, reqOp, acked, writes, migrations, lastRead, lastWrite>>

Next ==
    \/ \E r \in Ranges, tgt \in Nodes : BeginMigration(r, tgt)
    \/ \E r \in Ranges : Prepare(r)
    \/ \E r \in Ranges : TransferOwnership(r)
    \/ \E n \in Nodes, c \in Cores : CoreRefresh(n, c)
    \/ \E s \in Sessions, k \in Keys : SendRead(s, k)
    \/ \E s \in Sessions, k \in Keys : SendWrite(s, k)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : ExecuteWrite(n, c, s)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : ExecuteRead(n, c, s)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : ReadMiss(n, c, s)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : Reject(n, c, s)
    \/ \E s \in Sessions : SessionRefresh(s)
    \/ \E r \in Ranges : PriorityPull(r)
    \/ \E r \in Ranges, p \in Partitions : BackgroundPull(r, p)
    \/ \E r \in Ranges : FinishPulls(r)
    \/ \E n \in Nodes : Checkpoint(n)
    \/ \E r \in Ranges : DropSource(r)
    \/ \E r \in Ranges : RemoveLineage(r)
    \/ \E n \in Nodes : Crash(n)
    \/ \E n \in Nodes : Recover(n)

\* Weak fairness on every action except the environment's BeginMigration, SendRead, SendWrite, Crash.
Fairness ==
    /\ \A r \in Ranges :
          /\ WF_vars(Prepare(r)) /\ WF_vars(TransferOwnership(r)) /\ WF_vars(PriorityPull(r))
          /\ WF_vars(FinishPulls(r)) /\ WF_vars(DropSource(r)) /\ WF_vars(RemoveLineage(r))
          /\ \A p \in Partitions : WF_vars(BackgroundPull(r, p))
    /\ \A n \in Nodes :
          /\ WF_vars(Checkpoint(n)) /\ WF_vars(Recover(n))
          /\ \A c \in Cores :
                /\ WF_vars(CoreRefresh(n, c))
                /\ \A s \in Sessions :
                      /\ WF_vars(ExecuteWrite(n, c, s)) /\ WF_vars(ExecuteRead(n, c, s))
                      /\ WF_vars(ReadMiss(n, c, s)) /\ WF_vars(Reject(n, c, s))
    /\ \A s \in Sessions : WF_vars(SessionRefresh(s))

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(* Invariants *)

AtMostOne(S) == Cardinality(S) <= 1

TypeOK ==
    /\ C!TypeOK
    /\ store \in [Nodes -> [Keys -> Nat]]
    /\ durable \in [Nodes -> [Keys -> Nat]]
    /\ floor \in [Nodes -> Nat]
    /\ mig \in [Ranges -> SUBSET [src : Nodes, tgt : Nodes, phase : Phases, srcFloor : Nat]]
    /\ lineage \in [Ranges -> SUBSET [src : Nodes, tgt : Nodes]]
    /\ have \in [Ranges -> SUBSET Keys]
    /\ cursor \in [Ranges -> [Partitions -> Nat]]
    /\ prio \in [Ranges -> SUBSET Keys]
    /\ reqOp \in [Sessions -> SUBSET [op : {"read", "write"}, key : Keys]]
    /\ acked \in [Keys -> Nat]
    /\ writes \in 0..MaxWrites
    /\ migrations \in 0..MaxMigrations
    /\ lastRead \in SUBSET [key : Keys, got : Nat, expected : Nat]
    /\ lastWrite \in SUBSET [key : Keys, prev : Nat, new : Nat]
    /\ \A r \in Ranges : AtMostOne(mig[r]) /\ AtMostOne(lineage[r])
    /\ \A s \in Sessions : AtMostOne(reqOp[s])
    /\ AtMostOne(lastRead) /\ AtMostOne(lastWrite)

SingleExecutingOwner == C!SingleExecutingOwner
ExecInOwnView == C!ExecInOwnView
SessionViewsBounded == C!SessionViewsBounded

\* Every acknowledged write survives in the logs recovery reads.
NoLostAckedWrite == \A k \in Keys : acked[k] <= Recoverable(k)

\* Per-key linearizability: a read returns the latest acknowledged version.
ReadLatest == \A e \in lastRead : e.got = e.expected

\* A write's version is newer than the previous acknowledged one.
VersionMonotonic == \A e \in lastWrite : e.new > e.prev

\* The floor is at least every version a node holds in memory.
FloorCoversStore == \A n \in Nodes, k \in Keys : store[n][k] <= floor[n]

\* The target really holds the latest version of every key it believes it has.
HaveIsLatest == \A r \in Ranges : \A m \in mig[r] : \A k \in have[r] : store[m.tgt][k] >= acked[k]

-----------------------------------------------------------------------------
(* Properties *)

MigrationCompletes == \A r \in Ranges : mig[r] # {} ~> mig[r] = {}
RequestsComplete == \A s \in Sessions : req[s] # {} ~> req[s] = {}

\* Migration refines Cuts: its behaviours, projected on the Cuts variables, are Cuts behaviours.
CutsRefinement == C!Spec

=============================================================================
