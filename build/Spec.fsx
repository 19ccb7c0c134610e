// Model checking with TLC (owned by the spec work). Finds TLC through TLA2TOOLS_JAR or .tools/.
// `dotnet fsi build.fsx modelcheck [FILTER] [--large]`: SANY on every module, then TLC on every
// model of spec/manifest.json (large ones only with --large; with FILTER only the models whose name
// contains it), each compared with its expected outcome and, for exhaustive runs, its state count.
module Spec

open System
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Common

/// Path of tla2tools.jar, if present.
let tlcJar () : string option =
    match Environment.GetEnvironmentVariable "TLA2TOOLS_JAR" with
    | null | "" ->
        let p = Path.Combine(root, ".tools", "tla2tools.jar")
        if File.Exists p then Some p else None
    | p when File.Exists p -> Some p
    | _ -> None

/// One model of spec/manifest.json.
type Model =
    { Name: string
      Dir: string
      Module: string
      Cfg: string
      Mode: string
      Size: string
      Libraries: string list
      Result: string
      Violated: string option
      DistinctStates: int64 option
      SimulateArgs: string }

/// What one TLC run ended with.
type Outcome =
    { Result: string
      Violated: string option
      DistinctStates: int64 option
      CounterexampleStates: int
      Seconds: float }

let private str (e: JsonElement) (name: string) =
    match e.TryGetProperty name with
    | true, v when v.ValueKind = JsonValueKind.String -> Some(v.GetString())
    | _ -> None

let private readModels () : Model list =
    let path = Path.Combine(root, "spec", "manifest.json")
    use doc = JsonDocument.Parse(File.ReadAllText path)
    [ for m in doc.RootElement.GetProperty("models").EnumerateArray() ->
        let get n = str m n |> Option.defaultWith (fun () -> failwithf "manifest model lacks '%s'" n)
        let expected = m.GetProperty "expected"
        { Name = get "name"
          Dir = get "dir"
          Module = get "module"
          Cfg = get "cfg"
          Mode = get "mode"
          Size = get "size"
          Libraries =
            match m.TryGetProperty "libraries" with
            | true, v -> [ for l in v.EnumerateArray() -> l.GetString() ]
            | _ -> []
          Result = str expected "result" |> Option.get
          Violated = str expected "violated"
          DistinctStates =
            match expected.TryGetProperty "distinctStates" with
            | true, v when v.ValueKind = JsonValueKind.Number -> Some(v.GetInt64())
            | _ -> None
          SimulateArgs = str m "simulate" |> Option.defaultValue "" } ]

let private javaArgs (jar: string) (libraries: string list) =
    let lib =
        match libraries with
        | [] -> ""
        | ls ->
            let paths = ls |> List.map (fun l -> Path.Combine(root, l))
            sprintf "-DTLA-Library=%s " (String.Join(":", paths))
    sprintf "-XX:+UseParallelGC %s-cp \"%s\"" lib jar

/// Runs SANY with -error-codes on one module (from its own folder, so sibling modules resolve).
let private sany (jar: string) (dir: string) (libraries: string list) (file: string) : bool =
    let rc, lines =
        captureIn (Path.Combine(root, dir)) false "java"
            (sprintf "%s tla2sany.SANY -error-codes %s" (javaArgs jar libraries) file)
    if rc <> 0 then
        lines |> List.iter (printfn "  %s")
        printfn "FAILED  SANY %s/%s (rc %d)" dir file rc
    else
        printfn "ok      SANY %s/%s" dir file
    rc = 0

/// Runs TLC on one model and classifies the outcome from its exit code and output.
let runTlc (jar: string) (m: Model) : Outcome =
    let meta = Path.Combine(Path.GetTempPath(), "hybrid-tlc", m.Name)
    let mode =
        if m.Mode = "simulate" then sprintf "-simulate %s" m.SimulateArgs else ""
    let args =
        sprintf "%s tlc2.TLC -workers 2 -noGenerateSpecTE -metadir \"%s\" %s -config %s %s"
            (javaArgs jar m.Libraries) meta mode m.Cfg m.Module
    let sw = Diagnostics.Stopwatch.StartNew()
    let rc, lines = captureIn (Path.Combine(root, m.Dir)) false "java" args
    let seconds = sw.Elapsed.TotalSeconds
    let find (pattern: string) =
        lines |> List.tryPick (fun l ->
            let x = Regex.Match(l, pattern)
            if x.Success then Some x.Groups.[1].Value else None)
    let distinct =
        find @"^[\d,]+ states generated, ([\d,]+) distinct states found"
        |> Option.map (fun s -> Int64.Parse(s.Replace(",", "")))
    let result, violated =
        match rc with
        | 0 -> "success", None
        | 12 -> "safety failure", find @"^Error: Invariant (\w+) is violated"
        | 13 -> "liveness failure", None
        | 10 -> "assumption failure", None
        | 150 | 151 -> "parse or configuration error", None
        | n -> sprintf "TLC error (rc %d)" n, None
    if result <> "success" && result <> "safety failure" && result <> "liveness failure" then
        lines |> List.rev |> List.truncate 30 |> List.rev |> List.iter (printfn "  %s")
    let cex = lines |> List.filter (fun l -> Regex.IsMatch(l, @"^State \d+: ")) |> List.length
    { Result = result; Violated = violated; DistinctStates = distinct; CounterexampleStates = cex
      Seconds = seconds }

/// One trace-validation case of spec/manifest.json: a trace TraceMigration must accept or reject.
type TraceCase = { Name: string; File: string; Expected: string }

let private readTraces () : TraceCase list =
    use doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "spec", "manifest.json")))
    match doc.RootElement.TryGetProperty "traces" with
    | true, ts ->
        [ for t in ts.EnumerateArray() ->
            { Name = t.GetProperty("name").GetString()
              File = t.GetProperty("file").GetString()
              Expected = t.GetProperty("expected").GetString() } ]
    | _ -> []

/// Validates one trace with spec/tools/check-trace.sh (TLC exit 0 = accepted, 10 = rejected).
let private checkTrace (jar: string) (t: TraceCase) : bool =
    let psi =
        Diagnostics.ProcessStartInfo("bash", sprintf "spec/tools/check-trace.sh %s" t.File,
                                     WorkingDirectory = root, UseShellExecute = false,
                                     RedirectStandardOutput = true, RedirectStandardError = true)
    psi.Environment.["TLA2TOOLS_JAR"] <- jar
    use p = Diagnostics.Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.WaitForExit()
    let got =
        match p.ExitCode with
        | 0 -> "accepted"
        | 10 -> "rejected"
        | n -> sprintf "error (rc %d)" n
    if got = t.Expected then
        printfn "ok      %s: %s" t.Name got
        true
    else
        printfn "%s%s" out.Result err.Result
        printfn "FAILED  %s: expected %s, got %s" t.Name t.Expected got
        false

/// Every .tla module of spec/ with the folders it needs on TLA-Library.
let private modules () =
    [ for dir in [ "spec/cuts"; "spec/migration" ] do
        let full = Path.Combine(root, dir)
        if Directory.Exists full then
            for f in Directory.GetFiles(full, "*.tla") |> Array.sort do
                let libs = if dir = "spec/migration" then [ "spec/cuts" ] else []
                yield dir, libs, Path.GetFileName f ]

/// Runs every model in spec/manifest.json and compares with its expected outcome.
/// Returns (passed, failed, skipped).
let modelcheck (args: string list) : int * int * int =
    match tlcJar () with
    | None ->
        printfn "skipped: TLC not found (set TLA2TOOLS_JAR or put tla2tools.jar in .tools/)"
        0, 0, 1
    | Some jar ->
        let large = args |> List.contains "--large"
        let filter = args |> List.tryFind (fun a -> not (a.StartsWith "--"))
        let parsed = modules () |> List.map (fun (d, l, f) -> sany jar d l f)
        let sanyPassed = parsed |> List.filter id |> List.length
        let sanyFailed = parsed.Length - sanyPassed
        let chosen, skippedLarge =
            readModels ()
            |> List.filter (fun m -> filter |> Option.forall (fun f -> m.Name.Contains f))
            |> List.partition (fun m -> large || m.Size <> "large")
        let results =
            [ for m in chosen ->
                printfn "running TLC %s (%s, %s) ..." m.Name m.Cfg m.Mode
                let o = runTlc jar m
                let problems =
                    [ if o.Result <> m.Result then
                          yield sprintf "expected %s, got %s" m.Result o.Result
                      if m.Result = "safety failure" && o.Violated <> m.Violated then
                          yield sprintf "expected %A violated, got %A" m.Violated o.Violated
                      match m.Mode, m.DistinctStates, o.DistinctStates with
                      | "exhaustive", Some e, Some g when e <> g ->
                          yield sprintf "expected %d distinct states, got %d" e g
                      | "exhaustive", Some _, None -> yield "no distinct-state count in TLC's output"
                      | _ -> () ]
                let states = o.DistinctStates |> Option.map string |> Option.defaultValue "-"
                let what =
                    match o.Violated with
                    | Some v -> sprintf "%s (%s, counterexample of %d states)" o.Result v o.CounterexampleStates
                    | None -> o.Result
                if problems.IsEmpty then
                    printfn "ok      %s: %s, %s distinct states, %.1f s" m.Name what states o.Seconds
                else
                    printfn "FAILED  %s: %s; %s" m.Name what (String.Join("; ", problems))
                problems.IsEmpty ]
        let traceResults =
            readTraces ()
            |> List.filter (fun t -> filter |> Option.forall (fun f -> t.Name.Contains f))
            |> List.map (checkTrace jar)
        let results = results @ traceResults
        for m in skippedLarge do
            printfn "skipped: %s (large model; pass --large)" m.Name
        let passed = (results |> List.filter id |> List.length) + sanyPassed
        let failed = (results |> List.filter not |> List.length) + sanyFailed
        printfn "modelcheck: %d passed, %d failed, %d skipped" passed failed skippedLarge.Length
        passed, failed, skippedLarge.Length
