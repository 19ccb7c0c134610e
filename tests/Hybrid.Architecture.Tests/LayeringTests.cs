using System.Reflection;

namespace Hybrid.Architecture.Tests;

/// <summary>
/// The architecture invariants of ARCHITECTURE.md, checked on the built assemblies
/// (libgit2sharp MetaFixture style): prose alone drifts, these fail the build.
/// </summary>
public class LayeringTests
{
    private static readonly string[] s_shipped =
    [
        "Hybrid.Core", "Hybrid.Protocol", "Hybrid.Storage", "Hybrid.Node", "Hybrid.Client",
        "Hybrid.Cluster", "Hybrid.Transport", "Hybrid.Extensions", "Hybrid.Extensions.Abstractions", "hybrid",
    ];

    private static Assembly Load(string name) => Assembly.Load(new AssemblyName(name));

    private static IEnumerable<string> References(string assembly) =>
        Load(assembly).GetReferencedAssemblies().Select(a => a.Name ?? "");

    private static bool IsBcl(string name) =>
        name is "netstandard" or "mscorlib" || name.StartsWith("System", StringComparison.Ordinal) ||
        name.StartsWith("Microsoft.Win32", StringComparison.Ordinal);

    [Fact]
    public void Core_ReferencesOnlyFSharpCoreAndTheBcl()
    {
        var foreign = References("Hybrid.Core").Where(n => n != "FSharp.Core" && !IsBcl(n)).ToList();
        Assert.Empty(foreign);
    }

    [Fact]
    public void ExtensionAbstractions_ReferenceOnlyTheBcl()
    {
        var foreign = References("Hybrid.Extensions.Abstractions").Where(n => !IsBcl(n)).ToList();
        Assert.Empty(foreign);
    }

    [Fact]
    public void OnlyStorage_ReferencesFaster()
    {
        var offenders = s_shipped.Where(a => a != "Hybrid.Storage")
            .Where(a => References(a).Any(r => r.StartsWith("FASTER", StringComparison.OrdinalIgnoreCase)))
            .ToList();
        Assert.Empty(offenders);
    }

    [Fact]
    public void Storage_DoesNotReferenceNetworkTenantsOrExtensions()
    {
        var refs = References("Hybrid.Storage").ToList();
        Assert.DoesNotContain("Hybrid.Node", refs);
        Assert.DoesNotContain("Hybrid.Transport", refs);
        Assert.DoesNotContain("Hybrid.Extensions", refs);
    }

    [Fact]
    public void PInvoke_IsDeclaredOnlyInOneInternalClassOfTransport()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static |
                                 BindingFlags.Instance | BindingFlags.DeclaredOnly;
        var declaring = s_shipped
            .SelectMany(a => Load(a).GetTypes())
            .Where(t => t.GetMethods(all).Any(m => (m.Attributes & MethodAttributes.PinvokeImpl) != 0))
            .ToList();
        Assert.All(declaring, t =>
        {
            Assert.Equal("Hybrid.Transport", t.Assembly.GetName().Name);
            Assert.False(t.IsPublic || t.IsNestedPublic, $"{t.FullName} declares P/Invoke and is public");
        });
        Assert.True(declaring.Select(t => t.FullName).Distinct().Count() <= 1,
            "P/Invoke declared in several classes: " + string.Join(", ", declaring.Select(t => t.FullName)));
    }
}
