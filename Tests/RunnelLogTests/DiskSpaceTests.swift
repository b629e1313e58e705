// The space of a log dir's file system, which DescribeLogDirs v4 reports: statvfs's size and the
// free space an unprivileged writer may use, an error for a path that does not exist, and no
// answer from a disk that cannot tell.
import RunnelLog
import RunnelTestSupport
import Testing

@Suite("Disk space")
struct DiskSpaceTests {
    @Test("the real disk reports a size and usable space no larger than it")
    func posixSpace() throws {
        let dir = scratchDirectory("disk-space")
        let space = try #require(try PosixDisk().space(dir))
        #expect(space.totalBytes > 0)
        #expect(space.usableBytes >= 0 && space.usableBytes <= space.totalBytes)
    }

    @Test("a path that does not exist is an error naming it")
    func missingPath() {
        #expect(throws: DiskError.self) { try PosixDisk().space("/nonexistent/runnel-disk-space") }
    }

    @Test("a disk that cannot tell answers nil, and a wrapping disk passes the real answer on")
    func defaultAndWrapped() throws {
        struct NoSpaceDisk: Disk {
            func open(_ path: String, create: Bool) throws -> any DiskFile { fatalError("not used") }
            func exists(_ path: String) -> Bool { false }
            func isDirectory(_ path: String) -> Bool { false }
            func list(_ directory: String) throws -> [String] { [] }
            func makeDirectory(_ path: String) throws {}
            func remove(_ path: String) throws {}
            func removeTree(_ path: String) throws {}
            func rename(_ from: String, to: String) throws {}
            func syncDirectory(_ path: String) throws {}
        }
        #expect(try NoSpaceDisk().space("/") == nil)
        #expect(try InterceptingDisk().space("/") != nil)
    }
}
