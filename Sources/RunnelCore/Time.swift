/// Milliseconds since the Unix epoch, as Kafka timestamps are.
public typealias TimestampMs = Int64

/// Where time comes from. Pure cores never read a clock: drivers pass `now` in. The real
/// implementation reads the system clock; the simulator's advances only when told.
public protocol Clock: Sendable {
    /// Wall-clock time in milliseconds since the Unix epoch (record timestamps, retention).
    func wallMs() -> TimestampMs
    /// Monotonic time in milliseconds from an arbitrary origin (timeouts, lag).
    func monotonicMs() -> Int64
    /// Monotonic time in nanoseconds, for timers finer than a millisecond (metrics only).
    func monotonicNanos() -> UInt64
}

extension Clock {
    /// A clock that counts whole milliseconds (the simulator's) gives them in nanoseconds.
    public func monotonicNanos() -> UInt64 { UInt64(max(monotonicMs(), 0)) * 1_000_000 }
}

/// A seedable, splittable pseudo-random generator (xoshiro256**), so a simulation seed replays exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var sm = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(&sm), splitMix(&sm), splitMix(&sm), splitMix(&sm))
    }

    public mutating func next() -> UInt64 {
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotl(state.3, 45)
        return result
    }

    /// A new generator derived from this one, for a sub-component that must not disturb this stream.
    public mutating func split() -> SeededRandom { SeededRandom(seed: next()) }
}
