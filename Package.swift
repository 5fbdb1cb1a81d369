// swift-tools-version:6.0
//
// privsep: a language-neutral privilege-separation broker for Linux.
// One module per concern; the C target holds only what Swift cannot call.

import PackageDescription

let package = Package(
    name: "privsep",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "PrivSepJSON", targets: ["PrivSepJSON"]),
        .library(name: "PrivSepWire", targets: ["PrivSepWire"]),
        .library(name: "PrivSepHelper", targets: ["PrivSepHelper"]),
        .library(name: "PrivSepSchema", targets: ["PrivSepSchema"]),
        .library(name: "PrivSepSandbox", targets: ["PrivSepSandbox"]),
        .library(name: "PrivSepBroker", targets: ["PrivSepBroker"]),
        .executable(name: "privsep", targets: ["privsep"]),
        .executable(name: "privsep-sandbox", targets: ["privsep-sandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // Thin C shims: CMSG macros, prctl/syscall wrappers and the like.
        .target(name: "CPrivSep"),
        .systemLibrary(name: "CSeccomp", path: "Sources/CSeccomp", pkgConfig: "libseccomp"),
        // jansson, only for benchmarks that compare against it.
        .systemLibrary(name: "CJansson", path: "Sources/CJansson", pkgConfig: "jansson"),

        // Strict I-JSON value, parser and serializer.
        .target(name: "PrivSepJSON"),
        // Framing, fd passing, the envelope and the standard errors.
        .target(name: "PrivSepWire", dependencies: [
            "PrivSepJSON", "CPrivSep",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // The Swift helper client: async/await, Codable bodies, descriptors as FileDescriptor.
        .target(name: "PrivSepHelper", dependencies: [
            "PrivSepWire", "PrivSepJSON", .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // JSON Schema 2020-12 validator and the schema-directory registry.
        .target(name: "PrivSepSchema", dependencies: ["PrivSepJSON"]),
        // The ordered sandbox sequence applied between spawn and exec.
        .target(name: "PrivSepSandbox", dependencies: ["CPrivSep", "CSeccomp"]),

        // The broker: event loop, routing, policy, supervision and the built-in services.
        .target(name: "PrivSepBroker", dependencies: [
            "PrivSepJSON", "PrivSepWire", "PrivSepSchema", "PrivSepSandbox", "CPrivSep",
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Operator and author tools: policy check, topology graph, code and docs generators.
        .target(name: "PrivSepTools", dependencies: ["PrivSepBroker", "PrivSepSchema", "PrivSepSandbox", "PrivSepJSON"]),
        // The command-line tool, and the broker's process: a static Swift runtime, so the hot
        // path's retains, releases and allocations are direct calls rather than calls through the
        // PLT into libswiftCore.so (measured, file.open on one CPU: the broker's user time per
        // round trip 6.6-8.3 us dynamic, 5.7-6.4 us static; docs/performance.md, eighth round).
        // ArgumentParser brings FoundationEssentials, whose two support archives the static
        // link does not name itself (its archive also brings a linker warning about mktemp: not ours).
        // Release builds only: the debug builds that the tests and the sanitizers run keep the
        // shared runtime (under TSan the static one crashed the broker in free()).
        .executableTarget(name: "privsep", dependencies: [
            "PrivSepJSON", "PrivSepWire", "PrivSepSchema", "PrivSepSandbox", "PrivSepBroker", "PrivSepTools",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ], linkerSettings: [.unsafeFlags(["-static-stdlib", "-l_FoundationCShims", "-l_FoundationCollections"],
                                         .when(configuration: .release))]),
        // The lean, single-threaded launcher the broker posix_spawns for every helper.
        // Fully static: no ld.so relocations on every helper spawn (measured: 4.1 ms CPU dynamic,
        // 3.4 ms with -static-stdlib, 1.5 ms static, for the launcher with --profile none).
        .executableTarget(name: "privsep-sandbox", dependencies: ["PrivSepSandbox"], linkerSettings: [.unsafeFlags(["-static-executable"])]),

        // Benchmarks (not tests): each prints our figure beside its baseline from the same run.
        .executableTarget(name: "bench-json", dependencies: ["PrivSepJSON", "CJansson"], path: "Tests/Benchmarks/json", exclude: ["run.sh"]),
        .executableTarget(name: "bench-schema", dependencies: ["PrivSepSchema", "PrivSepJSON"], path: "Tests/Benchmarks/schema", exclude: ["run.sh"]),
        .executableTarget(name: "wire-demo", dependencies: ["PrivSepWire", "PrivSepJSON"], path: "examples/wire-demo"),
        // Static Swift runtime: the helper runs in a sandbox root that has no /opt/swift.
        .executableTarget(name: "swift-helper", dependencies: ["PrivSepHelper"], path: "examples/swift-helper",
                          linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        // The Swift subject of the end-to-end conformance suite (and the Swift pinger of bench clients).
        .executableTarget(name: "conformance-swift", dependencies: ["PrivSepHelper"], path: "Tests/Conformance/e2e/swift",
                          linkerSettings: [.unsafeFlags(["-static-stdlib"])]),

        .testTarget(name: "PrivSepJSONTests", dependencies: ["PrivSepJSON"]),
        .testTarget(name: "PrivSepWireTests", dependencies: ["PrivSepWire", "PrivSepJSON"]),
        .testTarget(name: "PrivSepHelperTests", dependencies: ["PrivSepHelper", "PrivSepWire", "PrivSepJSON"]),
        .testTarget(name: "PrivSepSchemaTests", dependencies: ["PrivSepSchema", "PrivSepJSON"],
                    exclude: ["embed-builtin.sh"]),
        .testTarget(name: "PrivSepSandboxTests", dependencies: ["PrivSepSandbox", "PrivSepJSON"]),
        .testTarget(name: "PrivSepToolsTests", dependencies: ["PrivSepTools", "PrivSepBroker", "PrivSepHelper", "PrivSepJSON"]),
        .testTarget(name: "PrivSepBrokerTests", dependencies: [
            "PrivSepBroker", "PrivSepWire", "PrivSepJSON", .product(name: "SystemPackage", package: "swift-system"),
        ]),
    ]
)
