// Model checking with TLC (owned by the spec work). Finds TLC through TLA2TOOLS_JAR or .tools/.
module Spec

open System.IO
open Common

/// Path of tla2tools.jar, if present.
let tlcJar () : string option =
    match System.Environment.GetEnvironmentVariable "TLA2TOOLS_JAR" with
    | null | "" ->
        let p = Path.Combine(root, ".tools", "tla2tools.jar")
        if File.Exists p then Some p else None
    | p when File.Exists p -> Some p
    | _ -> None

/// Runs every model in spec/manifest.json and compares with its expected outcome.
/// Returns (passed, failed, skipped).
let modelcheck (_args: string list) : int * int * int =
    match tlcJar () with
    | None ->
        printfn "skipped: TLC not found (set TLA2TOOLS_JAR or put tla2tools.jar in .tools/)"
        0, 0, 1
    | Some _ ->
        printfn "skipped: no models in spec/manifest.json yet"
        0, 0, 1
