namespace Hybrid.Extensions;

/// <summary>The example extensions shipped as source (<c>Examples/*.cs</c>, embedded): get, aggregate, tao, rmw.</summary>
public static class ExtensionExamples
{
    /// <summary>Names of the shipped examples.</summary>
    public static IReadOnlyList<string> Names { get; } = ["get", "aggregate", "tao", "rmw"];

    /// <summary>The C# source of an example, ready for <see cref="ExtensionHost.Install"/>.</summary>
    public static string Source(string name)
    {
        using var stream = typeof(ExtensionExamples).Assembly.GetManifestResourceStream($"Hybrid.Extensions.Examples.{name}.cs")
                           ?? throw new ArgumentException($"no example '{name}'", nameof(name));
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
