/// Identifiers shared by the specs, the F# core and the traces.
module Hybrid.Core.Ids

/// Number of hash slots (Redis Cluster rule: CRC16(key or {tag}) mod 16384).
[<Literal>]
let SlotCount = 16384
