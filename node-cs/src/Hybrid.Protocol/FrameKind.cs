namespace Hybrid.Protocol;

/// <summary>Kind of a frame (header byte 5).</summary>
public enum FrameKind : byte
{
    /// <summary>Client to node: a batch of requests.</summary>
    Request = 1,
    /// <summary>Node to client: one result per request, in request order.</summary>
    Reply = 2,
    /// <summary>Node to client: the whole batch was refused; one result carries the batch status.</summary>
    Rejected = 3,
}
