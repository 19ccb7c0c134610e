---------------------------- MODULE MCCutsUnfair ----------------------------
(***************************************************************************)
(* A liveness check with teeth: Cuts without weak fairness on Grant.  A   *)
(* behaviour may then revoke a range and never grant it, so TLC must      *)
(* report CutsComplete violated (a liveness failure, exit code 13).  This *)
(* shows the liveness models really depend on the fairness of Spec.       *)
(***************************************************************************)
EXTENDS MCCuts

\* Cuts' fairness except WF on Grant.
SpecWithoutGrantFairness ==
    /\ Init /\ [][Next]_vars
    /\ \A n \in Nodes, c \in Cores : WF_vars(CoreRefresh(n, c))
    /\ \A n \in Nodes, c \in Cores, s \in Sessions :
          WF_vars(Execute(n, c, s)) /\ WF_vars(Reject(n, c, s))
    /\ \A s \in Sessions : WF_vars(SessionRefresh(s))
    /\ \A n \in Nodes : WF_vars(Recover(n))

=============================================================================
