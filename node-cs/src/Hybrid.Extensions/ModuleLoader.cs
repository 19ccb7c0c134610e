using System.Reflection;
using System.Runtime.Loader;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions;

/// <summary>A loaded extension assembly, shared by every install of the same source (refcounted).</summary>
internal sealed class LoadedModule
{
    internal LoadedModule(string hash, PackedLoadContext context, IReadOnlyDictionary<string, Func<ExtensionContext, ExtensionTask>> entries)
    {
        Hash = hash;
        Context = context;
        Entries = entries;
    }

    internal string Hash { get; }
    internal PackedLoadContext Context { get; }

    /// <summary>Entry points by entry name ("" for the default entry).</summary>
    internal IReadOnlyDictionary<string, Func<ExtensionContext, ExtensionTask>> Entries { get; }

    internal int References;
}

/// <summary>
/// A collectible load context holding many extension assemblies (of any tenants). One context per
/// extension would cost ~60 KiB each; packing ~100 per context costs a few KiB each. Extension
/// assemblies resolve nothing themselves: CoreLib, the abstractions and <see cref="Meter"/> come from
/// the default context.
/// </summary>
internal sealed class PackedLoadContext(int id) : AssemblyLoadContext($"hybrid-extensions-{id}", isCollectible: true)
{
    /// <summary>Assemblies ever loaded here (a context is filled once, never refilled).</summary>
    internal int Loaded;

    /// <summary>Assemblies still referenced by an install.</summary>
    internal int Live;

    protected override Assembly? Load(AssemblyName assemblyName) => null;
}

/// <summary>
/// Loads instrumented images into packed contexts, shares them by content hash and unloads a context
/// once every assembly in it is released (so unloads, each costing a blocking GC pass, come in batches
/// of up to <c>perContext</c> extensions). Not thread-safe: the host calls it under its install lock.
/// </summary>
internal sealed class ModuleLoader(int perContext)
{
    private readonly Dictionary<string, LoadedModule> _byHash = new(StringComparer.Ordinal);
    private readonly List<PackedLoadContext> _contexts = [];
    private PackedLoadContext? _current;
    private int _nextId;

    internal int ContextCount => _contexts.Count;
    internal int ModuleCount => _byHash.Count;

    internal LoadedModule? Find(string hash) => _byHash.GetValueOrDefault(hash);

    /// <summary>Loads (or shares) the module and takes one reference on it.</summary>
    internal LoadedModule Acquire(string hash, byte[] image)
    {
        if (!_byHash.TryGetValue(hash, out var module))
        {
            if (_current is null || _current.Loaded >= perContext)
            {
                _current = new PackedLoadContext(_nextId++);
                _contexts.Add(_current);
            }
            var assembly = _current.LoadFromStream(new MemoryStream(image, writable: false));
            module = new LoadedModule(hash, _current, FindEntries(assembly));
            _current.Loaded++;
            _current.Live++;
            _byHash.Add(hash, module);
        }
        module.References++;
        return module;
    }

    /// <summary>Drops one reference; the last one releases the assembly and maybe its whole context.</summary>
    internal void Release(LoadedModule module)
    {
        if (--module.References > 0)
        {
            return;
        }
        _byHash.Remove(module.Hash);
        var context = module.Context;
        if (--context.Live == 0 && context.Loaded >= perContext)
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

    private static Dictionary<string, Func<ExtensionContext, ExtensionTask>> FindEntries(Assembly assembly)
    {
        var entries = new Dictionary<string, Func<ExtensionContext, ExtensionTask>>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes())
        {
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            {
                if (method.GetCustomAttribute<ExtensionAttribute>() is { } attribute)
                {
                    entries.Add(attribute.Name, method.CreateDelegate<Func<ExtensionContext, ExtensionTask>>());
                }
            }
        }
        return entries;
    }
}
