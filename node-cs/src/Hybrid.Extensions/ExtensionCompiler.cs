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

/// <summary>Many verified sources compiled into one instrumented assembly, each in its own namespace.</summary>
/// <param name="Id">SHA-256 of the member hashes: names the persisted image.</param>
/// <param name="Image">The instrumented pack assembly.</param>
/// <param name="Members">Content hashes of the sources it holds.</param>
internal sealed record CompiledPack(string Id, byte[] Image, IReadOnlyList<string> Members);

/// <summary>
/// The install pipeline: parse → insert preemption points → Roslyn compile against a minimal reference
/// set with unsafe code off → semantic allowlist walk → emit with a PDB → IL scan → Cecil
/// instrumentation. The compiler is trusted; everything the tenant wrote is not.
/// </summary>
internal static class ExtensionCompiler
{

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


    /// <summary>Compiles, verifies and instruments; returns the module or the list of rejections.</summary>
    public static (CompiledModule? Module, IReadOnlyList<string> Errors) Compile(string name, string source)
    {
        var hash = ContentHash.Of(source);
        var assemblyName = "ext_" + hash[..32];
        var tree = PreemptionRewriter.Rewrite(CSharpSyntaxTree.ParseText(source, s_parse, name + ".cs", Encoding.UTF8));
        var compilation = CSharpCompilation.Create(assemblyName, [tree], s_references, s_options);
        var (fixedCompilation, errors) = RemoveBlockingPreemptionPoints(compilation);
        if (errors.Count > 0)
        {
            return (null, errors.Select(Format).Distinct().ToList());
        }
        compilation = fixedCompilation;
        tree = compilation.SyntaxTrees[0];
        var (sourceErrors, _) = SourceChecker.Check(compilation.GetSemanticModel(tree));
        if (sourceErrors.Count > 0)
        {
            return (null, sourceErrors.ToList());
        }
        var (image, emitErrors) = EmitVerifiedInstrumented(compilation);
        return image is null ? (null, emitErrors) : (new CompiledModule(hash, assemblyName, image), []);
    }

    /// <summary>
    /// Compiles many already-verified sources (each installed and checked on its own first) into one assembly, each
    /// wrapped in its own <see cref="ModuleLoader.PackNamespace"/>: one assembly costs the runtime a fixed amount (~30 KiB resident
    /// per loaded assembly measured here), so packing is what makes thousands of tenants cheap. Every check runs
    /// again on the packed compilation, plus the pack rule (no reference to a type outside the tree's own namespace).
    /// A member whose source does not survive the wrapping (global usings, assembly attributes, names that resolve
    /// differently, ...) is left out and reported in <c>Left</c>; it stays loaded on its own.
    /// </summary>
    public static (CompiledPack? Pack, IReadOnlyList<string> Left) CompilePack(IReadOnlyList<(string Hash, string Name, string Source)> members)
    {
        var left = new List<string>();
        var trees = new Dictionary<string, SyntaxTree>(StringComparer.Ordinal);
        foreach (var (hash, name, source) in members)
        {
            var parsed = CSharpSyntaxTree.ParseText(source, s_parse, hash[..16] + "/" + name + ".cs", Encoding.UTF8);
            if (Wrap(parsed, ModuleLoader.PackNamespace(hash)) is { } wrapped)
            {
                trees[hash] = PreemptionRewriter.Rewrite(wrapped);
            }
            else
            {
                left.Add(hash);
            }
        }
        // Each round either succeeds or drops at least one member whose tree has a finding.
        while (trees.Count > 0)
        {
            var packHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(",", trees.Keys.Order(StringComparer.Ordinal)))));
            var compilation = CSharpCompilation.Create("extpack_" + packHash[..32], trees.Values, s_references, s_options);
            var (fixedCompilation, errors) = RemoveBlockingPreemptionPoints(compilation);
            compilation = fixedCompilation;
            var bad = new HashSet<SyntaxTree>(errors.Select(e => e.Location.SourceTree).OfType<SyntaxTree>());
            if (errors.Count > 0 && bad.Count == 0)
            {
                left.AddRange(trees.Keys);
                break;
            }
            var byTree = compilation.SyntaxTrees.ToDictionary(t => t.FilePath, StringComparer.Ordinal);
            foreach (var (hash, _) in trees)
            {
                var tree = byTree[trees[hash].FilePath];
                if (bad.Contains(tree) || SourceChecker.Check(compilation.GetSemanticModel(tree), ModuleLoader.PackNamespace(hash)).Errors.Count > 0)
                {
                    bad.Add(tree);
                }
            }
            if (bad.Count > 0)
            {
                foreach (var hash in trees.Keys.Where(h => bad.Contains(byTree[trees[h].FilePath])).ToList())
                {
                    trees.Remove(hash);
                    left.Add(hash);
                }
                continue;
            }
            var (image, _) = EmitVerifiedInstrumented(compilation);
            if (image is null)
            {
                left.AddRange(trees.Keys);
                break;
            }
            return (new CompiledPack(packHash, image, [.. trees.Keys]), left);
        }
        return (null, left);
    }

    /// <summary>
    /// Puts everything a compilation unit declares inside <c>namespace <paramref name="ns"/> { ... }</c>, its using
    /// directives too (so they bind inside it, as before against its own types). Null when the unit has something
    /// that would reach beyond its own tree in a shared assembly: global usings, assembly or module attributes,
    /// extern aliases, top-level statements.
    /// </summary>
    private static SyntaxTree? Wrap(SyntaxTree tree, string ns)
    {
        var root = (Microsoft.CodeAnalysis.CSharp.Syntax.CompilationUnitSyntax)tree.GetRoot();
        if (root.AttributeLists.Count > 0 || root.Externs.Count > 0 || root.Usings.Any(u => !u.GlobalKeyword.IsKind(SyntaxKind.None))
            || root.Members.Any(m => m is Microsoft.CodeAnalysis.CSharp.Syntax.GlobalStatementSyntax))
        {
            return null;
        }
        var members = root.Members.Select(m => m is Microsoft.CodeAnalysis.CSharp.Syntax.FileScopedNamespaceDeclarationSyntax f
            ? SyntaxFactory.NamespaceDeclaration(f.Name, f.Externs, f.Usings, f.Members)
            : m);
        var wrapper = SyntaxFactory.NamespaceDeclaration(SyntaxFactory.IdentifierName(ns))
            .WithUsings(root.Usings)
            .WithMembers(SyntaxFactory.List(members));
        var unit = root.WithUsings(default).WithMembers(SyntaxFactory.SingletonList<Microsoft.CodeAnalysis.CSharp.Syntax.MemberDeclarationSyntax>(wrapper));
        return tree.WithRootAndOptions(unit, tree.Options);
    }

    /// <summary>
    /// A preemption point inside a loop that keeps a span alive across iterations does not compile: take those
    /// points out and compile again (a few rounds; each removes at least one). Returns the remaining errors.
    /// </summary>
    private static (CSharpCompilation Compilation, List<Diagnostic> Errors) RemoveBlockingPreemptionPoints(CSharpCompilation compilation)
    {
        for (var round = 0; ; round++)
        {
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            if (errors.Count == 0 || round == 8)
            {
                return (compilation, errors);
            }
            var changed = false;
            foreach (var tree in compilation.SyntaxTrees.ToList())
            {
                var inserted = tree.GetRoot().GetAnnotatedNodes(PreemptionRewriter.Marker).Select(n => n.FullSpan).ToList();
                var blocking = errors.Where(d => d.Location.SourceTree == tree && inserted.Any(s => s.Contains(d.Location.SourceSpan.Start))).ToList();
                if (blocking.Count > 0)
                {
                    compilation = compilation.ReplaceSyntaxTree(tree, PreemptionRewriter.Remove(tree, blocking.Select(d => d.Location.SourceSpan.Start)));
                    changed = true;
                }
            }
            if (!changed)
            {
                return (compilation, errors);
            }
        }
    }

    /// <summary>Emits with a portable PDB, scans the IL against the allowlist and instruments it.</summary>
    private static (byte[]? Image, IReadOnlyList<string> Errors) EmitVerifiedInstrumented(CSharpCompilation compilation)
    {
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
        var ilErrors = IlScanner.Scan(module, compilation.SyntaxTrees[0].FilePath);
        if (ilErrors.Count > 0)
        {
            return (null, ilErrors.ToList());
        }
        Instrumenter.Instrument(module);
        using var output = new MemoryStream();
        module.Write(output, new WriterParameters { WriteSymbols = false });
        return (output.ToArray(), []);
    }

    private static string Format(Diagnostic d)
    {
        var span = d.Location.GetLineSpan();
        return $"{span.Path}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1}): error {d.Id}: {d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)}";
    }
}
