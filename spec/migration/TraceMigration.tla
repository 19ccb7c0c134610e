--------------------------- MODULE TraceMigration ---------------------------
(***************************************************************************)
(* Trace validation: is an ndjson trace of protocol events a behaviour of *)
(* Migration (from its initial state, under the constants of the .cfg)?   *)
(*                                                                         *)
(* One line per step: {"event": <Migration action>, <its parameters by    *)
(* their MODEL.md names>, "post": {<variable>: <post-value>, ...}}.  The   *)
(* post-values may be partial: an object gives only the keys the emitter  *)
(* owns (e.g. {"coreView": {"n1": {"c1": 3}}}), down to the level where   *)
(* the variable holds a number, boolean, string, set or sequence, which   *)
(* must then match whole.  Sets are JSON arrays in any order.  Unlogged   *)
(* variables are left to TLC's search.                                     *)
(*                                                                         *)
(* spec/tools/check-trace.sh writes the .cfg (the trace path is the       *)
(* constant TraceFile: IOEnv is not available without CommunityModules)   *)
(* and runs TLC: exit 0 = accepted, 10 = POSTCONDITION TraceAccepted      *)
(* false, i.e. no behaviour of the spec explains the whole trace; TLC     *)
(* then prints the longest prefix it could match.                          *)
(***************************************************************************)
EXTENDS MCMigration, Json, TLC

CONSTANT
    TraceFile  \* Path of the ndjson trace (relative to spec/migration or absolute).

VARIABLE
    l  \* Index of the next trace line to match (1-based).

Trace == ndJsonDeserialize(TraceFile)
Line == Trace[l]

\* For each variable: how many levels of objects (functions over strings) lead to the value that
\* must match whole, and what that value is ("leaf", "set", or "seqOfSets" for hist[n]).
Shape == [up |-> <<1, "leaf">>, owner |-> <<1, "leaf">>, view |-> <<1, "leaf">>,
          hist |-> <<1, "seqOfSets">>, handoff |-> <<1, "set">>, coreView |-> <<2, "leaf">>,
          sessMap |-> <<2, "leaf">>, sessView |-> <<2, "leaf">>, req |-> <<1, "set">>,
          revokes |-> <<0, "leaf">>, crashes |-> <<0, "leaf">>, lastExec |-> <<0, "set">>,
          store |-> <<2, "leaf">>, durable |-> <<2, "leaf">>, floor |-> <<1, "leaf">>,
          mig |-> <<1, "set">>, lineage |-> <<1, "set">>, have |-> <<1, "set">>,
          cursor |-> <<2, "leaf">>, prio |-> <<1, "set">>, reqOp |-> <<1, "set">>,
          acked |-> <<1, "leaf">>, writes |-> <<0, "leaf">>, migrations |-> <<0, "leaf">>,
          lastRead |-> <<0, "set">>, lastWrite |-> <<0, "set">>]

\* The value of the variable named v.
VarOf(v) == CASE v = "up" -> up [] v = "owner" -> owner [] v = "view" -> view
              [] v = "hist" -> hist [] v = "handoff" -> handoff [] v = "coreView" -> coreView
              [] v = "sessMap" -> sessMap [] v = "sessView" -> sessView [] v = "req" -> req
              [] v = "revokes" -> revokes [] v = "crashes" -> crashes [] v = "lastExec" -> lastExec
              [] v = "store" -> store [] v = "durable" -> durable [] v = "floor" -> floor
              [] v = "mig" -> mig [] v = "lineage" -> lineage [] v = "have" -> have
              [] v = "cursor" -> cursor [] v = "prio" -> prio [] v = "reqOp" -> reqOp
              [] v = "acked" -> acked [] v = "writes" -> writes [] v = "migrations" -> migrations
              [] v = "lastRead" -> lastRead [] v = "lastWrite" -> lastWrite

SetOf(s) == {s[i] : i \in DOMAIN s}

\* The spec value x agrees with the logged JSON value j (d object levels above the whole value).
RECURSIVE Agree(_, _, _, _)
Agree(x, j, d, kind) ==
    IF d > 0 THEN \A k \in DOMAIN j : k \in DOMAIN x /\ Agree(x[k], j[k], d - 1, kind)
    ELSE CASE kind = "leaf" -> x = j
           [] kind = "set" -> x = SetOf(j)
           [] kind = "seqOfSets" -> Len(x) = Len(j) /\ \A i \in DOMAIN j : x[i] = SetOf(j[i])

\* Every logged post-value agrees with the successor state.
PostOK ==
    "post" \in DOMAIN Line =>
        \A v \in DOMAIN Line.post :
            v \in DOMAIN Shape /\ Agree(VarOf(v)', Line.post[v], Shape[v][1], Shape[v][2])

\* The line is the event e, and the step consumes it.
IsEvent(e) == l <= Len(Trace) /\ Line.event = e /\ l' = l + 1

TraceInit == Init /\ l = 1

TraceNext ==
    /\ \/ IsEvent("BeginMigration") /\ BeginMigration(Line.r, Line.tgt)
       \/ IsEvent("Prepare") /\ Prepare(Line.r)
       \/ IsEvent("TransferOwnership") /\ TransferOwnership(Line.r)
       \/ IsEvent("CoreRefresh") /\ CoreRefresh(Line.n, Line.c)
       \/ IsEvent("SendRead") /\ SendRead(Line.s, Line.k)
       \/ IsEvent("SendWrite") /\ SendWrite(Line.s, Line.k)
       \/ IsEvent("ExecuteWrite") /\ ExecuteWrite(Line.n, Line.c, Line.s)
       \/ IsEvent("ExecuteRead") /\ ExecuteRead(Line.n, Line.c, Line.s)
       \/ IsEvent("ReadMiss") /\ ReadMiss(Line.n, Line.c, Line.s)
       \/ IsEvent("Reject") /\ Reject(Line.n, Line.c, Line.s)
       \/ IsEvent("SessionRefresh") /\ SessionRefresh(Line.s)
       \/ IsEvent("PriorityPull") /\ PriorityPull(Line.r)
       \/ IsEvent("BackgroundPull") /\ BackgroundPull(Line.r, Line.p)
       \/ IsEvent("FinishPulls") /\ FinishPulls(Line.r)
       \/ IsEvent("Checkpoint") /\ Checkpoint(Line.n)
       \/ IsEvent("DropSource") /\ DropSource(Line.r)
       \/ IsEvent("RemoveLineage") /\ RemoveLineage(Line.r)
       \/ IsEvent("Crash") /\ Crash(Line.n)
       \/ IsEvent("Recover") /\ Recover(Line.n)
    /\ PostOK

TraceSpec == TraceInit /\ [][TraceNext]_<<vars, l>>

\* BFS must not merge equal spec states reached at different trace positions.
TraceView == <<vars, l>>

\* Some explored path consumed every line (TLC's diameter counts the initial state).
TraceAccepted == TLCGet("stats").diameter = Len(Trace) + 1

=============================================================================
