namespace Hybrid.Extensions.Abstractions;

/// <summary>
/// Marks an entry point of a tenant extension: a <c>public static</c> method taking one
/// <see cref="ExtensionContext"/> and returning <see cref="ExtensionTask"/> (usually <c>async</c>).
/// An installed source may hold several entry points; an unnamed one is invoked under the install name,
/// a named one under <c>installName.entryName</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class ExtensionAttribute : Attribute
{
    /// <summary>An entry invoked under the install name itself.</summary>
    public ExtensionAttribute() => Name = "";

    /// <summary>An entry invoked under <c>installName.name</c>.</summary>
    public ExtensionAttribute(string name) => Name = name;

    /// <summary>The entry's name inside its install ("" for the default entry).</summary>
    public string Name { get; }
}
