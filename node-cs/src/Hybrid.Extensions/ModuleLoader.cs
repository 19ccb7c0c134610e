using System.Reflection;
using System.Runtime.Loader;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>A loaded extension assembly, shared by every install of the same source (refcounted).</summary>
internal sealed class LoadedModule
{
    internal LoadedModule(string hash, PackedLoadContext context, IReadOnlyDictionary<string, Func<ExtensionContext, ExtensionTask>> entries, string? source)
    {
        Hash = hash;
        Context = context;
        Entries = entries;
        Source = source;
    }

    internal string Hash { get; }
    internal PackedLoadContext Context { get; }

    /// <summary>The source, kept while the module is loaded on its own so that it can be packed; null once packed (or unknown).</summary>
    internal string? Source { get; }

    /// <summary>True when the module is one of many sources compiled into one pack assembly.</summary>
    internal bool Packed => Context.IsPack;

    /// <summary>Entry points by entry name ("" for the default entry).</summary>
    internal IReadOnlyDictionary<string, Func<ExtensionContext, ExtensionTask>> Entries { get; }

    internal int References;
}

/// <summary>
/// A collectible load context: either a staging context holding many single-extension assemblies (installs land
/// here first, loaded as they come), or a pack context holding one assembly into which many tenants' sources were
/// compiled together. A context per extension would cost ~60 KiB each and an assembly ~30 KiB; a pack costs a few
/// KiB per extension. Extension assemblies resolve nothing themselves: CoreLib, the abstractions and
/// <see cref="Meter"/> come from the default context.
/// </summary>
internal sealed class PackedLoadContext(int id, bool isPack) : AssemblyLoadContext($"hybrid-extensions-{id}", isCollectible: true)
{
    /// <summary>Modules ever loaded here (a context is filled once, never refilled).</summary>
    internal int Loaded;

    /// <summary>Modules still referenced by an install.</summary>
    internal int Live;

    /// <summary>A pack context (one assembly, filled at once) rather than a staging one.</summary>
    internal bool IsPack { get; } = isPack;

    /// <summary>Takes no more modules: it unloads when <see cref="Live"/> drops to zero.</summary>
    internal bool Full(int perContext) => IsPack || Loaded >= perContext;

    protected override Assembly? Load(AssemblyName assemblyName) => null;
}

/// <summary>
/// Loads instrumented images into staging contexts, shares them by content hash, replaces staged modules by their
/// packed versions (<see cref="LoadPack"/>) and unloads a context once every module in it is released or packed (so
/// unloads, each costing a blocking GC pass, come in batches of up to <c>perContext</c> extensions). Not
/// thread-safe: the host calls it under its install lock.
/// </summary>
internal sealed class ModuleLoader(int perContext)
{
    private readonly Dictionary<string, LoadedModule> _byHash = new(StringComparer.Ordinal);
    private readonly List<PackedLoadContext> _contexts = [];
    private PackedLoadContext? _current;
    private int _nextId;

    private const string PackPrefix = "__HybridPack_";

    /// <summary>
    /// The namespace a source is wrapped in when packed: a single identifier naming the source's hash, which no
    /// source can reach unless it already compiled on its own (where the name does not exist).
    /// </summary>
    internal static string PackNamespace(string hash) => PackPrefix + hash[..32];

    internal int ContextCount => _contexts.Count;
    internal int ModuleCount => _byHash.Count;
    internal int PackCount => _contexts.Count(c => c.IsPack);

    /// <summary>Loaded modules not packed yet whose source is known (candidates for <see cref="LoadPack"/>).</summary>
    internal IEnumerable<LoadedModule> Staged => _byHash.Values.Where(m => !m.Packed && m.Source is not null);

    internal LoadedModule? Find(string hash) => _byHash.GetValueOrDefault(hash);

    /// <summary>Loads (or shares) the module and takes one reference on it; <paramref name="source"/> is kept for packing.</summary>
    internal LoadedModule Acquire(string hash, byte[] image, string? source)
    {
        if (!_byHash.TryGetValue(hash, out var module))
        {
            if (_current is null || _current.Full(perContext))
            {
                _current = new PackedLoadContext(_nextId++, isPack: false);
                _contexts.Add(_current);
            }
            var assembly = _current.LoadFromStream(new MemoryStream(image, writable: false));
            module = new LoadedModule(hash, _current, FindEntries(assembly).Values.SelectMany(e => e).ToDictionary(StringComparer.Ordinal), source);
            _current.Loaded++;
            _current.Live++;
            _byHash.Add(hash, module);
        }
        module.References++;
        return module;
    }

    /// <summary>
    /// Loads a pack assembly into a context of its own and makes it the module of each of <paramref name="hashes"/>
    /// that is still loaded (or, at startup, of each one <paramref name="wanted"/> accepts, with no reference yet).
    /// A replaced module leaves its staging context, which unloads once it is full and empty. Returns the new
    /// modules by hash; the caller re-points its handles at them.
    /// </summary>
    internal Dictionary<string, LoadedModule> LoadPack(byte[] image, IReadOnlyCollection<string> hashes, Func<string, bool> wanted)
    {
        var context = new PackedLoadContext(_nextId++, isPack: true);
        var entries = FindEntries(context.LoadFromStream(new MemoryStream(image, writable: false)));
        var result = new Dictionary<string, LoadedModule>(StringComparer.Ordinal);
        foreach (var hash in hashes)
        {
            var old = _byHash.GetValueOrDefault(hash);
            if ((old is null && !wanted(hash)) || !entries.TryGetValue(PackNamespace(hash), out var moduleEntries))
            {
                continue;
            }
            var module = new LoadedModule(hash, context, moduleEntries, source: null);
            if (old is not null)
            {
                module.References = old.References;
                Leave(old);
            }
            _byHash[hash] = module;
            context.Loaded++;
            context.Live++;
            result.Add(hash, module);
        }
        if (context.Live == 0)
        {
            context.Unload();
        }
        else
        {
            _contexts.Add(context);
        }
        return result;
    }

    /// <summary>Drops one reference; the last one releases the assembly and maybe its whole context.</summary>
    internal void Release(LoadedModule module)
    {
        if (--module.References > 0)
        {
            return;
        }
        _byHash.Remove(module.Hash);
        Leave(module);
    }

    private void Leave(LoadedModule module)
    {
        var context = module.Context;
        if (--context.Live == 0 && context.Full(perContext))
        {
            _contexts.Remove(context);
            if (context == _current)
            {
                _current = null;
            }
            // Invocations still running keep the code alive; the runtime frees it after they end.
            context.Unload();
        }
    }

    /// <summary>Entry points by the first segment of their type's namespace ("" for none; a pack member's namespace) and entry name.</summary>
    private static Dictionary<string, Dictionary<string, Func<ExtensionContext, ExtensionTask>>> FindEntries(Assembly assembly)
    {
        var entries = new Dictionary<string, Dictionary<string, Func<ExtensionContext, ExtensionTask>>>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (method.GetCustomAttribute<ExtensionAttribute>() is { } attribute)
                {
                    var root = type.Namespace is { } ns && ns.StartsWith(PackPrefix, StringComparison.Ordinal) ? ns.Split('.')[0] : "";
                    if (!entries.TryGetValue(root, out var byName))
                    {
                        entries[root] = byName = new Dictionary<string, Func<ExtensionContext, ExtensionTask>>(StringComparer.Ordinal);
                    }
                    byName.Add(attribute.Name, method.CreateDelegate<Func<ExtensionContext, ExtensionTask>>());
                }
            }
        }
        return entries;
    }
}
