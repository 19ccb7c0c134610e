using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Hybrid.Extensions.Abstractions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Emit;
using Mono.Cecil;
using Mono.Cecil.Cil;

namespace Hybrid.Extensions;

/// <summary>An extension that passed every check, instrumented and ready to load.</summary>
/// <param name="Hash">Content hash of the source and pipeline version; identical sources share one load.</param>
/// <param name="AssemblyName">The unique assembly name derived from <paramref name="Hash"/>.</param>
/// <param name="Image">The instrumented assembly bytes (what is persisted and loaded).</param>
internal sealed record CompiledModule(string Hash, string AssemblyName, byte[] Image);

/// <summary>
/// The install pipeline: parse → insert preemption points → Roslyn compile against a minimal reference
/// set with unsafe code off → semantic allowlist walk → emit with a PDB → IL scan → Cecil
/// instrumentation. The compiler is trusted; everything the tenant wrote is not.
/// </summary>
internal static class ExtensionCompiler
{
    /// <summary>Bumped whenever the allowlist or instrumentation changes: it is part of the content hash.</summary>
    public const string PipelineVersion = "hybrid-ext-1";

    private static readonly CSharpParseOptions s_parse = new(LanguageVersion.Latest, DocumentationMode.None);

    private static readonly CSharpCompilationOptions s_options = new CSharpCompilationOptions(
            OutputKind.DynamicallyLinkedLibrary,
            optimizationLevel: OptimizationLevel.Release,
            allowUnsafe: false,
            nullableContextOptions: NullableContextOptions.Disable,
            deterministic: true,
            concurrentBuild: false,
            checkOverflow: false)
        .WithMetadataImportOptions(MetadataImportOptions.Public);

    private static readonly ImmutableArray<MetadataReference> s_references = BuildReferences();

    private static ImmutableArray<MetadataReference> BuildReferences()
    {
        // The runtime's own assemblies: CoreLib plus the facades that forward to it. Nothing else is visible
        // to extension source (no System.IO, no System.Net, no System.Threading beyond CoreLib types, which
        // the allowlist then filters).
        var runtimeDir = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var paths = new[] { typeof(object).Assembly.Location }
            .Concat(new[] { "System.Runtime.dll", "System.Memory.dll", "System.Numerics.Vectors.dll", "System.Runtime.Intrinsics.dll" }
                .Select(f => Path.Combine(runtimeDir, f)))
            .Append(typeof(ExtensionContext).Assembly.Location)
            .Where(File.Exists);
        return [.. paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))];
    }

    /// <summary>The content hash under which a source is compiled, loaded and persisted.</summary>
    public static string HashOf(string source) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(PipelineVersion + "\n" + source)));

    /// <summary>Compiles, verifies and instruments; returns the module or the list of rejections.</summary>
    public static (CompiledModule? Module, IReadOnlyList<string> Errors) Compile(string name, string source)
    {
        var hash = HashOf(source);
        var assemblyName = "ext_" + hash[..32];
        var path = name + ".cs";
        var tree = PreemptionRewriter.Rewrite(CSharpSyntaxTree.ParseText(source, s_parse, path, Encoding.UTF8));
        var compilation = CSharpCompilation.Create(assemblyName, [tree], s_references, s_options);

        // A preemption point inside a loop that keeps a span alive across iterations does not compile:
        // take those points out and compile again (at most a few rounds; each removes at least one).
        for (var round = 0; round < 8; round++)
        {
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            var inserted = tree.GetRoot().GetAnnotatedNodes(PreemptionRewriter.Marker).Select(n => n.FullSpan).ToList();
            var blocking = errors.Where(d => d.Location.IsInSource && inserted.Any(s => s.Contains(d.Location.SourceSpan.Start))).ToList();
            if (errors.Count == 0)
            {
                break;
            }
            if (blocking.Count == 0)
            {
                return (null, errors.Select(Format).Distinct().ToList());
            }
            var fixedTree = PreemptionRewriter.Remove(tree, blocking.Select(d => d.Location.SourceSpan.Start));
            compilation = compilation.ReplaceSyntaxTree(tree, fixedTree);
            tree = fixedTree;
        }

        var model = compilation.GetSemanticModel(tree);
        var (sourceErrors, _) = SourceChecker.Check(model);
        if (sourceErrors.Count > 0)
        {
            return (null, sourceErrors.ToList());
        }

        using var pe = new MemoryStream();
        using var pdb = new MemoryStream();
        var emitted = compilation.Emit(pe, pdb, options: new EmitOptions(debugInformationFormat: DebugInformationFormat.PortablePdb));
        if (!emitted.Success)
        {
            return (null, emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(Format).ToList());
        }
        pe.Position = 0;
        pdb.Position = 0;
        using var module = ModuleDefinition.ReadModule(pe, new ReaderParameters
        {
            ReadSymbols = true,
            SymbolStream = pdb,
            SymbolReaderProvider = new PortablePdbReaderProvider(),
        });
        var ilErrors = IlScanner.Scan(module, path);
        if (ilErrors.Count > 0)
        {
            return (null, ilErrors.ToList());
        }
        Instrumenter.Instrument(module);
        using var output = new MemoryStream();
        module.Write(output, new WriterParameters { WriteSymbols = false });
        return (new CompiledModule(hash, assemblyName, output.ToArray()), []);
    }

    private static string Format(Diagnostic d)
    {
        var span = d.Location.GetLineSpan();
        return $"{span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}): error {d.Id}: {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
    }
}
