import Logging
import NIOConcurrencyHelpers
import NIOCore
import RunnelCore
import RunnelMetadata
import RunnelWire

/// A controller's registration with the active controller (Kafka's ControllerRegistrationManager,
/// KIP-919): once the committed `metadata.version` has controller registration (3.7-IV0) and the
/// image does not hold this process's registration, it sends ControllerRegistration (its
/// incarnation, listeners and supported features), one at a time, again after a failure.
/// UpdateFeatures then checks this controller's range as it checks every broker's.
final class ControllerRegistrar: @unchecked Sendable {
    let request: ControllerRegistrationRequest
    let channel: any ControllerChannel
    let eventLoop: any EventLoop
    let logger: Logger
    /// How long to wait before trying again after a failed attempt.
    let retryBackoffMs: Int64 = 1_000
    /// (an attempt is in flight, the last image published, the last failure logged).
    private let state = NIOLockedValueBox<(inFlight: Bool, image: MetadataImage, lastFailure: String?)>(
        (false, .empty, nil))

    init(
        nodeId: Int32, incarnationId: KafkaUUID, listeners: [ControllerRegistrationRequest.Listener],
        channel: any ControllerChannel, eventLoop: any EventLoop, logger: Logger
    ) {
        var request = ControllerRegistrationRequest()
        request.controllerId = nodeId
        request.incarnationId = incarnationId
        request.listeners = listeners
        request.features = SupportedFeatures.local.keys.sorted().map {
            .init(
                name: $0, minSupportedVersion: SupportedFeatures.local[$0]!.lowerBound,
                maxSupportedVersion: SupportedFeatures.local[$0]!.upperBound)
        }
        self.request = request
        self.channel = channel
        self.eventLoop = eventLoop
        self.logger = logger
    }

    /// Whether `image` calls for a registration from this process.
    func needsRegistration(_ image: MetadataImage) -> Bool {
        image.metadataVersion >= MetadataVersion.controllerRegistrationLevel
            && image.controllers[NodeID(request.controllerId)]?.incarnationId != request.incarnationId
    }

    /// A committed image was published (subscribe it to the quorum).
    func published(_ image: MetadataImage) {
        let send = state.withLockedValue { state -> Bool in
            state.image = image
            guard !state.inFlight, needsRegistration(image) else { return false }
            state.inFlight = true
            return true
        }
        if send { attempt() }
    }

    private func attempt() {
        channel.send(request, version: 0).whenComplete { [self] result in
            var failure: String?
            switch result {
            case .success(let response) where response.errorCode == 0: break
            case .success(let response):
                failure = "\(ErrorCode(response.errorCode).name): \(response.errorMessage ?? "")"
            case .failure(let error): failure = "\(error)"
            }
            let logIt = state.withLockedValue { state -> Bool in
                state.inFlight = false
                defer { state.lastFailure = failure }
                return failure != nil && failure != state.lastFailure
            }
            if logIt { logger.info("controller registration failed, retrying: \(failure!)") }
            // Success shows once the record is committed and published; a failure is retried
            // against the newest image after a pause.
            if failure != nil {
                eventLoop.scheduleTask(in: .milliseconds(retryBackoffMs)) { [self] in
                    published(state.withLockedValue { $0.image })
                }
            }
        }
    }
}
