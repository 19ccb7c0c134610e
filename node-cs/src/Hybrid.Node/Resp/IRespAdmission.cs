namespace Hybrid.Node.Resp;

/// <summary>
/// Admission of RESP commands against the connection's tenant quotas (ops/s and memory). The node implements it with
/// the running worker's quota shares (the same ones the native protocol charges per batch); a host without quotas
/// leaves <see cref="RespSession.Admission"/> null.
/// </summary>
public interface IRespAdmission
{
    /// <summary>Charges <paramref name="operations"/> key operations. False: the tenant's ops/s quota is spent.</summary>
    bool TryChargeOps(int operations);

    /// <summary>Charges <paramref name="bytes"/> of new data. False: storing them would exceed the tenant's memory quota.</summary>
    bool TryChargeBytes(long bytes);
}
