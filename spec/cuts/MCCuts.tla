------------------------------- MODULE MCCuts -------------------------------
(***************************************************************************)
(* Model-checking wrapper for Cuts: the constant functions the .cfg files *)
(* cannot write, and the state constraint of the models.  Every MCCuts*.cfg *)
(* sets Nodes, Cores, Ranges, Sessions, the bounds and Bug.               *)
(***************************************************************************)
EXTENDS Cuts

\* r1 and r3 start on n1, every other range on n2.
MCInitOwner == [r \in Ranges |-> IF r \in {"r1", "r3"} THEN "n1" ELSE "n2"]

=============================================================================
