/// JSON text to the core's `JsonValue.Value` with System.Text.Json (the core does no parsing: it
/// takes values), and the repository paths the tests read.
module Hybrid.Core.Tests.Json

open System.IO
open System.Text.Json
open Hybrid.Core.JsonValue

/// Converts a parsed JSON element; fails on non-integer numbers (the models have none).
let rec ofElement (e: JsonElement) : Value =
    match e.ValueKind with
    | JsonValueKind.String -> Value.Str(match e.GetString() with null -> "" | s -> s)
    | JsonValueKind.Number -> Value.Int(e.GetInt64())
    | JsonValueKind.True -> Value.Bool true
    | JsonValueKind.False -> Value.Bool false
    | JsonValueKind.Array -> Value.Arr [ for x in e.EnumerateArray() -> ofElement x ]
    | JsonValueKind.Object -> Value.Obj(Map [ for p in e.EnumerateObject() -> p.Name, ofElement p.Value ])
    | k -> failwithf "unsupported JSON value kind %A" k

/// Parses one JSON text.
let parse (text: string) : Value =
    use doc = JsonDocument.Parse text
    ofElement doc.RootElement

/// The repository root (the directory holding Hybrid.sln), found from the test's directory.
let repoRoot: string =
    let rec up (d: DirectoryInfo | null) =
        match d with
        | null -> failwith "Hybrid.sln not found above the test directory"
        | d when File.Exists(Path.Combine(d.FullName, "Hybrid.sln")) -> d.FullName
        | d -> up d.Parent
    up (DirectoryInfo(System.AppContext.BaseDirectory))

/// A path under the repository root.
let repoPath (parts: string list) : string = Path.Combine(Array.ofList (repoRoot :: parts))
