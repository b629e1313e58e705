// Transcripts of the StandardAuthorizer (Transcripts/*.txt): bindings are added and removed by id
// as the metadata log adds and removes them, and each check prints the decision and the rule
// that made it, as Kafka's audit log names it. RUNNEL_REWRITE=1 regenerates the files.
//
// Commands:
//   config [super-users=User:a;User:b] [allow-everyone=true|false]
//   add id=N resource=TYPE:PATTERN:name principal=Type:name [host=H] op=OPERATION perm=ALLOW|DENY
//   remove id=N
//   check principal=Type:name [host=H] op=OPERATION resource=TYPE:name
//   operations principal=Type:name [host=H] resource=TYPE:name     the authorized operations
//   by-type principal=Type:name [host=H] op=OPERATION type=TYPE     authorizeByResourceType
import RunnelCore
import RunnelSecurity
import RunnelTestSupport
import Testing

final class AuthorizerTranscript {
    var authorizer = StandardAuthorizer()

    func principal(_ command: TranscriptCommand) -> KafkaPrincipal {
        guard let p = KafkaPrincipal(parsing: command.string("principal")) else {
            fatalError("line \(command.line): bad principal")
        }
        return p
    }

    func operation(_ command: TranscriptCommand) -> AclOperation {
        let op = AclOperation(name: command.string("op"))
        precondition(op != .unknown, "line \(command.line): unknown operation")
        return op
    }

    func resource(_ command: TranscriptCommand) -> Resource {
        let parts = command.string("resource").split(separator: ":", maxSplits: 1).map(String.init)
        return Resource(ResourceType(name: parts[0]), parts[1])
    }

    func run(_ command: TranscriptCommand) -> [String] {
        let host = command.arguments["host"] ?? "127.0.0.1"
        switch command.name {
        case "config":
            if let users = command.arguments["super-users"] {
                authorizer.superUsers = try! StandardAuthorizer.superUsers(fromConfig: users)
            }
            if let everyone = command.arguments["allow-everyone"] {
                authorizer.allowEveryoneIfNoAclFound = everyone == "true"
            }
            return [
                "super.users=\(authorizer.superUsers.map(\.description).sorted().joined(separator: ";")) allow.everyone.if.no.acl.found=\(authorizer.allowEveryoneIfNoAclFound)"
            ]
        case "add":
            let parts = command.string("resource").split(separator: ":", maxSplits: 2).map(String.init)
            let binding = AclBinding(
                ResourceType(name: parts[0]), parts[2], PatternType(name: parts[1]),
                principal: command.string("principal"),
                host: command.arguments["host"] ?? "*", operation: operation(command),
                permission: AclPermissionType(name: command.string("perm")))
            authorizer.add(id: KafkaUUID(high: 0, low: UInt64(command.int("id"))), binding: binding)
            return ["acls: \(authorizer.aclCount)"]
        case "remove":
            authorizer.remove(id: KafkaUUID(high: 0, low: UInt64(command.int("id"))))
            return ["acls: \(authorizer.aclCount)"]
        case "check":
            let rule = authorizer.decide(
                principal(command), host: host, operation: operation(command), resource: resource(command))
            return ["\(rule.allowed ? "ALLOWED" : "DENIED") by \(rule)"]
        case "operations":
            let ops = authorizer.authorizedOperations(principal(command), host: host, resource: resource(command))
            return [
                ops.map(\.rawValue).sorted().map { AclOperation(code: $0).description }.joined(separator: ",")
                    + " bits=\(AclOperation.bitField(ops))"
            ]
        case "by-type":
            let allowed = authorizer.authorizeByResourceType(
                principal(command), host: host, operation: operation(command),
                type: ResourceType(name: command.string("type")))
            return [allowed ? "ALLOWED" : "DENIED"]
        default:
            fatalError("line \(command.line): unknown command \(command.name)")
        }
    }
}

@Suite("StandardAuthorizer transcripts")
struct AuthorizerTranscriptTests {
    @Test("each transcript under Transcripts/ holds", arguments: transcriptFiles(beside: #filePath))
    func transcript(_ path: String) throws {
        let harness = AuthorizerTranscript()
        let mismatches = try runTranscript(path) { harness.run($0) }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n\n"))")
    }
}
