/// A JSON-like value: the shape in which TLC writes states (vectors) and the node writes trace
/// events. The core never parses or prints JSON text (no I/O); callers convert their parser's output
/// into this type, and the core works on it.
module Hybrid.Core.JsonValue

/// A JSON value as TLC's Json module and the node's trace emitter write it. Numbers are integers
/// (the models have no other kind); an object's key order carries no meaning.
[<RequireQualifiedAccess>]
type Value =
    /// A JSON string (every identifier of the models is a string).
    | Str of string
    /// A JSON integer number.
    | Int of int64
    /// A JSON boolean.
    | Bool of bool
    /// A JSON array: a TLA+ sequence, a set, or an optional (a set of at most one element).
    | Arr of Value list
    /// A JSON object: a TLA+ record or a function whose domain is a set of strings.
    | Obj of Map<string, Value>

/// Raised when a value does not have the shape a model variable needs; the message names the path.
exception ShapeError of string

/// Fails with the path and what was expected.
let shapeError (path: string) (expected: string) (v: Value) : 'a =
    raise (ShapeError(sprintf "%s: expected %s, got %A" path expected v))

/// The string inside a `Str`.
let asStr (path: string) (v: Value) : string =
    match v with
    | Value.Str s -> s
    | _ -> shapeError path "a string" v

/// The integer inside an `Int`, as an `int` (model numbers are small).
let asInt (path: string) (v: Value) : int =
    match v with
    | Value.Int i -> int i
    | _ -> shapeError path "an integer" v

/// The boolean inside a `Bool`.
let asBool (path: string) (v: Value) : bool =
    match v with
    | Value.Bool b -> b
    | _ -> shapeError path "a boolean" v

/// The elements of an `Arr`.
let asArr (path: string) (v: Value) : Value list =
    match v with
    | Value.Arr xs -> xs
    | _ -> shapeError path "an array" v

/// The fields of an `Obj`.
let asObj (path: string) (v: Value) : Map<string, Value> =
    match v with
    | Value.Obj m -> m
    | _ -> shapeError path "an object" v

/// The field `name` of an object; fails with the path if it is missing.
let field (path: string) (name: string) (v: Value) : Value =
    match (asObj path v).TryFind name with
    | Some x -> x
    | None -> shapeError (path + "." + name) "a field" v

/// An object whose every field is decoded with `f`: a TLA+ function over strings.
let asFcn (path: string) (f: string -> Value -> 'a) (v: Value) : Map<string, 'a> =
    asObj path v |> Map.map (fun k x -> f (path + "." + k) x)

/// A TLA+ optional (a set with at most one element) decoded with `f`.
let asOpt (path: string) (f: string -> Value -> 'a) (v: Value) : 'a option =
    match asArr path v with
    | [] -> None
    | [ x ] -> Some(f (path + "[0]") x)
    | _ -> shapeError path "a set of at most one element" v

/// A TLA+ set of strings.
let asStrSet (path: string) (v: Value) : Set<string> =
    asArr path v |> List.mapi (fun i x -> asStr (sprintf "%s[%d]" path i) x) |> Set.ofList

/// A string value.
let str (s: string) : Value = Value.Str s

/// An integer value.
let int (i: int) : Value = Value.Int(int64 i)

/// An object from (name, value) pairs.
let obj (fields: (string * Value) list) : Value = Value.Obj(Map.ofList fields)

/// A TLA+ function over strings, each value encoded with `f`.
let fcn (f: 'a -> Value) (m: Map<string, 'a>) : Value = Value.Obj(m |> Map.map (fun _ x -> f x))

/// A TLA+ optional: `[]` or `[x]`.
let opt (f: 'a -> Value) (o: 'a option) : Value =
    match o with
    | None -> Value.Arr []
    | Some x -> Value.Arr [ f x ]

/// A TLA+ set of strings (ascending, as TLC prints it).
let strSet (s: Set<string>) : Value = Value.Arr(s |> Set.toList |> List.map Value.Str)

/// True when `actual` agrees with `logged` on everything `logged` mentions: objects are matched
/// on the keys `logged` lists (recursively), everything else exactly. This is how a trace line's
/// partial post-state is compared with a model state.
let rec agrees (logged: Value) (actual: Value) : bool =
    match logged, actual with
    | Value.Obj l, Value.Obj a ->
        l |> Map.forall (fun k lv -> match a.TryFind k with Some av -> agrees lv av | None -> false)
    | Value.Arr l, Value.Arr a -> List.length l = List.length a && List.forall2 agrees l a
    | _ -> logged = actual

/// Compact JSON text of a value (object keys in ascending order). Pure string building: the core
/// does not write it anywhere; counterexamples and golden traces use it.
let rec render (v: Value) : string =
    let quote (s: string) =
        let sb = System.Text.StringBuilder("\"")
        for ch in s do
            match ch with
            | '"' -> sb.Append("\\\"") |> ignore
            | '\\' -> sb.Append("\\\\") |> ignore
            | c when c < ' ' -> sb.AppendFormat("\\u{0:x4}", uint16 c) |> ignore
            | c -> sb.Append(c) |> ignore
        sb.Append('"').ToString()
    match v with
    | Value.Str s -> quote s
    | Value.Int i -> string i
    | Value.Bool b -> if b then "true" else "false"
    | Value.Arr xs -> "[" + (xs |> List.map render |> String.concat ",") + "]"
    | Value.Obj m -> "{" + (m |> Map.toList |> List.map (fun (k, x) -> quote k + ":" + render x) |> String.concat ",") + "}"

/// What changed from `before` to `after`: for objects, only the keys whose values differ
/// (recursively); anything else, the new value. None when nothing changed. This is the shape of a
/// trace line's partial post-state (`agrees` is its inverse check).
let rec diff (before: Value) (after: Value) : Value option =
    match before, after with
    | _ when before = after -> None
    | Value.Obj b, Value.Obj a when Set.ofSeq b.Keys = Set.ofSeq a.Keys ->
        Some(Value.Obj(a |> Map.toSeq |> Seq.choose (fun (k, v) -> diff b[k] v |> Option.map (fun d -> k, d)) |> Map.ofSeq))
    | _ -> Some after
