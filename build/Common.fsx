// Shared helpers for build.fsx: processes, apt packages, paths. No dependencies beyond the BCL.
module Common

open System
open System.Diagnostics
open System.IO

/// The repository root (the folder that holds build.fsx).
let root = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, ".."))

let isCi = Environment.GetEnvironmentVariable "CI" = "true"

/// Runs a program, streaming its output, and returns its exit code.
let runIn (cwd: string) (file: string) (args: string) : int =
    let psi = ProcessStartInfo(file, args, WorkingDirectory = cwd, UseShellExecute = false)
    use p = Process.Start psi
    p.WaitForExit()
    p.ExitCode

let run file args = runIn root file args

/// Runs a program and fails the build if it exits non-zero.
let exec file args =
    let rc = run file args
    if rc <> 0 then failwithf "%s %s exited with %d" file args rc

/// Runs a program, captures stdout+stderr (also echoed line by line), returns (exit code, lines).
let captureIn (cwd: string) (echo: bool) (file: string) (args: string) : int * string list =
    let psi =
        ProcessStartInfo(file, args, WorkingDirectory = cwd, UseShellExecute = false,
                         RedirectStandardOutput = true, RedirectStandardError = true)
    let lines = Collections.Concurrent.ConcurrentQueue<string>()
    use p = new Process(StartInfo = psi)
    let onLine (e: DataReceivedEventArgs) =
        if not (isNull e.Data) then
            lines.Enqueue e.Data
            if echo then Console.WriteLine e.Data
    p.OutputDataReceived.Add onLine
    p.ErrorDataReceived.Add onLine
    p.Start() |> ignore
    p.BeginOutputReadLine()
    p.BeginErrorReadLine()
    p.WaitForExit()
    p.ExitCode, List.ofSeq lines

let capture file args = captureIn root false file args

/// True when a program is on PATH.
let hasCommand (name: string) =
    let rc, _ = capture "sh" (sprintf "-c \"command -v %s\"" name)
    rc = 0

let private aptUpdated = ref false

/// Installs Debian packages that are missing (as root, after one apt-get update).
let aptInstall (packages: string list) =
    let missing =
        packages
        |> List.filter (fun p ->
            let rc, out = capture "dpkg-query" (sprintf "-W -f=${Status} %s" p)
            not (rc = 0 && out |> List.exists (fun l -> l.Contains "install ok installed")))
    if not missing.IsEmpty then
        let isRoot = (capture "id" "-u" |> snd |> List.tryHead) = Some "0"
        if not isRoot then
            failwithf "missing Debian packages %A: run as root, or install them first" missing
        if not aptUpdated.Value then
            exec "apt-get" "update -q"
            aptUpdated.Value <- true
        let env = "DEBIAN_FRONTEND=noninteractive"
        exec "env" (sprintf "%s apt-get install -y -q --no-install-recommends %s" env (String.Join(" ", missing)))

/// Prints a step header.
let step (name: string) = printfn "\n==> %s" name
