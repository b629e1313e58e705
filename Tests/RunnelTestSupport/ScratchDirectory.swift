// Scratch directories for the unit tests. They all live under one directory per test process,
// removed when the process exits, so a test run leaves nothing behind in the temp dir.
import Foundation

private let scratchRoot: String = {
    let root = NSTemporaryDirectory() + "runnel-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchRoot) }
    return root
}()

/// A new empty directory named `prefix`-<uuid>, removed with the rest when the tests exit.
public func scratchDirectory(_ prefix: String) -> String {
    let path = scratchRoot + "/" + prefix + "-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
