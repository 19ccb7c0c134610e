------------------------------- MODULE SIMCuts -------------------------------
(***************************************************************************)
(* Test-vector generation for Cuts: run by spec/tools/gen-vectors.sh with  *)
(* TLC in simulation mode (-workers 1).  TLC's simulator evaluates the     *)
(* invariants on candidate successors too, and TLCExt!Trace is then the    *)
(* behaviour up to the current state (stuttering steps are not in it), so  *)
(* WriteBehaviour writes every prefix it sees under its length, and        *)
(* gen-vectors.sh keeps the longest prefix of each behaviour.  The ASSUME  *)
(* writes the model's constants once.                                      *)
(***************************************************************************)
EXTENDS MCCuts, TLC, TLCExt, Json

CONSTANT
    VectorDir  \* Folder (relative to spec/cuts) the raw behaviours are written to.

ASSUME JsonSerialize(VectorDir \o "/constants.json",
                     << [Nodes |-> Nodes, Cores |-> Cores, Ranges |-> Ranges,
                         Sessions |-> Sessions, InitOwner |-> InitOwner,
                         MaxRevokes |-> MaxRevokes, MaxCrashes |-> MaxCrashes, Bug |-> Bug] >>)

\* The prefix of length l of behaviour number i is written to VectorDir/raw-i-l.ndjson.
WriteBehaviour ==
    ndJsonSerialize(VectorDir \o "/raw-" \o ToString(TLCGet("stats").traces) \o "-"
                    \o ToString(Len(Trace)) \o ".ndjson", Trace)

=============================================================================
