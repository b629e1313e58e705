// The inputs the Kafka-parity tools read as Kafka's tools do: kafka-consumer-groups' date-times,
// durations and reset-plan CSV, and kafka-configs' --add-config list with bracketed values.
import ArgumentParser
import Foundation
import Testing
@testable import runnel

@Suite struct KafkaToolInputTests {
    @Test func dateTimesWithAndWithoutAZone() throws {
        // 1_700_000_004_000 ms is 2023-11-14T22:13:24Z.
        #expect(ResetTarget.parseDateTime("2023-11-14T22:13:24.000Z") == 1_700_000_004_000)
        #expect(ResetTarget.parseDateTime("2023-11-14T22:13:24.5Z") == 1_700_000_004_500)
        #expect(ResetTarget.parseDateTime("2023-11-15T00:13:24.000+02:00") == 1_700_000_004_000)
        #expect(ResetTarget.parseDateTime("2023-11-14T17:13:24.000-0500") == 1_700_000_004_000)
        #expect(
            ResetTarget.parseDateTime("2023-11-14T22:13:24") == ResetTarget.parseDateTime("2023-11-14T22:13:24.000"))
        let local = try #require(ResetTarget.parseDateTime("2023-11-14T22:13:24.000"))
        #expect(
            local + Int64(TimeZone.current.secondsFromGMT(for: Date(timeIntervalSince1970: 1_700_000_004))) * 1000
                == 1_700_000_004_000)
        for bad in [
            "yesterday", "2023-11-14", "2023-13-01T00:00:00.000", "2023-11-14T24:00:00.000", "2023-11-14 22:13:24.000",
        ] {
            #expect(ResetTarget.parseDateTime(bad) == nil, "\(bad)")
        }
    }

    @Test func isoDurations() {
        #expect(ResetTarget.parseDuration("PT5M30S") == 330_000)
        #expect(ResetTarget.parseDuration("P1DT2H") == 93_600_000)
        #expect(ResetTarget.parseDuration("PT0.25S") == 250)
        #expect(ResetTarget.parseDuration("P2D") == 172_800_000)
        for bad in ["P", "PT", "5M", "PT5X", "-PT1S", "P1DT"] {
            #expect(ResetTarget.parseDuration(bad) == nil, "\(bad)")
        }
    }

    @Test func resetPlansOfOneGroup() throws {
        let plan = try ResetTarget.parsePlan("t,0,5\n\nt,1,7\ng,u,0,3\nother,u,0,9\n", path: "p.csv", group: "g")
        #expect(plan == ["t": [0: 5, 1: 7], "u": [0: 3]])
        #expect(throws: CLIError.self) { try ResetTarget.parsePlan("t,0,x\n", path: "p.csv", group: "g") }
        #expect(throws: CLIError.self) { try ResetTarget.parsePlan("other,t,0,1\n", path: "p.csv", group: "g") }
    }

    @Test func addConfigListsKeepBracketedCommas() throws {
        let pairs = try parseAddConfig("retention.ms=1000,cleanup.policy=[compact,delete],empty=")
        #expect(pairs.map(\.0) == ["retention.ms", "cleanup.policy", "empty"])
        #expect(pairs.map(\.1) == ["1000", "compact,delete", ""])
        #expect(throws: ValidationError.self) { try parseAddConfig("a=[1,2") }
        #expect(throws: ValidationError.self) { try parseAddConfig("=1") }
    }
}
