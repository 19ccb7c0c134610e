using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hybrid.Extensions;

/// <summary>
/// Walks the semantic model of an extension against <see cref="Allowlist"/> and the structural rules
/// (no static state, no static constructors, no finalizers, no catch that could catch the budget
/// exception, no stackalloc, no lambdas). Every finding names the symbol and its source position.
/// </summary>
internal sealed class SourceChecker
{
    private readonly SemanticModel _model;
    private readonly IAssemblySymbol _self;
    private readonly List<string> _errors = [];
    private readonly Dictionary<(string Path, int Line, string What), int> _findings = [];
    private readonly List<EntryPoint> _entries = [];
    private readonly string? _packNamespace;

    private SourceChecker(SemanticModel model, string? packNamespace)
    {
        _model = model;
        _self = model.Compilation.Assembly;
        _packNamespace = packNamespace;
    }

    /// <summary>
    /// Checks one syntax tree; returns the findings and the entry points found. In a pack (many tenants' sources
    /// compiled into one assembly, each wrapped in its own namespace) <paramref name="packNamespace"/> is the tree's
    /// namespace, and any reference to a type of the assembly outside it is refused: one tenant's code never names
    /// another's.
    /// </summary>
    public static (IReadOnlyCollection<string> Errors, IReadOnlyList<EntryPoint> Entries) Check(SemanticModel model, string? packNamespace = null)
    {
        var checker = new SourceChecker(model, packNamespace);
        foreach (var node in model.SyntaxTree.GetRoot().DescendantNodesAndSelf())
        {
            checker.CheckNode(node);
        }
        // One finding per line and kind, at its first column (a qualified name such as System.IO.File.Delete is three
        // nodes that all name the forbidden type), in source order.
        foreach (var ((path, line, what), column) in checker._findings.OrderBy(f => f.Key.Line).ThenBy(f => f.Value).ThenBy(f => f.Key.What, StringComparer.Ordinal))
        {
            checker._errors.Add($"{path}({line},{column}): forbidden {what}");
        }
        if (checker._entries.Count == 0)
        {
            checker._errors.Add($"{model.SyntaxTree.FilePath}(1,1): no entry point: mark a public static method taking ExtensionContext and returning ExtensionTask with [Extension]");
        }
        foreach (var dup in checker._entries.GroupBy(e => e.Name).Where(g => g.Count() > 1))
        {
            checker._errors.Add($"{model.SyntaxTree.FilePath}(1,1): entry point name '{dup.Key}' is used twice");
        }
        return (checker._errors, checker._entries);
    }

    private void Report(SyntaxNode node, string what)
    {
        var span = node.GetLocation().GetLineSpan();
        var key = (span.Path, span.StartLinePosition.Line + 1, what);
        int column = span.StartLinePosition.Character + 1;
        if (!_findings.TryGetValue(key, out int first) || column < first)
        {
            _findings[key] = column;
        }
    }

    private void CheckNode(SyntaxNode node)
    {
        switch (node)
        {
            case CatchClauseSyntax { Declaration: null }:
                Report(node, "catch-all clause (it could catch the budget exception; catch a specific exception type)");
                break;
            case CatchDeclarationSyntax decl when _model.GetTypeInfo(decl.Type).Type is { } caught
                                                  && !Allowlist.CatchableExceptions.Contains(MetadataKey(caught)):
                Report(decl, $"catch of '{caught.ToDisplayString()}' (only specific exception types may be caught)");
                break;
            case StackAllocArrayCreationExpressionSyntax or ImplicitStackAllocArrayCreationExpressionSyntax:
                Report(node, "stackalloc (stack memory is not budgeted)");
                break;
            case LockStatementSyntax:
                Report(node, "lock statement");
                break;
            case AnonymousFunctionExpressionSyntax:
                Report(node, "lambda or anonymous method (delegates are not allowed)");
                break;
            case QueryExpressionSyntax:
                Report(node, "query expression");
                break;
            case RefValueExpressionSyntax or RefTypeExpressionSyntax or MakeRefExpressionSyntax:
                Report(node, "typed reference");
                break;
            case AwaitExpressionSyntax awaitExpr when _model.GetTypeInfo(awaitExpr.Expression).Type is { } awaited
                                                      && MetadataKey(awaited) is not ("Hybrid.Extensions.Abstractions.ExtensionTask" or "Hybrid.Extensions.Abstractions.YieldAwaitable"):
                Report(node, $"await of '{awaited.ToDisplayString()}' (only ExtensionTask and context yields)");
                break;
        }

        if (node is ExpressionSyntax or TypeSyntax or AttributeSyntax or ConstructorInitializerSyntax
            or PrimaryConstructorBaseTypeSyntax)
        {
            var symbol = _model.GetSymbolInfo(node).Symbol;
            CheckSymbol(node, symbol);
            var info = _model.GetTypeInfo(node);
            CheckType(node, info.Type);
            CheckType(node, info.ConvertedType);
            CheckPack(node, symbol);
            CheckPack(node, info.Type);
        }
        if (node is MemberDeclarationSyntax or VariableDeclaratorSyntax or LocalFunctionStatementSyntax or ParameterSyntax
            or BaseTypeDeclarationSyntax)
        {
            CheckDeclaration(node, _model.GetDeclaredSymbol(node));
        }
    }

    private void CheckDeclaration(SyntaxNode node, ISymbol? symbol)
    {
        switch (symbol)
        {
            case INamedTypeSymbol type:
                if (type.BaseType is { } b && !FromSelf(b) && b.SpecialType is not (SpecialType.System_Object or SpecialType.System_ValueType or SpecialType.System_Enum))
                {
                    Report(node, $"base type '{b.ToDisplayString()}' of '{type.Name}'");
                }
                foreach (var i in type.Interfaces.Where(i => !FromSelf(i)))
                {
                    Report(node, $"interface '{i.ToDisplayString()}' on '{type.Name}' (records and BCL interfaces are not supported)");
                }
                foreach (var f in type.GetMembers().OfType<IFieldSymbol>().Where(f => f.IsStatic && !f.IsConst && f.AssociatedSymbol is IPropertySymbol))
                {
                    Report(node, $"static mutable state '{f.AssociatedSymbol!.Name}' (static auto-property)");
                }
                break;
            case IFieldSymbol { IsStatic: true, IsConst: false } field:
                Report(node, $"static mutable state '{field.ContainingType.Name}.{field.Name}' (use const, or pass state through the store)");
                break;
            case IEventSymbol ev:
                Report(node, $"event '{ev.Name}'");
                break;
            case IMethodSymbol method:
                CheckMethodDeclaration(node, method);
                break;
            case ILocalSymbol local:
                CheckType(node, local.Type);
                break;
            case IParameterSymbol parameter:
                CheckType(node, parameter.Type);
                break;
        }
    }

    private void CheckMethodDeclaration(SyntaxNode node, IMethodSymbol method)
    {
        if (method.MethodKind == MethodKind.StaticConstructor)
        {
            Report(node, $"static constructor of '{method.ContainingType.Name}'");
        }
        else if (method.MethodKind == MethodKind.Destructor)
        {
            Report(node, $"finalizer of '{method.ContainingType.Name}'");
        }
        if (method.IsExtern)
        {
            Report(node, $"extern method '{method.Name}'");
        }
        CheckType(node, method.ReturnType);
        var attribute = method.GetAttributes().FirstOrDefault(a => a.AttributeClass is { } c && MetadataKey(c) == "Hybrid.Extensions.Abstractions.ExtensionAttribute");
        if (attribute is null)
        {
            return;
        }
        var ok = method.IsStatic && method.DeclaredAccessibility == Accessibility.Public && !method.IsGenericMethod
                 && method.ContainingType.TypeParameters.IsEmpty
                 && MetadataKey(method.ReturnType) == "Hybrid.Extensions.Abstractions.ExtensionTask"
                 && method.Parameters is [{ RefKind: RefKind.None } p] && MetadataKey(p.Type) == "Hybrid.Extensions.Abstractions.ExtensionContext";
        if (!ok)
        {
            Report(node, $"entry point '{method.Name}': it must be 'public static ExtensionTask {method.Name}(ExtensionContext context)' in a non-generic type");
            return;
        }
        var name = attribute.ConstructorArguments is [{ Value: string s }] ? s : "";
        _entries.Add(new EntryPoint(name, MetadataKey(method.ContainingType), method.Name));
    }

    private void CheckSymbol(SyntaxNode node, ISymbol? symbol)
    {
        switch (symbol)
        {
            case IMethodSymbol method:
                method = method.ReducedFrom ?? method;
                foreach (var arg in method.TypeArguments)
                {
                    CheckType(node, arg);
                }
                if (method.MethodKind == MethodKind.FunctionPointerSignature)
                {
                    Report(node, "function pointer");
                }
                else if (method.ContainingType is { } owner && !FromSelf(owner))
                {
                    CheckType(node, owner);
                    CheckMember(node, owner, method.MetadataName);
                }
                break;
            case IPropertySymbol property when !FromSelf(property.ContainingType):
                CheckType(node, property.ContainingType);
                CheckMember(node, property.ContainingType, (property.GetMethod ?? property.SetMethod)!.MetadataName);
                break;
            case IFieldSymbol field when !FromSelf(field.ContainingType):
                CheckType(node, field.ContainingType);
                CheckMember(node, field.ContainingType, field.MetadataName);
                break;
            case IEventSymbol ev:
                Report(node, $"event '{ev.ToDisplayString()}'");
                break;
            case ITypeSymbol type:
                CheckType(node, type);
                break;
            case IAliasSymbol alias:
                CheckSymbol(node, alias.Target);
                break;
        }
    }

    private void CheckMember(SyntaxNode node, INamedTypeSymbol owner, string member)
    {
        var key = MetadataKey(owner);
        if (Allowlist.SourceType(key) && !Allowlist.SourceMember(key, member))
        {
            Report(node, $"member '{owner.OriginalDefinition.ToDisplayString()}.{member}'");
        }
    }

    private void CheckType(SyntaxNode node, ITypeSymbol? type)
    {
        switch (type)
        {
            case null or IErrorTypeSymbol or ITypeParameterSymbol:
                return;
            case IArrayTypeSymbol array:
                if (array.Rank > 1)
                {
                    Report(node, $"multi-dimensional array '{array.ToDisplayString()}'");
                }
                CheckType(node, array.ElementType);
                return;
            case IPointerTypeSymbol or IFunctionPointerTypeSymbol:
                Report(node, $"pointer type '{type.ToDisplayString()}'");
                return;
            case IDynamicTypeSymbol:
                Report(node, "type 'dynamic'");
                return;
            case INamedTypeSymbol named:
                if (!FromSelf(named) && !Allowlist.SourceType(MetadataKey(named)))
                {
                    Report(node, $"type '{named.OriginalDefinition.ToDisplayString()}'");
                }
                foreach (var arg in named.TypeArguments)
                {
                    CheckType(node, arg);
                }
                CheckType(node, named.ContainingType);
                return;
        }
    }

    private void CheckPack(SyntaxNode node, ISymbol? symbol)
    {
        if (_packNamespace is null || symbol is null || !FromSelf(symbol) || symbol is INamespaceSymbol { IsGlobalNamespace: true })
        {
            return;
        }
        var ns = symbol as INamespaceSymbol ?? symbol.ContainingNamespace;
        while (ns is { ContainingNamespace.IsGlobalNamespace: false })
        {
            ns = ns.ContainingNamespace;
        }
        if (ns is null || ns.Name != _packNamespace)
        {
            Report(node, $"reference to '{symbol.ToDisplayString()}' outside this extension");
        }
    }

    private bool FromSelf(ISymbol symbol) => SymbolEqualityComparer.Default.Equals(symbol.ContainingAssembly, _self);

    /// <summary>The metadata name used by <see cref="Allowlist"/>: <c>Namespace.Name`N</c>, nested joined by <c>+</c>.</summary>
    public static string MetadataKey(ITypeSymbol type)
    {
        if (type is not INamedTypeSymbol named)
        {
            return type.ToDisplayString();
        }
        named = named.OriginalDefinition;
        if (named.ContainingType is { } outer)
        {
            return MetadataKey(outer) + "+" + named.MetadataName;
        }
        var ns = named.ContainingNamespace;
        return ns is null || ns.IsGlobalNamespace ? named.MetadataName : ns.ToDisplayString() + "." + named.MetadataName;
    }
}

/// <summary>An entry point of a compiled extension: its name inside the install, its type and method.</summary>
internal sealed record EntryPoint(string Name, string TypeName, string MethodName);
