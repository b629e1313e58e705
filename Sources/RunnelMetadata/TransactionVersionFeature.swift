/// Kafka's `transaction.version` feature (KIP-890, Kafka's `TransactionVersion`): which
/// transaction protocol the cluster's coordinators run. Level 0 is the original coordinator,
/// 1 writes flexible `__transaction_state` values, 2 bumps the producer epoch at the end of every
/// transaction and lets a produce add its partition (transactions v2). It depends on no
/// `metadata.version` level; a client uses the v2 requests (EndTxn v5, TxnOffsetCommit v5,
/// Produce v12) only once this feature is finalized at 2.
public enum TransactionVersionFeature {
    /// The feature's name in ApiVersions, registrations, UpdateFeatures and FeatureLevelRecord.
    public static let featureName = "transaction.version"

    /// The levels this build runs.
    public static let supportedLevels: ClosedRange<Int16> = 0...2

    /// The level with the epoch bump per transaction (Kafka's `TV_2`, `supportsEpochBump`).
    public static let epochBumpLevel: Int16 = 2

    /// The level a new cluster starts at. Kafka's `defaultLevel` picks the highest level whose
    /// bootstrap metadata.version (4.0-IV2 for levels 1 and 2) the formatted release reaches:
    /// a cluster formatted with a 3.x `--release-version` gets 0; one formatted without gets
    /// Kafka 4.x's latest production level, 2, which clients of the v1 protocol (Java 3.x,
    /// librdkafka) do not notice: the request versions they send keep them on v1.
    public static func defaultLevel(releaseVersionGiven: Bool) -> Int16 {
        releaseVersionGiven ? 0 : epochBumpLevel
    }
}
