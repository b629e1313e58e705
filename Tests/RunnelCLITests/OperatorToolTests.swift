// The operator tools of issue 19 as pure functions: `log-dirs describe`'s JSON in
// kafka-log-dirs' shape and its --topic-list filter, `features describe`'s lines as
// kafka-features prints them, `storage info`'s problems, and their argument refusals.
import ArgumentParser
import RunnelClient
import RunnelCore
import RunnelNode
import RunnelWire
import Testing
@testable import runnel

@Suite struct OperatorToolTests {
    static let server = ["--bootstrap-server", "127.0.0.1:9092"]

    static let brokers: [(Int32, [LogDirInfo])] = [
        (
            4,
            [
                LogDirInfo(
                    path: "/data/a", error: .none, totalBytes: 1000, usableBytes: 400,
                    replicas: [
                        ReplicaLogDirInfo(topic: "audit", partition: 0, sizeBytes: 5, offsetLag: 0, isFuture: false),
                        ReplicaLogDirInfo(topic: "orders", partition: 1, sizeBytes: 70, offsetLag: 3, isFuture: false),
                    ]),
                LogDirInfo(path: "/data/b", error: .kafkaStorageError, totalBytes: nil, usableBytes: nil, replicas: []),
            ]
        )
    ]

    @Test("log-dirs --json has kafka-log-dirs' shape, with each dir's space beside it")
    func logDirsJSON() {
        #expect(
            LogDirsDescribe.json(Self.brokers).render(pretty: false)
                == #"{"version":1,"brokers":[{"broker":4,"logDirs":["#
                + #"{"logDir":"/data/a","error":null,"totalBytes":1000,"usableBytes":400,"partitions":["#
                + #"{"partition":"audit-0","size":5,"offsetLag":0,"isFuture":false},"#
                + #"{"partition":"orders-1","size":70,"offsetLag":3,"isFuture":false}]},"#
                + #"{"logDir":"/data/b","error":"KAFKA_STORAGE_ERROR","totalBytes":null,"usableBytes":null,"partitions":[]}]}]}"#
        )
    }

    @Test("--topic-list keeps every dir and only the replicas of the topics named")
    func topicFilter() {
        let filtered = LogDirsDescribe.filter(Self.brokers, topics: ["orders"])
        #expect(filtered[0].1.map(\.path) == ["/data/a", "/data/b"])
        #expect(filtered[0].1[0].replicas.map(\.topic) == ["orders"])
        #expect(LogDirsDescribe.filter(Self.brokers, topics: [])[0].1[0].replicas.count == 2)
    }

    @Test("features describe prints kafka-features' line, metadata.version levels by name")
    func featureLines() {
        let features = FeatureMetadata(
            supported: [
                .init(name: "metadata.version", minVersion: 1, maxVersion: 21),
                .init(name: "zeta.version", minVersion: 0, maxVersion: 2),
            ], finalized: ["metadata.version": 21], finalizedEpoch: 42)
        #expect(
            FeaturesDescribe.lines(features) == [
                "Feature: metadata.version\tSupportedMinVersion: 3.0-IV1\tSupportedMaxVersion: 3.9-IV0\tFinalizedVersionLevel: 3.9-IV0\tEpoch: 42",
                "Feature: zeta.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 2\tFinalizedVersionLevel: 0\tEpoch: 42",
            ])
        var noEpoch = features
        noEpoch.finalizedEpoch = nil
        #expect(FeaturesDescribe.lines(noEpoch)[0].hasSuffix("\tEpoch: -"))
        #expect(
            FeaturesDescribe.levelName("metadata.version", 22) == "UNKNOWN 22",
            "a level this build does not know, as kafka-features prints it")
        #expect(FeaturesDescribe.levelName("metadata.version", 0) == "0")
    }

    @Test("storage info: unformatted, missing, another node's and another cluster's dirs, one directory id twice")
    func storageProblems() {
        typealias Dir = StorageInfo.Directory
        let id = KafkaUUID("JcX-TKjJQBCxmIXxjAUzMA")!
        func formatted(_ path: String, node: Int32 = 1, cluster: String = "c1", directoryId: KafkaUUID = .zero) -> Dir {
            Dir(
                path: path, isLogDir: true, isMetadataLogDir: false,
                state: .formatted(MetaProperties(nodeId: node, clusterId: cluster, directoryId: directoryId)))
        }
        #expect(StorageInfo.findProblems(in: [formatted("/a", directoryId: id)], nodeId: 1) == [])
        #expect(
            StorageInfo.findProblems(
                in: [
                    Dir(path: "/u", isLogDir: true, isMetadataLogDir: false, state: .unformatted),
                    Dir(path: "/m", isLogDir: false, isMetadataLogDir: true, state: .missing),
                    formatted("/a", directoryId: id), formatted("/b", node: 2), formatted("/c", cluster: "c2"),
                    formatted("/d", directoryId: id),
                ], nodeId: 1)
                == [
                    "/u is not formatted.", "/m does not exist.", "/b belongs to node 2, but node.id is 1.",
                    "/c belongs to cluster c2, but /a belongs to cluster c1.",
                    "/d has the same directory.id (JcX-TKjJQBCxmIXxjAUzMA) as /a; format one of them again.",
                ])
    }

    @Test("bad arguments of the new tools end in one sentence")
    func refusals() {
        func refusal(_ arguments: [String]) -> String? {
            do {
                _ = try Runnel.parseAsRoot(arguments)
                return nil
            } catch {
                return usageFailure(error, arguments: arguments)
            }
        }
        #expect(refusal(["log-dirs", "describe", "--broker-list", "1,2", "--topic-list", "a,b"] + Self.server) == nil)
        #expect(
            refusal(["log-dirs", "describe", "--broker-list", "1,x"] + Self.server)
                == "--broker-list expects broker ids as 1,2,3, not \"1,x\" (see runnel log-dirs describe --help).")
        #expect(
            refusal(["log-dirs", "describe", "--topic-list", ","] + Self.server)
                == "--topic-list names no topic (\",\") (see runnel log-dirs describe --help).")
        #expect(refusal(["features", "describe"] + Self.server) == nil)
        #expect(refusal(["storage", "info", "-c", "x.properties", "--json"]) == nil)
        let missing = refusal(["storage", "info"])
        #expect(missing?.hasSuffix("(see runnel storage info --help).") == true)
    }
}
