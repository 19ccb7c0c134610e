using Hybrid.Transport.Dpdk;

namespace Hybrid.Transport;

/// <summary>
/// What .NET's file API cannot do for a crash-safe file replacement (<c>hyb_fsync_dir</c> of libhyb_transport): flush a
/// directory's entries, so that a file renamed into it (written and flushed under a temporary name first) or created
/// in it is still there after the machine crashes. Without it the rename can be lost with the journal's last seconds:
/// a metadata decision, a checkpoint's metadata or a tenant log rewrite that was already acknowledged would revert.
/// </summary>
public static class FileDurability
{
    private static readonly Lazy<string?> Missing = new(Probe);

    /// <summary>True when directories can be flushed here (libhyb_transport loads); otherwise false and why.</summary>
    public static bool IsAvailable(out string? reason)
    {
        reason = Missing.Value;
        return reason is null;
    }

    /// <summary>
    /// Flushes <paramref name="directory"/>'s entries to disk. Throws <see cref="IOException"/> naming the directory
    /// and the errno when the kernel refuses (the rename may not be durable: the caller must not acknowledge it), and a
    /// <see cref="TransportException"/> when libhyb_transport is missing (<see cref="IsAvailable"/> tells first).
    /// </summary>
    public static void SyncDirectory(string directory)
    {
        if (Missing.Value is { } reason)
            throw new TransportException(TransportError.Unavailable, "cannot flush a directory: " + reason);
        if (!HybNative.SyncDirectory(directory, out int errno))
            throw new IOException($"fsync of directory {directory} failed: errno {errno}");
    }

    /// <summary>
    /// <see cref="SyncDirectory"/> where libhyb_transport loads (true); false, flushing nothing, where it does not
    /// (<c>hybrid server</c> says so when it starts). A refusal of the kernel still throws.
    /// </summary>
    public static bool TrySyncDirectory(string directory)
    {
        if (Missing.Value is not null)
            return false;
        SyncDirectory(directory);
        return true;
    }

    /// <summary>
    /// Options that create a file for writing readable by its owner only (mode 0600): for files that hold secrets
    /// (tenant secrets, the cluster's peer key). An existing file keeps its mode.
    /// </summary>
    public static FileStreamOptions OwnerOnly(FileMode mode, FileShare share, int bufferSize = 4096)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = share, BufferSize = bufferSize };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        return options;
    }

    private static string? Probe()
    {
        try
        {
            HybNative.EnsureLoaded();
            return null;
        }
        catch (TransportException e)
        {
            return e.Message;
        }
    }
}
