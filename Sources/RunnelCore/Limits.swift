/// Named limits. Every queue, frame and batch is bounded; the relations between limits are
/// asserted once, in `LimitsTests`.
public enum Limits {
    /// Largest request frame a node accepts by default (Kafka's `socket.request.max.bytes`).
    public static let socketRequestBytesMaxDefault = 104_857_600
    /// Largest record batch accepted by default (Kafka's `message.max.bytes`).
    public static let messageBytesMaxDefault = 1_048_588
    /// Size of a record batch v2 header.
    public static let recordBatchHeaderBytes = 61
    /// Requests a connection may have waiting before the node stops reading from it.
    public static let connectionRequestsQueuedMax = 100
    /// Longest a Fetch may wait, whatever the client asks.
    public static let fetchWaitMsMax: Int32 = 60_000
    /// Most partitions in one request we will process.
    public static let partitionsPerRequestMax = 100_000
}
