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

    /// The union case's name: the TLA+ action name.
    let name (a: 'A) : string =
        let case, _ = FSharpValue.GetUnionFields(box a, typeof<'A>)
        case.Name

    /// The union case's fields by name: the TLA+ parameters and their values.
    let parameters (a: 'A) : (string * string) list =
        let case, values = FSharpValue.GetUnionFields(box a, typeof<'A>)
        Array.zip (case.GetFields()) values |> Array.map (fun (p, v) -> p.Name, string v) |> List.ofArray

    /// The action as the spec writes it, e.g. `Revoke(r1, n2)`.
    let label (a: 'A) : string =
        sprintf "%s(%s)" (name a) (parameters a |> List.map snd |> String.concat ", ")
