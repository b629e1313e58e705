import NIOCore

/// Makes the writes of one turn of a handler's event loop leave in one flush: the answers a
/// metadata commit completes at once, the requests of one read, the forwards of many client
/// requests, a follower's fetches to one leader. One per handler, used on its event loop only.
final class FlushOncePerTurn {
    /// A flush is queued on the event loop.
    private var scheduled = false

    /// Queues a flush behind the loop's current tasks, unless one is queued already.
    func schedule(_ context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (me, context) = bound.value
            guard me.scheduled else { return }
            me.scheduled = false
            context.flush()
        }
    }

    /// Flushes at once what a queued flush would have (before closing the connection).
    func flushNow(_ context: ChannelHandlerContext) {
        guard scheduled else { return }
        scheduled = false
        context.flush()
    }
}
