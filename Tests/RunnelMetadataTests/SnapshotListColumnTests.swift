// A snapshot's list columns (replicas, ISR, ELR...) are comma-separated integers; the loader
// reads them from the raw bytes. It must give what the general parse gives for every text,
// well-formed or not.
import Testing

@testable import RunnelSnapshotStore

@Suite struct SnapshotListColumnTests {
    static func general(_ text: String) -> [Int32] { text.split(separator: ",").compactMap { Int32($0) } }

    @Test(
        "list columns parse as the general parse does",
        arguments: [
            "", "1", "1,2,3", "30,1,29", "-1", "0,-5,7", "2147483647", "-2147483648", "2147483648", "1,,2", "1,",
            ",1", "-", "1,-", "a,1", "12345678901", " 1", "+1", "--1", "1-2",
        ])
    func matchesGeneralParse(_ text: String) {
        #expect(SQLiteSnapshot.ints(text) == Self.general(text))
    }

    @Test("the writer's list text is the integers in decimal joined by commas, byte for byte")
    func writerText() {
        let lists: [[Int32]] = [
            [], [0], [1], [3, 1, 2], [10, 100, 1000], [Int32.max, Int32.min, 0, -1], [-7, 9, -10, 1_000_000_000],
        ]
        var scratch: [UInt8] = [UInt8(ascii: "x")]
        for list in lists {
            let expected = list.map(String.init).joined(separator: ",")
            #expect(SQLiteSnapshot.list(list) == expected)
            scratch.removeAll(keepingCapacity: true)
            SQLiteSnapshot.appendList(list, to: &scratch)
            #expect(scratch == Array(expected.utf8))
        }
    }

    @Test("what the writer writes reads back")
    func roundTrip() {
        for list: [Int32] in [[], [1], [3, 1, 2], [Int32.max, Int32.min, 0, -1]] {
            #expect(SQLiteSnapshot.ints(SQLiteSnapshot.list(list)) == list)
        }
    }
}
