using Spectre.Console;

namespace Hybrid.Cli.Commands;

/// <summary>Spectre.Console tables printed whole when the output is a file or a pipe.</summary>
internal static class Tables
{
    /// <summary>
    /// Makes the console at least <paramref name="columns"/> wide when it is not a terminal: Spectre then assumes 80
    /// columns and wraps cells (<c>cluster status</c> printed 127.0.0.1:7100 as "127.0.0.1:71" over "00").
    /// </summary>
    public static void WidenWhenRedirected(int columns)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, columns);
        }
    }
}
