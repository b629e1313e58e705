// `runnel reassign` and `runnel broker drain` without a cluster: kafka-reassign-partitions' plan
// files (what is read, what is refused, what is written), the throttle configs `execute
// --throttle` sets, and the drain plan's placement (racks included).
import Foundation
import RunnelController
import Testing
@testable import runnel

@Suite struct ReassignToolTests {
    func planFile(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func plansReadAndWriteInKafkasFormat() throws {
        let path = try planFile(
            #"{"version":1,"partitions":[{"topic":"t","partition":1,"replicas":[5,4],"log_dirs":["any","any"]},{"topic":"t","partition":0,"replicas":[4]}]}"#
        )
        let moves = try Reassign.readPlan(path)
        #expect(
            moves == [
                .init(topic: "t", partition: 1, replicas: [5, 4]), .init(topic: "t", partition: 0, replicas: [4]),
            ])
        #expect(
            Reassign.planJSON(moves)
                == #"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[4],"log_dirs":["any"]},{"topic":"t","partition":1,"replicas":[5,4],"log_dirs":["any","any"]}]}"#
        )
    }

    @Test func badPlansAreRefusedWithOneSentence() throws {
        let cases = [
            (#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}"#, "more than once"),
            (#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[]}]}"#, "empty replica list"),
            (#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/d"]}]}"#, "log dir"),
            (#"{"version":2,"partitions":[{"topic":"t","partition":0,"replicas":[1]}]}"#, "version 2"),
            (#"{"version":1,"partitions":[{"topic":"t","replicas":[1]}]}"#, "lacks"),
            (
                #"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}"#,
                "more than once"
            ),
            (#"{"version":1,"partitions":[]}"#, "names no partition"),
        ]
        for (json, words) in cases {
            let path = try planFile(json)
            #expect(throws: CLIError.self) { try Reassign.readPlan(path) }
            do { _ = try Reassign.readPlan(path) } catch { #expect("\(error)".contains(words), "\(json): \(error)") }
        }
    }

    @Test func throttlesCoverTheMovingReplicasOnly() {
        let moves: [Reassign.Move] = [
            .init(topic: "t", partition: 0, replicas: [5, 6]), .init(topic: "t", partition: 1, replicas: [4]),
        ]
        let current: [Reassign.Move] = [
            .init(topic: "t", partition: 0, replicas: [4, 5]), .init(topic: "t", partition: 1, replicas: [4]),
        ]
        let (brokers, topics) = Reassign.throttles(moves, current: current)
        #expect(brokers == [4, 5, 6])
        #expect(topics["t"]?.0 == "0:4,0:5")
        #expect(topics["t"]?.1 == "0:6")
    }

    @Test func drainReplacesOnlyTheDrainedBrokerAndKeepsRacksApart() throws {
        let remaining: [ReplicaPlacement.Broker] = [
            .init(id: 1, rack: "a"), .init(id: 2, rack: "a"), .init(id: 3, rack: "b"), .init(id: 5, rack: "b"),
        ]
        // Broker 4 (rack "b") leaves; partition 0 keeps 1 (rack a), so its replacement is on rack b.
        let plan = try BrokerCommand.Drain.plan(
            draining: 4, topics: [("t", [(0, [4, 1]), (1, [2, 3]), (2, [1, 4])])], remaining: remaining, start: 0)
        #expect(plan.map(\.partition) == [0, 2])
        for move in plan {
            #expect(!move.replicas.contains(4))
            #expect(move.replicas.count == 2 && Set(move.replicas).count == 2)
            #expect(move.replicas.contains(1))
            #expect(move.replicas.contains { [3, 5].contains($0) }, "\(move.replicas) spans both racks")
        }
        #expect(plan[0].replicas[1] == 1 && plan[1].replicas[0] == 1, "the kept replicas keep their places")
        // Nowhere to go: replication factor 3 on 2 remaining brokers.
        #expect(throws: CLIError.self) {
            try BrokerCommand.Drain.plan(
                draining: 4, topics: [("t", [(0, [4, 1, 2])])], remaining: Array(remaining.prefix(2)), start: 0)
        }
        // A broker holding nothing needs no move.
        #expect(
            try BrokerCommand.Drain.plan(draining: 9, topics: [("t", [(0, [1, 2])])], remaining: remaining, start: 0)
                .isEmpty)
    }
}
