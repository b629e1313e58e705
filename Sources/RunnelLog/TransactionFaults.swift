/// Rules of the partition side of transactions that a test may break on purpose, to show that
/// the transaction simulation catches what each one lets through. Every switch is off unless a
/// simulator or a test turns it on.
public struct TransactionFaults: Sendable, Equatable {
    /// A transaction marker is written without `ProducerStateTable.checkMarker`'s epoch checks
    /// (neither the producer epoch nor the coordinator epoch): a marker delayed from a
    /// coordinator that failed over can end a later transaction.
    public var skipMarkerEpochCheck = false

    public init() {}
}
