// crc32c-throughput: CRC32C speed in GB/s (10^9 bytes per second) for the hardware and portable
// paths, timed with the monotonic clock over 1 GiB in total (1,024 passes over a 1 MiB buffer)
// after one warm-up pass. Usage: crc32c-throughput [total-MiB [buffer-KiB]]
import CRC32C

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let totalBytes = (arguments.count > 0 ? arguments[0] : 1024) << 20
let bufferBytes = (arguments.count > 1 ? arguments[1] : 1024) << 10
let passes = max(1, totalBytes / bufferBytes)

var state: UInt64 = 0x9E37_79B9_7F4A_7C15
var buffer = [UInt8](repeating: 0, count: bufferBytes)
for i in 0..<bufferBytes {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    buffer[i] = UInt8(truncatingIfNeeded: state)
}

/// GB/s of `crc` over `passes` x `buffer`, and the final checksum (so the work is not dropped).
func measure(_ buffer: [UInt8], passes: Int, _ crc: (UInt32, UnsafeRawPointer?, Int) -> UInt32) -> (gbPerSecond: Double, checksum: UInt32) {
    buffer.withUnsafeBytes { raw in
        var checksum = crc(0, raw.baseAddress, raw.count)  // warm-up (tables, caches)
        let start = monotonicNanoseconds()
        for _ in 0..<passes {
            checksum = crc(checksum, raw.baseAddress, raw.count)
        }
        let elapsed = monotonicNanoseconds() - start
        return (Double(passes * raw.count) / Double(elapsed), checksum)
    }
}

let hardware = measure(buffer, passes: passes) { runnel_crc32c($0, $1, $2) }
let portable = measure(buffer, passes: passes) { runnel_crc32c_portable($0, $1, $2) }
guard hardware.checksum == portable.checksum else {
    print("crc32c: hardware and portable checksums differ (\(hardware.checksum) vs \(portable.checksum))")
    exit(1)
}
/// Two decimals without Foundation.
func twoDecimals(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
}

let note = runnel_crc32c_hardware() == 1 ? "" : " (no SSE4.2: the hardware figure is the portable path)"
print("crc32c hardware: \(twoDecimals(hardware.gbPerSecond)) GB/s, portable: \(twoDecimals(portable.gbPerSecond)) GB/s" + note)
print("  \(passes) x \(bufferBytes / 1024) KiB = \((passes * bufferBytes) >> 20) MiB per path, monotonic clock, GB = 10^9 bytes")
