namespace Hybrid.Node.Hosting;

/// <summary>
/// A node's hold on its data directory: an exclusive lock on <c>LOCK</c> in it (an advisory <c>flock</c>, which the
/// kernel releases when the process dies, kill -9 included). A second node on the same directory ran beside the first
/// and wrote its own copy of the store's log; the first one's next restart lost the second's acknowledged writes. Tools
/// that change a stopped node's files (<c>hybrid tenant create</c>) take it too, so they refuse a running node's.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    /// <summary>The lock file's name inside the data directory.</summary>
    public const string FileName = "LOCK";

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>Takes the lock on <paramref name="directory"/> (created if missing), or throws <see cref="IOException"/> saying who may hold it.</summary>
    public static DataDirectoryLock Acquire(string directory)
    {
        Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, FileName);
        try
        {
            // FileShare.None is an exclusive flock on Unix: refused while another open file holds it, in any process.
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            try
            {
                // Who holds it, for the message of whoever is refused (a file of its own: the locked one cannot be read).
                File.WriteAllText(path + ".owner", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            catch
            {
                file.Dispose(); // not left held by a process that failed to take it (a full disk)
                throw;
            }
            return new DataDirectoryLock(file);
        }
        catch (IOException e) when (e.HResult != LockHeld)
        {
            // Not the lock: a read-only file system, a full disk... (the message was "in use by" a process long gone).
            throw new IOException($"data directory {directory} cannot be written: {e.Message}", e);
        }
        catch (IOException e)
        {
            string holder = "";
            try
            {
                holder = File.ReadAllText(path + ".owner").Trim() is { Length: > 0 } pid ? $" (process {pid})" : "";
            }
            catch (IOException)
            {
            }
            throw new IOException($"data directory {directory} is in use by another node or tool{holder}: stop it first, or use another directory", e);
        }
    }

    /// <summary>The errno (EWOULDBLOCK) in the IOException of an open refused because another open file holds the flock.</summary>
    private const int LockHeld = 11;

    /// <summary>Releases the lock (the file stays).</summary>
    public void Dispose() => _file.Dispose();
}
