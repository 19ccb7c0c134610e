using Mono.Cecil;

namespace Hybrid.Extensions;

/// <summary>Byte sizes of values, used for allocation charges and stack-frame limits (estimates for foreign structs).</summary>
internal static class TypeSizes
{
    /// <summary>Bytes one value of <paramref name="type"/> occupies in an array, a box or a local.</summary>
    public static int Of(TypeReference type, ModuleDefinition module, int depth = 0) => type.MetadataType switch
    {
        MetadataType.Boolean or MetadataType.Byte or MetadataType.SByte => 1,
        MetadataType.Char or MetadataType.Int16 or MetadataType.UInt16 => 2,
        MetadataType.Int32 or MetadataType.UInt32 or MetadataType.Single => 4,
        MetadataType.Int64 or MetadataType.UInt64 or MetadataType.Double or MetadataType.IntPtr or MetadataType.UIntPtr => 8,
        _ when type.GetElementType() is TypeDefinition { IsValueType: true } own && own.Module == module && depth < 8 =>
            Math.Max(1, Instance(own, module, depth + 1)),
        _ when type.IsValueType || type is GenericParameter || type.GetElementType() is GenericInstanceType => 16,
        _ => 8,
    };

    /// <summary>Bytes of the instance fields of a type defined in the extension.</summary>
    public static int Instance(TypeDefinition type, ModuleDefinition module, int depth = 0) =>
        type.Fields.Where(f => !f.IsStatic).Sum(f => Of(f.FieldType, module, depth + 1));
}
