// Benchmarks (owned by the bench work): BenchmarkDotNet micro-benchmarks and the load tool.
module Bench

open Common

let bench (args: string list) =
    let filter = match args with [] -> "*" | f :: _ -> f
    exec "dotnet" (sprintf "run -c Release --project node-cs/bench/Hybrid.Bench -- --filter \"%s\"" filter)

let benchCompare (_args: string list) =
    failwith "bench-compare: not implemented yet"
