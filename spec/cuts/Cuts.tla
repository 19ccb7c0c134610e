-------------------------------- MODULE Cuts --------------------------------
(***************************************************************************)
(* Asynchronous global cuts (Shadowfax) for range ownership.               *)
(*                                                                         *)
(* Every node has a view number that changes whenever the set of ranges    *)
(* it owns changes; `hist[n][v]` is what node n owns in view v.  Each core *)
(* of a node executes in one view (`coreView`) and moves to the node's     *)
(* newest view at its next epoch refresh, independently of the other      *)
(* cores: there is no barrier.  A client session caches an owner map and  *)
(* the view of each node, stamps its batch with that view, and a core     *)
(* compares the stamp once per batch: equal and owned => execute; older,  *)
(* or equal but not owned => reject, and the session refreshes its map.   *)
(*                                                                         *)
(* Moving a range r from src to tgt is two metadata steps: `Revoke` gives *)
(* src a new view without r (src remains the owner in metadata), and     *)
(* `Grant` gives tgt a new view with r.  `Grant` waits for the cut: every *)
(* core of src has left the views that hold r (or is down).  That is what *)
(* keeps one executing owner per range (`SingleExecutingOwner`); the bug  *)
(* variant "EarlyServe" drops the wait.                                   *)
(*                                                                         *)
(* This is the contract of spec/MODEL.md: names, shapes and guards here   *)
(* are mirrored verbatim by the F# core (core-fs) and by node traces.     *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    Nodes,       \* Set of node ids (strings "n1", ...).
    Cores,       \* Set of core ids (strings "c1", ...); every node has these cores.
    Ranges,      \* Set of range ids (strings "r1", ...).
    Sessions,    \* Set of client session ids (strings "s1", ...).
    InitOwner,   \* [Ranges -> Nodes]: the owner of each range at start.
    MaxRevokes,  \* Bound on the number of Revoke steps in a behaviour.
    MaxCrashes,  \* Bound on the number of Crash steps in a behaviour.
    Bug          \* "none" for the real protocol, "EarlyServe" for the buggy variant.

ASSUME /\ InitOwner \in [Ranges -> Nodes]
       /\ MaxRevokes \in Nat /\ MaxCrashes \in Nat
       /\ Bug \in {"none", "EarlyServe", "PullOverwrites", "NoFloorRaise"}

VARIABLES
    up,        \* [Nodes -> BOOLEAN]: the node is running.
    owner,     \* [Ranges -> Nodes]: owner of each range in the (durable) metadata.
    view,      \* [Nodes -> Nat]: the node's newest view number (metadata).
    hist,      \* [Nodes -> Seq(SUBSET Ranges)]: hist[n][v] = ranges n owns in view v; Len = view[n].
    handoff,   \* [Ranges -> SUBSET [src, tgt, v]] (<= 1): a change in progress; src's view v lacks the range.
    coreView,  \* [Nodes -> [Cores -> Nat]]: the view each core executes in; 0 = down (node crashed).
    sessMap,   \* [Sessions -> [Ranges -> Nodes]]: the session's cached owner map.
    sessView,  \* [Sessions -> [Nodes -> Nat]]: the session's cached view of each node.
    req,       \* [Sessions -> SUBSET [rng, node, view, rejected]] (<= 1): the outstanding batch.
    revokes,   \* Nat: number of Revoke steps so far (bounded by MaxRevokes).
    crashes,   \* Nat: number of Crash steps so far (bounded by MaxCrashes).
    lastExec   \* SUBSET [node, core, bview, cview] (<= 1): the last executed batch (history).

cutsVars == <<up, owner, view, hist, handoff, coreView, sessMap, sessView, req,
              revokes, crashes, lastExec>>
vars == cutsVars

-----------------------------------------------------------------------------
(* Helpers *)

\* What node n owns in view v (v >= 1).
Owned(n, v) == hist[n][v]

\* The handoff of range r; only meaningful when handoff[r] # {}.
TheHandoff(r) == CHOOSE h \in handoff[r] : TRUE

\* Every core of the handoff's source has left the views that hold r, or is down.
CutComplete(r) ==
    LET h == TheHandoff(r)
    IN  \A c \in Cores : coreView[h.src][c] = 0 \/ coreView[h.src][c] >= h.v

\* The target may serve r: the cut is complete (the buggy variant does not wait).
CutOK(r) == Bug = "EarlyServe" \/ CutComplete(r)

\* Execute's guards: the batch is for n, not rejected, stamped with core c's view, and c owns its range.
CanExecute(n, c, s) ==
    /\ up[n]
    /\ \E b \in req[s] :
          /\ b.node = n
          /\ ~b.rejected
          /\ b.view = coreView[n][c]
          /\ b.rng \in Owned(n, coreView[n][c])

-----------------------------------------------------------------------------
Init ==
    /\ up = [n \in Nodes |-> TRUE]
    /\ owner = InitOwner
    /\ view = [n \in Nodes |-> 1]
    /\ hist = [n \in Nodes |-> << {r \in Ranges : InitOwner[r] = n} >>]
    /\ handoff = [r \in Ranges |-> {}]
    /\ coreView = [n \in Nodes |-> [c \in Cores |-> 1]]
    /\ sessMap = [s \in Sessions |-> InitOwner]
    /\ sessView = [s \in Sessions |-> [n \in Nodes |-> 1]]
    /\ req = [s \in Sessions |-> {}]
    /\ revokes = 0
    /\ crashes = 0
    /\ lastExec = {}

\* The source gets a new view without r; ownership in metadata stays with the source for now.
Revoke(r, tgt) ==
    LET src == owner[r]
    IN  /\ handoff[r] = {}
        /\ revokes < MaxRevokes
        /\ tgt # src
        /\ up[src]
        /\ view' = [view EXCEPT ![src] = @ + 1]
        /\ hist' = [hist EXCEPT ![src] = Append(@, Owned(src, view[src]) \ {r})]
        /\ handoff' = [handoff EXCEPT ![r] = {[src |-> src, tgt |-> tgt, v |-> view[src] + 1]}]
        /\ revokes' = revokes + 1
        /\ UNCHANGED <<up, owner, coreView, sessMap, sessView, req, crashes, lastExec>>

\* Once the cut is complete, the target becomes the owner in a new view that holds r.
Grant(r) ==
    /\ handoff[r] # {}
    /\ CutOK(r)
    /\ LET tgt == TheHandoff(r).tgt
       IN  /\ up[tgt]
           /\ owner' = [owner EXCEPT ![r] = tgt]
           /\ view' = [view EXCEPT ![tgt] = @ + 1]
           /\ hist' = [hist EXCEPT ![tgt] = Append(@, Owned(tgt, view[tgt]) \cup {r})]
           /\ handoff' = [handoff EXCEPT ![r] = {}]
    /\ UNCHANGED <<up, coreView, sessMap, sessView, req, revokes, crashes, lastExec>>

\* A core adopts its node's newest view at its next epoch refresh.
CoreRefresh(n, c) ==
    /\ up[n]
    /\ coreView[n][c] < view[n]
    /\ coreView' = [coreView EXCEPT ![n][c] = view[n]]
    /\ UNCHANGED <<up, owner, view, hist, handoff, sessMap, sessView, req, revokes, crashes, lastExec>>

\* The session sends one batch for range r to the owner and view it has cached.
Send(s, r) ==
    /\ req[s] = {}
    /\ req' = [req EXCEPT ![s] = {[rng |-> r, node |-> sessMap[s][r],
                                   view |-> sessView[s][sessMap[s][r]], rejected |-> FALSE]}]
    /\ UNCHANGED <<up, owner, view, hist, handoff, coreView, sessMap, sessView, revokes, crashes, lastExec>>

\* Core c of n executes the batch: its view stamp matches and c owns the range in that view.
Execute(n, c, s) ==
    /\ CanExecute(n, c, s)
    /\ req' = [req EXCEPT ![s] = {}]
    /\ lastExec' = {[node |-> n, core |-> c, bview |-> b.view, cview |-> coreView[n][c]] :
                     b \in req[s]}
    /\ UNCHANGED <<up, owner, view, hist, handoff, coreView, sessMap, sessView, revokes, crashes>>

\* Core c of n rejects the batch: stamped with an older view (ViewChanged), or the current one
\* without the range (NotOwner).  The reply carries the core's view.  A batch stamped with a
\* newer view than the core's waits for CoreRefresh.
Reject(n, c, s) ==
    /\ up[n]
    /\ \E b \in req[s] :
          /\ b.node = n
          /\ ~b.rejected
          /\ \/ b.view < coreView[n][c]
             \/ b.view = coreView[n][c] /\ b.rng \notin Owned(n, b.view)
          /\ req' = [req EXCEPT ![s] = {[b EXCEPT !.rejected = TRUE]}]
    /\ sessView' = [sessView EXCEPT ![s][n] = coreView[n][c]]
    /\ UNCHANGED <<up, owner, view, hist, handoff, coreView, sessMap, revokes, crashes, lastExec>>

\* After a rejection, or when the addressed node is down, the session reloads the metadata and
\* re-addresses its batch to the current owner in that owner's newest view.
SessionRefresh(s) ==
    /\ \E b \in req[s] :
          /\ b.rejected \/ ~up[b.node]
          /\ req' = [req EXCEPT ![s] = {[rng |-> b.rng, node |-> owner[b.rng],
                                         view |-> view[owner[b.rng]], rejected |-> FALSE]}]
    /\ sessMap' = [sessMap EXCEPT ![s] = owner]
    /\ sessView' = [sessView EXCEPT ![s] = view]
    /\ UNCHANGED <<up, owner, view, hist, handoff, coreView, revokes, crashes, lastExec>>

\* A node stops; all its cores are down.  Metadata survives.
Crash(n) ==
    /\ up[n]
    /\ crashes < MaxCrashes
    /\ up' = [up EXCEPT ![n] = FALSE]
    /\ coreView' = [coreView EXCEPT ![n] = [c \in Cores |-> 0]]
    /\ crashes' = crashes + 1
    /\ UNCHANGED <<owner, view, hist, handoff, sessMap, sessView, req, revokes, lastExec>>

\* A node restarts; its cores start in its newest view.
Recover(n) ==
    /\ ~up[n]
    /\ up' = [up EXCEPT ![n] = TRUE]
    /\ coreView' = [coreView EXCEPT ![n] = [c \in Cores |-> view[n]]]
    /\ UNCHANGED <<owner, view, hist, handoff, sessMap, sessView, req, revokes, crashes, lastExec>>

Next ==
    \/ \E r \in Ranges, tgt \in Nodes : Revoke(r, tgt)
    \/ \E r \in Ranges : Grant(r)
    \/ \E n \in Nodes, c \in Cores : CoreRefresh(n, c)
    \/ \E s \in Sessions, r \in Ranges : Send(s, r)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : Execute(n, c, s)
    \/ \E n \in Nodes, c \in Cores, s \in Sessions : Reject(n, c, s)
    \/ \E s \in Sessions : SessionRefresh(s)
    \/ \E n \in Nodes : Crash(n)
    \/ \E n \in Nodes : Recover(n)

\* Weak fairness on every action except the environment's Revoke, Send and Crash.
Fairness ==
    /\ \A r \in Ranges : WF_vars(Grant(r))
    /\ \A n \in Nodes, c \in Cores : WF_vars(CoreRefresh(n, c))
    /\ \A n \in Nodes, c \in Cores, s \in Sessions :
          WF_vars(Execute(n, c, s)) /\ WF_vars(Reject(n, c, s))
    /\ \A s \in Sessions : WF_vars(SessionRefresh(s))
    /\ \A n \in Nodes : WF_vars(Recover(n))

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(* Invariants *)

AtMostOne(S) == Cardinality(S) <= 1

TypeOK ==
    /\ up \in [Nodes -> BOOLEAN]
    /\ owner \in [Ranges -> Nodes]
    /\ view \in [Nodes -> Nat \ {0}]
    /\ hist \in [Nodes -> Seq(SUBSET Ranges)]
    /\ \A n \in Nodes : Len(hist[n]) = view[n]
    /\ handoff \in [Ranges -> SUBSET [src : Nodes, tgt : Nodes, v : Nat]]
    /\ \A r \in Ranges : AtMostOne(handoff[r])
    /\ coreView \in [Nodes -> [Cores -> Nat]]
    /\ sessMap \in [Sessions -> [Ranges -> Nodes]]
    /\ sessView \in [Sessions -> [Nodes -> Nat]]
    /\ req \in [Sessions -> SUBSET [rng : Ranges, node : Nodes, view : Nat, rejected : BOOLEAN]]
    /\ \A s \in Sessions : AtMostOne(req[s])
    /\ revokes \in 0..MaxRevokes
    /\ crashes \in 0..MaxCrashes
    /\ lastExec \in SUBSET [node : Nodes, core : Cores, bview : Nat, cview : Nat]
    /\ AtMostOne(lastExec)

\* At most one node has an executing core whose view holds r.
SingleExecutingOwner ==
    \A r \in Ranges :
        Cardinality({n \in Nodes : \E c \in Cores : coreView[n][c] # 0
                                                  /\ r \in Owned(n, coreView[n][c])}) <= 1

\* A batch is executed only in the view it was stamped with.
ExecInOwnView == \A e \in lastExec : e.bview = e.cview

\* A session never believes in a view its node has not reached.
SessionViewsBounded == \A s \in Sessions, n \in Nodes : sessView[s][n] <= view[n]

-----------------------------------------------------------------------------
(* Properties *)

\* Every ownership change in progress completes.
CutsComplete == \A r \in Ranges : handoff[r] # {} ~> handoff[r] = {}

\* A rejected batch is eventually executed (after refresh and resend).
RejectedEventuallyExecuted ==
    \A s \in Sessions : (\E b \in req[s] : b.rejected) ~> req[s] = {}

=============================================================================
