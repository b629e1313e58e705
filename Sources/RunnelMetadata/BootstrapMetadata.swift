import RunnelWire

/// What the first active controller of a new cluster writes (Kafka's `BootstrapMetadata`): the
/// feature levels `runnel format` chose, or this build's defaults, and the other records format
/// gave (SCRAM credentials of `--add-scram`).
public enum BootstrapMetadata {
    /// A new cluster's first records: `metadata.version` first (the level `runnel format
    /// --release-version` chose, else the newest this build runs), then `transaction.version`
    /// (the level format chose, else 2, Kafka 4.x's default; level 0 is not written, as it means
    /// not finalized), then the other bootstrap records in their order.
    public static func firstRecords(_ bootstrap: [MetadataRecord]) -> [MetadataRecord] {
        var level = MetadataVersion.latest.featureLevel
        var transactionLevel = TransactionVersionFeature.defaultLevel(releaseVersionGiven: false)
        var rest: [MetadataRecord] = []
        for record in bootstrap {
            if case .featureLevel(let r) = record, r.name == MetadataVersion.featureName {
                level = r.featureLevel
            } else if case .featureLevel(let r) = record, r.name == TransactionVersionFeature.featureName {
                transactionLevel = r.featureLevel
            } else {
                rest.append(record)
            }
        }
        precondition(
            MetadataVersion.supportedLevels.contains(level), "runnel format writes only a supported metadata.version")
        precondition(
            TransactionVersionFeature.supportedLevels.contains(transactionLevel),
            "runnel format writes only a supported transaction.version")
        var records: [MetadataRecord] = [
            .featureLevel(FeatureLevelRecord(name: MetadataVersion.featureName, featureLevel: level))
        ]
        if transactionLevel > 0 {
            records.append(
                .featureLevel(
                    FeatureLevelRecord(name: TransactionVersionFeature.featureName, featureLevel: transactionLevel)))
        }
        return records + rest
    }
}
