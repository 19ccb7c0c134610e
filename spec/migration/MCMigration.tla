---------------------------- MODULE MCMigration ----------------------------
(***************************************************************************)
(* Model-checking wrapper for Migration: the constant functions the .cfg  *)
(* files cannot write.  A .cfg picks one layout by substitution, e.g.     *)
(* KeyRange <- KeyRange1 and PartKeys <- PartKeys1.                       *)
(***************************************************************************)
EXTENDS Migration

\* r1 and r3 start on n1, every other range on n2.
MCInitOwner == [r \in Ranges |-> IF r \in {"r1", "r3"} THEN "n1" ELSE "n2"]

\* Layout 1: one range r1 holding k1 and k2; partition p1 = <<k1>>, p2 = <<k2>>.
KeyRange1 == [k \in Keys |-> "r1"]
PartKeys1 == [x \in Ranges \X Partitions |-> IF x[2] = "p1" THEN <<"k1">> ELSE <<"k2">>]

\* Layout 2: r1 holds k1 and k2 (p1 = <<k1>>, p2 = <<k2>>); r2 holds k3 (p1 = <<k3>>, p2 empty).
KeyRange2 == [k \in Keys |-> IF k = "k3" THEN "r2" ELSE "r1"]
PartKeys2 == [x \in Ranges \X Partitions |->
                 CASE x = <<"r1", "p1">> -> <<"k1">>
                   [] x = <<"r1", "p2">> -> <<"k2">>
                   [] x = <<"r2", "p1">> -> <<"k3">>
                   [] OTHER -> << >>]

=============================================================================
