// HybridKV build script: `dotnet fsi build.fsx <target> [args]`.
// Dependency-free; every target installs what it needs on a fresh Debian machine (as root).
#load "build/Common.fsx"
#load "build/Spec.fsx"
#load "build/Native.fsx"
#load "build/Bench.fsx"

open System
open System.Text.RegularExpressions
open Common

/// Debian packages the test suite needs (servers and tools the tests start themselves): build/apt-test.txt.
let testPackages =
    IO.File.ReadAllLines(IO.Path.Combine(root, "build", "apt-test.txt"))
    |> Array.map (fun l -> l.Trim())
    |> Array.filter (fun l -> l <> "" && not (l.StartsWith "#"))
    |> List.ofArray

let restore () =
    step "restore"
    exec "dotnet" "restore Hybrid.sln"

let build () =
    restore ()
    step "native"
    if not (Native.build ()) then printfn "transport-native: nothing to build yet"
    step "build"
    exec "dotnet" "build Hybrid.sln -c Release --no-restore -nologo"

/// dotnet format cannot load F# projects: it reads Hybrid.Core's Debug output instead, so build it first
/// (otherwise C# files that use the core look like they have unnecessary usings, and `format` removes them).
let buildCoreForFormat () =
    exec "dotnet" "build core-fs/src/Hybrid.Core -c Debug --no-restore -nologo -v q"

let formatCheck () =
    step "format"
    buildCoreForFormat ()
    let rc = run "dotnet" "format Hybrid.sln --verify-no-changes --no-restore"
    if rc <> 0 then failwith "dotnet format found changes: run `dotnet format Hybrid.sln`"

/// Runs every test project and sums the per-assembly summaries.
let runTests (extra: string list) : int * int * int =
    step "test"
    let filter = match extra with [] -> "" | f :: _ -> sprintf " --filter \"%s\"" f
    let _, lines = captureIn root true "dotnet" ("test Hybrid.sln -c Release --no-build --nologo" + filter)
    let summary = Regex(@"(Passed|Failed)!\s+-\s+Failed:\s+(\d+),\s+Passed:\s+(\d+),\s+Skipped:\s+(\d+)")
    let mutable passed, failed, skipped, assemblies = 0, 0, 0, 0
    for l in lines do
        let m = summary.Match l
        if m.Success then
            assemblies <- assemblies + 1
            failed <- failed + int m.Groups.[2].Value
            passed <- passed + int m.Groups.[3].Value
            skipped <- skipped + int m.Groups.[4].Value
    if lines |> List.exists (fun l -> l.Contains "error" && l.Contains "Test Run Aborted") then
        failed <- failed + 1
    printfn "test assemblies reporting: %d" assemblies
    passed, failed, skipped

let test (args: string list) =
    aptInstall testPackages
    build ()
    let p, f, s = runTests args
    step "modelcheck"
    let mp, mf, ms = Spec.modelcheck []
    if args.IsEmpty then formatCheck ()
    printfn ""
    printfn "unit/integration: %d passed, %d failed, %d skipped" p f s
    printfn "model checks: %d passed, %d failed, %d skipped" mp mf ms
    let total = sprintf "%d passed, %d failed, %d skipped" (p + mp) (f + mf) (s + ms)
    printfn "%s" total
    if f + mf > 0 || p = 0 then exit 1

let runNode (args: string list) =
    build ()
    step "run"
    // 8 MiB default thread stacks: an I/O thread that borrows an idle worker may then run an extension's first step
    // itself (the extension stack check needs >= 2 MiB; docs/extensions.md), instead of waking the worker.
    if isNull (Environment.GetEnvironmentVariable "DOTNET_DefaultStackSize") then
        Environment.SetEnvironmentVariable("DOTNET_DefaultStackSize", "800000")
    let extra = String.Join(" ", args)
    exit (run "dotnet" (sprintf "node-cs/src/Hybrid.Cli/bin/Release/net10.0/hybrid.dll server %s" extra))

let tracecheck (args: string list) =
    match args with
    | [] ->
        eprintfn "usage: dotnet fsi build.fsx tracecheck FILE..."
        exit 2
    | files ->
        build ()
        let rc = run "dotnet" (sprintf "node-cs/src/Hybrid.Cli/bin/Release/net10.0/hybrid.dll trace check %s" (String.Join(" ", files)))
        exit rc

let targets =
    [ "build", (fun _ -> build ())
      "test", test
      "run", runNode
      "bench", (fun a -> build (); Bench.bench a)
      "bench-compare", (fun a -> build (); Bench.benchCompare a)
      "modelcheck", (fun a -> let _, f, _ = Spec.modelcheck a in if f > 0 then exit 1)
      "tracecheck", tracecheck
      "format", (fun _ -> buildCoreForFormat (); exec "dotnet" "format Hybrid.sln --no-restore") ]

match fsi.CommandLineArgs |> Array.toList |> List.tail with
| [] -> printfn "usage: dotnet fsi build.fsx <target> [args]\ntargets: %s" (String.Join(", ", targets |> List.map fst))
| t :: rest ->
    match targets |> List.tryFind (fun (n, _) -> n = t) with
    | Some (_, f) -> f rest
    | None ->
        eprintfn "unknown target '%s'; valid targets: %s" t (String.Join(", ", targets |> List.map fst))
        exit 2
