using System.Buffers.Binary;
using Hybrid.Extensions.Abstractions;

namespace Hybrid.Extensions.Tests;

/// <summary>The author-facing package: vectorised aggregates against scalar twins, MockStore, coroutines outside a host.</summary>
public sealed class AbstractionsTests
{
    public static TheoryData<int> Lengths => new() { 0, 1, 7, 8, 9, 31, 32, 33, 255, 1000, 4099 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SumInt64_AgreesWithScalar(int count)
    {
        var bytes = Random(count * 8 + 3, count);
        Assert.Equal(ScalarSum(bytes, 8, 0, 8), Aggregate.SumInt64(bytes));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SumInt32_AgreesWithScalar_WithoutOverflow(int count)
    {
        var bytes = Random(count * 4 + 2, count + 1);
        Assert.Equal(ScalarSum(bytes, 4, 0, 4), Aggregate.SumInt32(bytes));
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void SumInt64Field_AgreesWithScalar(int count)
    {
        const int Stride = 20;
        const int Offset = 5;
        var bytes = Random((count * Stride) + 11, count + 2);
        Assert.Equal(ScalarSum(bytes, Stride, Offset, 8), Aggregate.SumInt64Field(bytes, Stride, Offset));
    }

    [Fact]
    public void MockStore_RunsAnExtensionWithoutAHost_AndYieldsDoNotSuspend()
    {
        var store = new MockStore();
        store.Put(5, 1, "a"u8, Bytes.Of(10L));
        store.Put(5, 1, "b"u8, Bytes.Of(32L));
        store.Put(6, 1, "a"u8, Bytes.Of(1000L));
        var ctx = new ExtensionContext(store, 5, "ab"u8);
        var task = SumTwo(ctx);
        Assert.True(task.IsCompleted);
        Assert.Null(task.Exception);
        Assert.Equal(42, BinaryPrimitives.ReadInt64LittleEndian(ctx.Response));
        Assert.Equal(3, store.Count); // tenant 6 kept its own record "a"
    }

    [Fact]
    public void NullStore_FindsNothing()
    {
        var ctx = new ExtensionContext(NullStore.Instance, 1, default);
        Assert.False(ctx.TryGet(1, "k"u8, out _));
        ctx.Put(1, "k"u8, "v"u8);
        Assert.True(ctx.Get(1, "k"u8).IsEmpty);
    }

    [Fact]
    public void Response_OverItsLimit_Throws()
    {
        var ctx = new ExtensionContext(NullStore.Instance, 1, default, maxResponseBytes: 12);
        ctx.WriteInt64(1);
        Assert.Throws<InvalidOperationException>(() => ctx.WriteInt64(2));
        Assert.Equal(8, ctx.Response.Length);
    }

    private static async ExtensionTask SumTwo(ExtensionContext ctx)
    {
        long sum = 0;
        foreach (var b in ctx.Args.ToArray())
        {
            await ctx.Yield();
            sum += BinaryPrimitives.ReadInt64LittleEndian(ctx.Get(1, [b]));
        }
        ctx.WriteInt64(sum);
    }

    /// <summary>The scalar twin: one little-endian field of <paramref name="width"/> bytes per whole record.</summary>
    private static long ScalarSum(byte[] bytes, int stride, int offset, int width)
    {
        long sum = 0;
        for (var i = 0; i + stride <= bytes.Length; i += stride)
        {
            sum += width == 8 ? BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(i + offset)) : BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(i + offset));
        }
        return sum;
    }

    private static byte[] Random(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
