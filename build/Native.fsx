// Native transport build (owned by the transport work): transport-native/ with CMake over Debian's DPDK.
module Native

open Common

/// Builds transport-native when it has sources, runs its ctest, and returns true when a library was built.
/// The library lands in transport-native/build/libhyb_transport.so, where Hybrid.Transport looks for it.
let build () : bool =
    if System.IO.File.Exists(System.IO.Path.Combine(root, "transport-native", "CMakeLists.txt")) then
        aptInstall [ "build-essential"; "cmake"; "pkg-config"; "libdpdk-dev" ]
        exec "cmake" "-S transport-native -B transport-native/build -DCMAKE_BUILD_TYPE=Release"
        exec "cmake" "--build transport-native/build -j 2"
        exec "ctest" "--test-dir transport-native/build --output-on-failure"
        true
    else false
