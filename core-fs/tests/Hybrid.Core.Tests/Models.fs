/// The configurations the tests run the model with (the F# counterparts of the MC files).
module Hybrid.Core.Tests.Models

open Hybrid.Core

/// Two nodes with two cores each, two ranges (n1 owns r1, n2 owns r2), one session.
let cuts (bug: string) : Cuts.Config =
    { Nodes = set [ "n1"; "n2" ]
      Cores = set [ "c1"; "c2" ]
      Ranges = set [ "r1"; "r2" ]
      Sessions = set [ "s1" ]
      InitOwner = Map [ "r1", "n1"; "r2", "n2" ]
      MaxRevokes = 2
      MaxCrashes = 1
      Bug = bug }

/// Migration over `cuts`: keys k1, k2 in r1 (one per partition) and k3 in r2.
let migration (bug: string) (maxWrites: int) (maxMigrations: int) : Migration.Config =
    Migration.config
        (cuts bug)
        (Map [ "k1", "r1"; "k2", "r1"; "k3", "r2" ])
        (Map [ ("r1", "p1"), [ "k1" ]; ("r1", "p2"), [ "k2" ]; ("r2", "p1"), [ "k3" ]; ("r2", "p2"), [] ])
        maxWrites
        maxMigrations

/// The small Migration configuration: two writes, one migration, one crash.
let small (bug: string) : Migration.Config = migration bug 2 1
