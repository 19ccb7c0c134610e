// Native transport build (owned by the transport work).
module Native

open Common

/// Builds transport-native when it has sources; returns true when a library was built.
let build () : bool =
    if System.IO.File.Exists(System.IO.Path.Combine(root, "transport-native", "CMakeLists.txt")) then
        aptInstall [ "build-essential"; "cmake"; "pkg-config"; "libdpdk-dev" ]
        exec "cmake" "-S transport-native -B transport-native/build -DCMAKE_BUILD_TYPE=Release"
        exec "cmake" "--build transport-native/build -j 2"
        true
    else false
