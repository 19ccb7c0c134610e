using System.Security.Cryptography;

namespace Hybrid.Protocol;

/// <summary>
/// The Hello/Auth challenge-response: the node sends a random 32-byte challenge, the client answers
/// HMAC-SHA256(tenant secret, challenge). The secret never crosses the wire and a proof is useless for any
/// other challenge.
/// </summary>
public static class AuthProof
{
    /// <summary>Bytes in a challenge and in a proof.</summary>
    public const int Size = 32;

    /// <summary>Writes HMAC-SHA256(<paramref name="secret"/>, <paramref name="challenge"/>) into <paramref name="proof"/>.</summary>
    public static void Compute(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> challenge, Span<byte> proof) =>
        HMACSHA256.HashData(secret, challenge, proof);

    /// <summary>True when <paramref name="proof"/> answers <paramref name="challenge"/> for <paramref name="secret"/> (constant time).</summary>
    public static bool Verify(ReadOnlySpan<byte> secret, ReadOnlySpan<byte> challenge, ReadOnlySpan<byte> proof)
    {
        if (proof.Length != Size)
            return false;
        Span<byte> expected = stackalloc byte[Size];
        Compute(secret, challenge, expected);
        return CryptographicOperations.FixedTimeEquals(expected, proof);
    }

    /// <summary>Fills <paramref name="challenge"/> with cryptographically random bytes.</summary>
    public static void NewChallenge(Span<byte> challenge) => RandomNumberGenerator.Fill(challenge);
}
