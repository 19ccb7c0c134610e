/// Random walks through a model driven by a list of choices: the shared interpreter for the
/// Hedgehog and FsCheck properties. A choice picks one enabled action; `PreferCrash` picks a
/// `Crash` when one is enabled, so crashes are as likely anywhere in a behaviour as other steps.
module Hybrid.Core.Tests.Walks

open Hybrid.Core

/// One choice of a walk.
type Choice =
    /// Take enabled action number i (modulo the number enabled).
    | Pick of int
    /// Take a Crash if one is enabled, otherwise the first enabled action.
    | PreferCrash of int

/// The result of walking: the actions taken, the states after each, and the first invariant broken.
type Walk<'A, 'S> =
    { /// Actions taken, in order.
      Actions: 'A list
      /// The state after each action (the initial state first).
      States: 'S list
      /// The first invariant broken (name), if any; the walk stops there.
      Broken: string option }

/// Walks the Migration model from `init` following `choices`, checking every invariant after
/// every step; stops early when nothing is enabled or an invariant breaks.
let migration (cfg: Migration.Config) (choices: Choice list) : Walk<Migration.Action, Migration.State> =
    let enabled = Migration.enabled cfg
    let invariants = Invariants.OfMigration.all cfg
    let rec go st acts states choices =
        match choices with
        | [] -> { Actions = List.rev acts; States = List.rev states; Broken = None }
        | c :: rest ->
            match enabled st with
            | [] -> { Actions = List.rev acts; States = List.rev states; Broken = None }
            | succ ->
                let a, st' =
                    match c with
                    | Pick i -> List.item ((abs i) % succ.Length) succ
                    | PreferCrash i ->
                        match succ |> List.filter (fun (a, _) -> Migration.actionName a = "Crash") with
                        | [] -> List.item ((abs i) % succ.Length) succ
                        | crashes -> List.item ((abs i) % crashes.Length) crashes
                match invariants |> List.tryFind (fun inv -> not (inv.Holds st')) with
                | Some inv -> { Actions = List.rev (a :: acts); States = List.rev (st' :: states); Broken = Some inv.Name }
                | None -> go st' (a :: acts) (st' :: states) rest
    go (Migration.init cfg) [] [ Migration.init cfg ] choices
