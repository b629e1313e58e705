import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire

extension Broker {
    /// The versions this broker serves: what librdkafka 2.x, kafka-python, aiokafka and the Java
    /// client 3.x/4.x negotiate. Record batches are magic v2 only, so Produce starts at 3 and Fetch
    /// at 4. The transactions v2 versions (Produce v12, EndTxn v5, TxnOffsetCommit v5) are
    /// advertised whatever `transaction.version` is finalized, as a Kafka 4.x broker does: the
    /// client gates them (Kafka's request builders cap at `LAST_STABLE_VERSION_BEFORE_TRANSACTION_V2`
    /// until ApiVersions finalizes transaction.version 2), and the broker follows the version it
    /// receives (Kafka's `transactionVersionForEndTxn`).
    public static let supportedVersions: [ApiKey: ClosedRange<Int16>] = [
        .produce: 3...12,
        .fetch: 4...17,
        .listOffsets: 1...10,
        .metadata: 0...13,
        // Paged topic descriptions (KIP-966), what the Java admin's describeTopics uses since 3.8.
        .describeTopicPartitions: 0...0,
        .apiVersions: 0...4,
        .createTopics: 2...7,
        .deleteTopics: 1...6,
        .deleteRecords: 0...2,
        .describeConfigs: 1...4,
        .alterConfigs: 0...2,
        .createPartitions: 0...3,
        .incrementalAlterConfigs: 0...1,
        .describeCluster: 0...1,
        .describeQuorum: 0...2,
        // Each broker's own log dirs (v4: their total and usable bytes, KIP-827).
        .describeLogDirs: 0...4,
        .initProducerId: 0...5,
        // Transactions v1 (KIP-98, KIP-890 part 1) and v2 (KIP-890 part 2: EndTxn v5 answers the
        // bumped epoch, TxnOffsetCommit v5 adds the group's partition to the transaction).
        .addPartitionsToTxn: 0...5,
        .addOffsetsToTxn: 0...4,
        .endTxn: 0...5,
        .txnOffsetCommit: 0...5,
        .writeTxnMarkers: 0...2,
        // Finding and aborting hanging transactions (KIP-664; ListTransactions v1 is KIP-994).
        .describeProducers: 0...0,
        .describeTransactions: 0...0,
        .listTransactions: 0...1,
        .offsetForLeaderEpoch: 0...4,
        .electLeaders: 0...2,
        // Partition reassignment (KIP-455), answered by the active controller.
        .alterPartitionReassignments: 0...0,
        .listPartitionReassignments: 0...0,
        .findCoordinator: 0...4,
        .joinGroup: 0...9,
        .syncGroup: 0...5,
        .heartbeat: 0...4,
        .leaveGroup: 0...5,
        .offsetCommit: 0...9,
        .offsetFetch: 0...9,
        .offsetDelete: 0...0,
        .listGroups: 0...5,
        .describeGroups: 0...5,
        .deleteGroups: 0...2,
        // Answered by the connection's authenticator (RunnelNetwork) before any other request.
        .saslHandshake: 0...1,
        .saslAuthenticate: 0...2,
        .describeAcls: 0...3,
        .createAcls: 0...3,
        .deleteAcls: 0...3,
        .describeUserScramCredentials: 0...0,
        .alterUserScramCredentials: 0...0,
        .updateFeatures: 0...1,
        .unregisterBroker: 0...0,
        .describeClientQuotas: 0...1,
        .alterClientQuotas: 0...1,
    ]

    func apiVersions(_ request: IncomingRequest, context: RequestContext) -> RequestOutcome {
        let version = request.header.apiVersion
        var response = ApiVersionsResponse()
        response.apiKeys = Self.supportedVersions.keys.sorted().map {
            .init(
                apiKey: $0.rawValue, minVersion: Self.supportedVersions[$0]!.lowerBound,
                maxVersion: Self.supportedVersions[$0]!.upperBound)
        }
        guard Self.supportedVersions[.apiVersions]!.contains(version) else {
            // KIP-511: answer in the v0 layout so any client can read it and retry lower.
            response.errorCode = ErrorCode.unsupportedVersion.rawValue
            response.apiKeys = [
                .init(
                    apiKey: ApiKey.apiVersions.rawValue, minVersion: 0,
                    maxVersion: Self.supportedVersions[.apiVersions]!.upperBound)
            ]
            return respond(response, version: 0, context: context)
        }
        if version >= 3 {
            // A flexible request whose body does not parse still gets an answer, as Kafka does.
            if (try? ApiVersionsRequest.decode(request.body, version: version)) == nil {
                response.errorCode = ErrorCode.invalidRequest.rawValue
                return respond(response, version: version, context: context)
            }
            response.supportedFeatures = SupportedFeatures.local.keys.sorted().map {
                .init(
                    name: $0, minVersion: SupportedFeatures.local[$0]!.lowerBound,
                    maxVersion: SupportedFeatures.local[$0]!.upperBound)
            }
            let image = self.image
            response.finalizedFeaturesEpoch = image.provenance.lastOffset
            response.finalizedFeatures = image.features.keys.sorted().map {
                .init(name: $0, maxVersionLevel: image.features[$0]!, minVersionLevel: image.features[$0]!)
            }
        }
        return respond(response, version: version, context: context)
    }
}
