namespace Hybrid.Transport.Tests;

/// <summary><see cref="FileDurability"/> against the kernel: a directory is flushed, and what is not one is refused by errno.</summary>
public sealed class FileDurabilityTests
{
    [Fact]
    public void A_directory_is_flushed_and_a_missing_one_or_a_file_is_refused_naming_it_and_the_errno()
    {
        Assert.True(FileDurability.IsAvailable(out string? reason), reason);
        string dir = Path.Combine(Path.GetTempPath(), "hybrid-fsync-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "f.tmp"), "x");
            File.Move(Path.Combine(dir, "f.tmp"), Path.Combine(dir, "f"));
            FileDurability.SyncDirectory(dir);
            Assert.True(FileDurability.TrySyncDirectory(dir));

            var missing = Assert.Throws<IOException>(() => FileDurability.SyncDirectory(Path.Combine(dir, "gone")));
            Assert.Equal($"fsync of directory {Path.Combine(dir, "gone")} failed: errno 2", missing.Message); // ENOENT
            var file = Assert.Throws<IOException>(() => FileDurability.TrySyncDirectory(Path.Combine(dir, "f")));
            Assert.EndsWith("errno 20", file.Message); // ENOTDIR: a refusal still throws from the Try form
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
