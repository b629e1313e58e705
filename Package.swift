// swift-tools-version:6.0
// Runnel: a Kafka-compatible distributed log, built the KRaft way.
// Layering (ARCHITECTURE.md section 3): imports point down only; `tools/lint-imports` checks it.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Runnel",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "runnel", targets: ["runnel"]),
        // For the separate Benchmarks/ package (a path dependency can only use products).
        .library(name: "RunnelWire", targets: ["RunnelWire"]),
        .library(name: "CRC32C", targets: ["CRC32C"]),
        .library(name: "RunnelLog", targets: ["RunnelLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    ],
    targets: [
        // L0: vocabulary types, limits, clocks, seeded randomness.
        .target(name: "RunnelCore", swiftSettings: strict),
        // L1: CRC32C in C (SSE4.2 with a portable fallback).
        .target(name: "CRC32C"),
        // L1: page-cache writeback and drop for the log's drop-behind (sync_file_range, fadvise).
        .target(name: "CPageCache"),
        // L1: the system compression libraries Kafka's codecs use (Debian's libzstd-dev,
        // liblz4-dev, libsnappy-dev; tools/test and tools/run install them).
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CLZ4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSnappy", providers: [.apt(["libsnappy-dev"])]),
        // L1: Kafka's record-batch codecs (gzip, snappy, lz4, zstd) over those libraries.
        .target(
            name: "RunnelCodecs",
            dependencies: [
                "CZstd", "CLZ4", "CSnappy",
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L1: Kafka wire primitives, record batches, generated messages and metadata records.
        .target(
            name: "RunnelWire",
            dependencies: [
                "RunnelCore", "CRC32C", "RunnelCodecs",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L2 (pure): KRaft consensus as a value you step.
        .target(name: "RunnelRaft", dependencies: ["RunnelCore"], swiftSettings: strict),
        // L2 (pure): the per-partition replication core: leader and follower state, ISR changes,
        // high watermark, acks=all waits, truncation points.
        .target(name: "RunnelReplication", dependencies: ["RunnelCore", "RunnelWire"], swiftSettings: strict),
        // L2 (pure): the classic consumer-group coordinator and its __consumer_offsets records.
        .target(
            name: "RunnelGroups",
            dependencies: ["RunnelCore", "RunnelWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // L2 (pure): the transaction coordinator and its __transaction_state records.
        .target(
            name: "RunnelTransactions",
            dependencies: ["RunnelCore", "RunnelWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // L2 (pure): metadata image, delta and replay.
        .target(
            name: "RunnelMetadata",
            dependencies: [
                "RunnelCore", "RunnelWire",
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L2 (pure): principals, ACLs and Kafka's StandardAuthorizer rules, SASL PLAIN and SCRAM
        // state machines (crypto from swift-crypto), ssl.principal.mapping.rules.
        .target(
            name: "RunnelSecurity",
            dependencies: [
                "RunnelCore", "RunnelWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // L2 (pure): controller commands returning records and a response.
        .target(
            name: "RunnelController",
            dependencies: ["RunnelCore", "RunnelWire", "RunnelMetadata", "RunnelSecurity"],
            swiftSettings: strict
        ),
        // L3: segmented log on a Disk.
        .target(
            name: "RunnelLog",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelCodecs", "CPageCache",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L3: metadata snapshots as SQLite files (GRDB on the system SQLite).
        .target(
            name: "RunnelSnapshotStore",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelMetadata",
                .product(name: "GRDB", package: "GRDB.swift"),
                // SQLite's C API for binding a million rows' parameters without boxing them.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // L4: the metadata quorum driver (single voter for now; Raft comes next).
        .target(
            name: "RunnelQuorum",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelMetadata", "RunnelController", "RunnelLog", "RunnelRaft",
                "RunnelSnapshotStore", "RunnelSecurity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // L4: the NIO shell.
        .target(
            name: "RunnelNetwork",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelSecurity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict
        ),
        // L4: broker request handlers, purgatories, partitions.
        .target(
            name: "RunnelBroker",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelMetadata", "RunnelController", "RunnelLog", "RunnelReplication",
                "RunnelGroups", "RunnelSecurity",
                "RunnelTransactions",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // L4: a small Kafka client for the CLI, tests and tools.
        .target(
            name: "RunnelClient",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelNetwork", "RunnelSecurity",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L5: process composition, configuration, lifecycle.
        .target(
            name: "RunnelNode",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelMetadata", "RunnelController", "RunnelLog",
                "RunnelBroker", "RunnelNetwork", "RunnelQuorum", "RunnelRaft", "RunnelReplication", "RunnelSecurity",
                "RunnelSnapshotStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // L5: the `runnel` command.
        .executableTarget(
            name: "runnel",
            dependencies: [
                "RunnelNode", "RunnelCore", "RunnelWire", "RunnelLog", "RunnelClient", "RunnelNetwork",
                "RunnelSnapshotStore", "RunnelMetadata", "RunnelQuorum",
                "RunnelSecurity", "RunnelController", "RunnelGroups", "RunnelTransactions",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                // `runnel dev --secure` makes its CA and certificates.
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // L5: the deterministic simulator and its command.
        .target(
            name: "RunnelSim",
            dependencies: [
                "RunnelCore", "RunnelWire", "RunnelRaft", "RunnelLog", "RunnelQuorum",
                "RunnelMetadata", "RunnelController", "RunnelReplication", "RunnelBroker", "RunnelGroups",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "runnel-sim",
            dependencies: [
                "RunnelSim", "RunnelCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Tool: the spec generator (Specs/*.json -> Swift).
        .target(name: "RunnelSpecGen", path: "tools/specgen/RunnelSpecGen"),
        .executableTarget(
            name: "runnel-specgen", dependencies: ["RunnelSpecGen"], path: "tools/specgen/runnel-specgen"),

        // Helpers the unit test targets share (scratch directories, a disk tests can step into); not
        // part of any product.
        .target(
            name: "RunnelTestSupport", dependencies: ["RunnelLog", .product(name: "NIOCore", package: "swift-nio")],
            path: "Tests/RunnelTestSupport"),
        .testTarget(name: "RunnelCoreTests", dependencies: ["RunnelCore"]),
        .testTarget(
            name: "RunnelCodecsTests", dependencies: ["RunnelCodecs", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "RunnelWireTests", dependencies: ["RunnelWire", "RunnelCore", "CRC32C"], resources: [.copy("Vectors")]
        ),
        .testTarget(
            name: "RunnelLogTests",
            dependencies: ["RunnelLog", "RunnelWire", "RunnelCore", "RunnelTestSupport", "RunnelCodecs"]),
        .testTarget(
            name: "RunnelMetadataTests",
            dependencies: [
                "RunnelMetadata", "RunnelController", "RunnelSecurity", "RunnelWire", "RunnelCore",
                "RunnelSnapshotStore", "RunnelTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .testTarget(
            name: "RunnelSecurityTests",
            dependencies: ["RunnelSecurity", "RunnelWire", "RunnelCore", "RunnelTestSupport"], exclude: ["Transcripts"]),
        .testTarget(
            name: "RunnelBrokerTests",
            dependencies: [
                "RunnelBroker", "RunnelNetwork", "RunnelNode", "RunnelWire", "RunnelCore", "RunnelLog",
                "RunnelTestSupport", "RunnelCodecs",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "RunnelSpecGenTests", dependencies: ["RunnelSpecGen"]),
        .testTarget(
            name: "RunnelRaftTests", dependencies: ["RunnelRaft", "RunnelCore", "RunnelTestSupport"],
            exclude: ["Transcripts"]),
        .testTarget(
            name: "RunnelReplicationTests",
            dependencies: ["RunnelReplication", "RunnelCore", "RunnelWire", "RunnelTestSupport"],
            exclude: ["Transcripts"]),
        .testTarget(
            name: "RunnelTransactionsTests",
            dependencies: [
                "RunnelTransactions", "RunnelWire", "RunnelCore", "RunnelTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ], exclude: ["Transcripts"]),
        .testTarget(
            name: "RunnelGroupsTests",
            dependencies: ["RunnelGroups", "RunnelWire", "RunnelCore", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "RunnelClientTests",
            dependencies: [
                "RunnelClient", "RunnelWire", "RunnelCodecs", .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .testTarget(
            name: "RunnelCLITests",
            dependencies: ["runnel", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "RunnelSimTests",
            dependencies: [
                "RunnelSim", "RunnelRaft", "RunnelCore", "RunnelGroups", "RunnelQuorum", "RunnelWire",
                "RunnelController", "RunnelMetadata",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
    ]
)
