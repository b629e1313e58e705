// swift-tools-version:6.1
// Runnel micro-benchmarks (ARCHITECTURE.md section 7): a separate package so the main build never
// resolves or compiles ordo-one/benchmark. Run with `tools/bench-micro`, or from this directory:
//   swift package --allow-writing-to-package-directory benchmark
// ordo-one/benchmark resolves here only with tools-version 6.1+ and the MallocInterposer trait alone
// (ARCHITECTURE.md section 8).
import PackageDescription

let package = Package(
    name: "RunnelBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Runnel", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // ordo-one/benchmark suites: the plugin finds them under Benchmarks/<target>/.
        .executableTarget(
            name: "RunnelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "CRC32C", package: "Runnel"),
                .product(name: "RunnelWire", package: "Runnel"),
                .product(name: "RunnelLog", package: "Runnel"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/RunnelBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
        // A plain timer: CRC32C GB/s over 1 GiB for the hardware and portable paths.
        .executableTarget(
            name: "crc32c-throughput",
            dependencies: [
                .product(name: "CRC32C", package: "Runnel"),
            ]
        ),
    ]
)
