using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Hybrid.Extensions;

/// <summary>
/// Inserts <c>await ExtensionContext.PreemptionPoint();</c> at the top of every loop body inside an
/// async method or async local function, so long loops give the worker back when their time slice
/// ends. The statement is inserted without line breaks, so line numbers of the tenant's source stay
/// exact in every message. A loop that keeps a span alive across iterations cannot hold a yield
/// point; the compiler says so and <see cref="Remove"/> takes that one out again (the loop stays
/// bounded by the CPU budget, it is just not preemptible).
/// </summary>
internal sealed class PreemptionRewriter : CSharpSyntaxRewriter
{
    /// <summary>Marks the inserted statements.</summary>
    public static readonly SyntaxAnnotation Marker = new("hybrid-preemption-point");

    private static readonly StatementSyntax s_point = SyntaxFactory.ParseStatement(
        "await global::Hybrid.Extensions.Abstractions.ExtensionContext.PreemptionPoint(); ");

    private int _asyncDepth;

    /// <summary>Returns the tree with preemption points in the loops of async code.</summary>
    public static SyntaxTree Rewrite(SyntaxTree tree)
    {
        var root = new PreemptionRewriter().Visit(tree.GetRoot());
        return tree.WithRootAndOptions(root!, tree.Options);
    }

    /// <summary>Removes the inserted statements that contain any of the given positions.</summary>
    public static SyntaxTree Remove(SyntaxTree tree, IEnumerable<int> positions)
    {
        var root = tree.GetRoot();
        var victims = root.GetAnnotatedNodes(Marker)
            .Where(n => positions.Any(p => n.FullSpan.Contains(p)))
            .ToList();
        return tree.WithRootAndOptions(root.RemoveNodes(victims, SyntaxRemoveOptions.KeepNoTrivia)!, tree.Options);
    }

    public override SyntaxNode? VisitMethodDeclaration(MethodDeclarationSyntax node) =>
        InScope(node.Modifiers.Any(SyntaxKind.AsyncKeyword), () => base.VisitMethodDeclaration(node));

    public override SyntaxNode? VisitLocalFunctionStatement(LocalFunctionStatementSyntax node) =>
        InScope(node.Modifiers.Any(SyntaxKind.AsyncKeyword), () => base.VisitLocalFunctionStatement(node));

    public override SyntaxNode? Visit(SyntaxNode? node) => base.Visit(node) switch
    {
        WhileStatementSyntax loop => loop.WithStatement(WithPoint(loop.Statement)),
        DoStatementSyntax loop => loop.WithStatement(WithPoint(loop.Statement)),
        ForStatementSyntax loop => loop.WithStatement(WithPoint(loop.Statement)),
        ForEachStatementSyntax loop => loop.WithStatement(WithPoint(loop.Statement)),
        var other => other,
    };

    private SyntaxNode? InScope(bool isAsync, Func<SyntaxNode?> visit)
    {
        // A non-async local function inside an async method cannot await: depth restarts at 0 there.
        var saved = _asyncDepth;
        _asyncDepth = isAsync ? 1 : 0;
        try
        {
            return visit();
        }
        finally
        {
            _asyncDepth = saved;
        }
    }

    private StatementSyntax WithPoint(StatementSyntax body)
    {
        if (_asyncDepth == 0)
        {
            return body;
        }
        var point = s_point.WithAdditionalAnnotations(Marker);
        return body is BlockSyntax block
            ? block.WithStatements(block.Statements.Insert(0, point))
            : SyntaxFactory.Block(point, body.WithoutLeadingTrivia()).WithLeadingTrivia(body.GetLeadingTrivia());
    }
}
