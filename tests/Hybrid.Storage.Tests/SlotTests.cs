using static Hybrid.Storage.Tests.Ops;

namespace Hybrid.Storage.Tests;

public class SlotTests
{
    [Fact]
    public void Crc16_CheckString_Is0x31C3() => Assert.Equal(0x31C3, Slot.Crc16(B("123456789")));

    [Fact]
    public void Of_Foo_Is12182() => Assert.Equal(12182, Slot.Of(B("foo")));

    [Fact]
    public void Of_Bar_Is5061() => Assert.Equal(5061, Slot.Of(B("bar")));

    [Fact]
    public void Of_HashTag_HashesOnlyTheTag()
    {
        Assert.Equal(Slot.Of(B("user1000")), Slot.Of(B("{user1000}.following")));
        Assert.Equal(Slot.Of(B("user1000")), Slot.Of(B("{user1000}.followers")));
    }

    [Fact]
    public void Of_EmptyTag_HashesWholeKey()
    {
        Assert.Equal(Slot.Crc16(B("foo{}{bar}")) % 16384, Slot.Of(B("foo{}{bar}")));
        Assert.Equal(Slot.Crc16(B("{}")) % 16384, Slot.Of(B("{}")));
    }

    [Fact]
    public void Of_FirstTagOnly_AndNestedBraces()
    {
        Assert.Equal(Slot.Of(B("{bar")), Slot.Of(B("foo{{bar}}zap")));
        Assert.Equal(Slot.Of(B("bar")), Slot.Of(B("foo{bar}{zap}")));
        Assert.Equal(Slot.Crc16(B("foo{bar")) % 16384, Slot.Of(B("foo{bar")));
    }
}
