module Hybrid.Core.Tests.IdsTests

open Xunit

[<Fact>]
let ``slot space is the Redis Cluster one`` () = Assert.Equal(16384, Hybrid.Core.Ids.SlotCount)
