using Microsoft.Win32.SafeHandles;

namespace Hybrid.Transport.Dpdk;

/// <summary>Owns a hyb_port_t*: closed exactly once, after the last call that uses it has returned.</summary>
internal sealed class HybPortHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    /// <summary>Used by the interop marshaller.</summary>
    public HybPortHandle()
        : base(ownsHandle: true)
    {
    }

    public HybPortHandle(nint handle)
        : base(ownsHandle: true) => SetHandle(handle);

    protected override bool ReleaseHandle()
    {
        HybNative.PortClose(handle);
        return true;
    }
}
