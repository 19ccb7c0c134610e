/// Identifiers shared by the specs, the F# core and the traces.
module Hybrid.Core.Ids

/// Number of hash slots (Redis Cluster rule: CRC16(key or {tag}) mod 16384).
[<Literal>]
let SlotCount = 16384

/// The spec name and parameters of an action value, read from its union case: the case name is the
/// TLA+ action name and the case's field names are the TLA+ parameter names (all strings). Deriving
/// them from the union keeps "TLA+ action names = F# union cases = trace event names" true by
/// construction.
module ActionInfo =
    open Microsoft.FSharp.Reflection

    /// The union's cases, field names and readers, looked up once per union type: reflecting on every call
    /// (`FSharpValue.GetUnionFields`) was two thirds of a decision's time, every decision emitting a trace line.
    type private Cases<'A>() =
        static let cases = FSharpType.GetUnionCases(typeof<'A>)
        static let tagOf = FSharpValue.PreComputeUnionTagReader(typeof<'A>)
        static let readers = cases |> Array.map FSharpValue.PreComputeUnionReader
        static let fieldNames = cases |> Array.map (fun c -> c.GetFields() |> Array.map (fun p -> p.Name))

        static member Name(a: 'A) : string = cases[tagOf (box a)].Name

        static member Parameters(a: 'A) : (string * string) list =
            let tag = tagOf (box a)
            Array.zip fieldNames[tag] (readers[tag] (box a)) |> Array.map (fun (n, v) -> n, string v) |> List.ofArray

    /// The union case's name: the TLA+ action name.
    let name (a: 'A) : string = Cases<'A>.Name a

    /// The union case's fields by name: the TLA+ parameters and their values.
    let parameters (a: 'A) : (string * string) list = Cases<'A>.Parameters a

    /// The action as the spec writes it, e.g. `Revoke(r1, n2)`.
    let label (a: 'A) : string =
        sprintf "%s(%s)" (name a) (parameters a |> List.map snd |> String.concat ", ")
