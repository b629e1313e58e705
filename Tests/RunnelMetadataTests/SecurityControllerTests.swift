// The controller's ACL and SCRAM commands (CreateAcls, DeleteAcls, AlterUserScramCredentials)
// return records and a response with Kafka's error codes and change nothing until replayed; the
// broker's answers from the image (DescribeAcls, DescribeUserScramCredentials) filter what the
// records made. The end of the file logs a SCRAM client in against credentials that went
// through the controller.
import NIOCore
import RunnelController
import RunnelCore
import RunnelMetadata
import RunnelSecurity
import RunnelWire
import Testing

func securityController(metadataVersion: Int16 = 21) -> QuorumController {
    var delta = MetadataDelta(.empty)
    delta.replay(
        .featureLevel(FeatureLevelRecord(name: "metadata.version", featureLevel: metadataVersion)), offset: 0, epoch: 1)
    return controller(delta.apply())
}

/// Replays a command's records on the controller.
func commit(_ c: inout QuorumController, _ records: [MetadataRecord]) {
    let base = c.image.provenance.lastOffset + 1
    c.replay(records.enumerated().map { ($0.element, base + Int64($0.offset)) }, epoch: 1)
}

func creation(
    _ type: ResourceType, _ name: String, _ pattern: PatternType = .literal, principal: String = "User:alice",
    host: String = "*",
    operation: AclOperation = .read, permission: AclPermissionType = .allow
) -> CreateAclsRequest.AclCreation {
    .init(
        resourceType: type.rawValue, resourceName: name, resourcePatternType: pattern.rawValue, principal: principal,
        host: host,
        operation: operation.rawValue, permissionType: permission.rawValue)
}

func ids() -> () -> KafkaUUID {
    var counter: UInt64 = 0
    return {
        counter += 1
        return KafkaUUID(high: 0xA, low: counter)
    }
}

func deleteFilter(
    _ type: ResourceType = .any, _ name: String? = nil, _ pattern: PatternType = .any, principal: String? = nil,
    operation: AclOperation = .any, permission: AclPermissionType = .any
) -> DeleteAclsRequest.DeleteAclsFilter {
    .init(
        resourceTypeFilter: type.rawValue, resourceNameFilter: name, patternTypeFilter: pattern.rawValue,
        principalFilter: principal,
        hostFilter: nil, operation: operation.rawValue, permissionType: permission.rawValue)
}

@Suite("Controller: ACLs")
struct AclControllerTests {
    @Test("CreateAcls writes one AccessControlEntryRecord per binding and changes nothing until replayed")
    func create() {
        var c = securityController()
        let result = c.createAcls(
            CreateAclsRequest(creations: [creation(.topic, "orders"), creation(.group, "g-", .prefixed)]), newId: ids())
        #expect(result.response.results.map(\.errorCode) == [0, 0])
        #expect(result.records.count == 2)
        #expect(c.image.acls.isEmpty)
        commit(&c, result.records)
        #expect(c.image.acls.count == 2)
        #expect(c.image.aclBindings.map(\.binding.pattern.name) == ["orders", "g-"])
    }

    @Test("CreateAcls refuses what Kafka refuses with INVALID_REQUEST, binding by binding")
    func createInvalid() {
        let c = securityController()
        let bad: [(CreateAclsRequest.AclCreation, String)] = [
            (creation(.any, "t"), "Invalid resourceType ANY"),
            (creation(.unknown, "t"), "Invalid resourceType UNKNOWN"),
            (creation(.topic, "t", .match), "Invalid patternType MATCH"),
            (creation(.topic, "t", .any), "Invalid patternType ANY"),
            (creation(.topic, "t", operation: .any), "Invalid operation ANY"),
            (creation(.topic, "t", permission: .any), "Invalid permissionType ANY"),
            (creation(.topic, ""), "Resource name should not be empty"),
            (
                creation(.cluster, "mine", operation: .alter),
                "The only valid name for the CLUSTER resource is kafka-cluster"
            ),
            (
                creation(.topic, "t", principal: "alice"),
                "Could not parse principal from `alice` (no colon is found between resource type and resource name)."
            ),
        ]
        let request = CreateAclsRequest(
            creations: bad.map(\.0) + [creation(.cluster, "kafka-cluster", operation: .alter)])
        let result = c.createAcls(request, newId: ids())
        for (i, (_, message)) in bad.enumerated() {
            #expect(result.response.results[i].errorCode == ErrorCode.invalidRequest.rawValue)
            #expect(result.response.results[i].errorMessage == message)
        }
        #expect(result.response.results.last?.errorCode == 0)
        #expect(result.records.count == 1)
    }

    @Test("a binding that exists, or comes twice in one request, succeeds without a second record")
    func createDuplicates() {
        var c = securityController()
        commit(&c, c.createAcls(CreateAclsRequest(creations: [creation(.topic, "orders")]), newId: ids()).records)
        let again = c.createAcls(
            CreateAclsRequest(creations: [creation(.topic, "orders"), creation(.topic, "new"), creation(.topic, "new")]
            ),
            newId: ids())
        #expect(again.response.results.map(\.errorCode) == [0, 0, 0])
        #expect(again.records.count == 1)
    }

    @Test("CreateAcls never reuses an id the image holds")
    func freshIds() {
        var c = securityController()
        commit(&c, c.createAcls(CreateAclsRequest(creations: [creation(.topic, "a")]), newId: ids()).records)
        let result = c.createAcls(CreateAclsRequest(creations: [creation(.topic, "b")]), newId: ids())
        guard case .accessControlEntry(let record) = result.records.first else {
            Issue.record("no record")
            return
        }
        #expect(record.id == KafkaUUID(high: 0xA, low: 2), "id 1 is taken")
    }

    func populated() -> QuorumController {
        var c = securityController()
        let creations = [
            creation(.topic, "orders"), creation(.topic, "orders", operation: .write), creation(.topic, "*"),
            creation(.topic, "ord", .prefixed, principal: "User:bob"), creation(.group, "orders", permission: .deny),
        ]
        commit(&c, c.createAcls(CreateAclsRequest(creations: creations), newId: ids()).records)
        return c
    }

    @Test("DeleteAcls removes what each filter matches and lists it; a binding matched twice is removed once")
    func delete() {
        var c = populated()
        let result = c.deleteAcls(
            DeleteAclsRequest(filters: [
                deleteFilter(.topic, "orders", .literal),
                deleteFilter(.topic, "orders", .match, principal: "User:alice"),
            ]))
        #expect(result.response.filterResults.map(\.errorCode) == [0, 0])
        #expect(
            result.response.filterResults[0].matchingAcls.map(\.operation) == [
                AclOperation.read.rawValue, AclOperation.write.rawValue,
            ])
        #expect(result.response.filterResults[1].matchingAcls.map(\.resourceName) == ["orders", "orders", "*"])
        #expect(result.records.count == 3)
        commit(&c, result.records)
        #expect(c.image.aclBindings.map(\.binding.pattern.name) == ["ord", "orders"])
        #expect(c.image.aclBindings.last?.binding.pattern.resourceType == .group)
    }

    @Test("a DeleteAcls filter with an UNKNOWN component gets INVALID_REQUEST; one matching nothing an empty list")
    func deleteInvalid() {
        let c = populated()
        let result = c.deleteAcls(
            DeleteAclsRequest(filters: [
                deleteFilter(.unknown), deleteFilter(operation: .unknown), deleteFilter(.transactionalId),
            ]))
        #expect(
            result.response.filterResults.map(\.errorCode) == [
                ErrorCode.invalidRequest.rawValue, ErrorCode.invalidRequest.rawValue, 0,
            ])
        #expect(
            result.response.filterResults.map(\.errorMessage) == [
                "Unknown patternFilter.", "Unknown entryFilter.", nil,
            ])
        #expect(result.response.filterResults[2].matchingAcls.isEmpty)
        #expect(result.records.isEmpty)
    }

    @Test("DescribeAcls from the image: the bindings a filter selects, grouped by resource pattern")
    func describe() {
        let image = populated().image
        let all = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 1, resourceNameFilter: nil, patternTypeFilter: 1, principalFilter: nil,
                hostFilter: nil, operation: 1, permissionType: 1), version: 3)
        #expect(all.errorCode == 0)
        #expect(all.resources.map(\.resourceName) == ["*", "ord", "orders", "orders"])
        #expect(all.resources[2].acls.map(\.operation) == [AclOperation.read.rawValue, AclOperation.write.rawValue])
        let matching = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 2, resourceNameFilter: "orders-eu", patternTypeFilter: 2,
                principalFilter: nil, hostFilter: nil, operation: 1, permissionType: 1), version: 3)
        #expect(
            matching.resources.map(\.resourceName) == ["*", "ord"],
            "MATCH: the wildcard and the prefix apply to orders-eu")
        let bob = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 1, resourceNameFilter: nil, patternTypeFilter: 1,
                principalFilter: "User:bob", hostFilter: nil, operation: 1, permissionType: 1), version: 3)
        #expect(bob.resources.map(\.resourceName) == ["ord"])
    }

    @Test("DescribeAcls refuses UNKNOWN filters, and version 0 sees only literal patterns")
    func describeRules() {
        let image = populated().image
        let unknown = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 0, resourceNameFilter: nil, patternTypeFilter: 1, principalFilter: nil,
                hostFilter: nil, operation: 1, permissionType: 1), version: 3)
        #expect(unknown.errorCode == ErrorCode.invalidRequest.rawValue)
        let v0 = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 1, resourceNameFilter: nil, patternTypeFilter: 1, principalFilter: nil,
                hostFilter: nil, operation: 1, permissionType: 1), version: 0)
        #expect(v0.errorCode == 0)
        #expect(v0.resources.allSatisfy { $0.patternType == PatternType.literal.rawValue })
        let v0Prefixed = image.describeAcls(
            DescribeAclsRequest(
                resourceTypeFilter: 1, resourceNameFilter: nil, patternTypeFilter: 4,
                principalFilter: nil, hostFilter: nil, operation: 1, permissionType: 1), version: 0)
        #expect(v0Prefixed.errorCode == ErrorCode.invalidRequest.rawValue)
    }
}

/// A SCRAM upsertion as a client makes it: the client runs PBKDF2 and sends the salted password.
func upsertion(
    _ user: String, _ password: String = "pencil", mechanism: Int8 = 1, iterations: Int32 = 4096,
    salt: [UInt8] = RFC7677Salt
) -> AlterUserScramCredentialsRequest.ScramCredentialUpsertion {
    let salted =
        ScramMechanism(code: mechanism).map {
            ScramFormatter($0).saltedPassword(password, salt: salt, iterations: max(iterations, 1))
        } ?? [1]
    return .init(
        name: user, mechanism: mechanism, iterations: iterations, salt: ByteBuffer(bytes: salt),
        saltedPassword: ByteBuffer(bytes: salted))
}

let RFC7677Salt = Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ==")!

@Suite("Controller: SCRAM credentials")
struct ScramControllerTests {
    @Test("an upsertion becomes a UserScramCredentialRecord with StoredKey and ServerKey, never the salted password")
    func upsert() {
        var c = securityController()
        let result = c.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion("user")]))
        #expect(result.response.results.map(\.errorCode) == [0])
        guard case .userScramCredential(let record) = result.records.first else {
            Issue.record("no record")
            return
        }
        // RFC 7677's user "user" with password "pencil": the keys Python's hashlib and hmac compute.
        #expect(
            Base64.encode(Array(record.storedKey.readableBytesView)) == "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=")
        #expect(
            Base64.encode(Array(record.serverKey.readableBytesView)) == "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
        #expect(record.iterations == 4096 && record.mechanism == 1)
        #expect(c.image.scramCredentials.isEmpty)
        commit(&c, result.records)
        #expect(c.image.scramCredential(user: "user", mechanism: 1)?.salt == RFC7677Salt)
    }

    @Test("Kafka's error codes: UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL, RESOURCE_NOT_FOUND")
    func errors() {
        let c = securityController()
        let result = c.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(
                deletions: [.init(name: "nobody", mechanism: 1), .init(name: "weird", mechanism: 3)],
                upsertions: [
                    upsertion("zero", mechanism: 0), upsertion("few", iterations: 4095),
                    upsertion("many", iterations: 16385),
                    upsertion("", iterations: 4096), upsertion("max", iterations: 16384),
                ]))
        let byUser = Dictionary(
            uniqueKeysWithValues: result.response.results.map { ($0.user, ($0.errorCode, $0.errorMessage)) })
        #expect(
            byUser["nobody"]! == (
                ErrorCode.resourceNotFound.rawValue, "Attempt to delete a user credential that does not exist"
            ))
        #expect(byUser["weird"]! == (ErrorCode.unsupportedSaslMechanism.rawValue, "Unknown SCRAM mechanism"))
        #expect(byUser["zero"]! == (ErrorCode.unsupportedSaslMechanism.rawValue, "Unknown SCRAM mechanism"))
        #expect(byUser["few"]! == (ErrorCode.unacceptableCredential.rawValue, "Too few iterations"))
        #expect(byUser["many"]! == (ErrorCode.unacceptableCredential.rawValue, "Too many iterations"))
        #expect(byUser[""]! == (ErrorCode.unacceptableCredential.rawValue, "Username must not be empty"))
        #expect(byUser["max"]!.0 == 0 && byUser["max"]!.1 == nil)
        #expect(result.records.count == 1)
        #expect(result.response.results.first?.user == "max", "successes first, then failures")
    }

    @Test("a user altered twice in one request gets DUPLICATE_RESOURCE, and nothing of it changes")
    func duplicates() {
        var c = securityController()
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion("alice")])
            ).records)
        let result = c.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(
                deletions: [.init(name: "alice", mechanism: 1)],
                upsertions: [
                    upsertion("alice", mechanism: 2), upsertion("bob"), upsertion("bob", mechanism: 2),
                    upsertion("bob"), upsertion("carol"),
                ]))
        let byUser = Dictionary(uniqueKeysWithValues: result.response.results.map { ($0.user, $0.errorCode) })
        #expect(
            byUser == [
                "alice": ErrorCode.duplicateResource.rawValue, "bob": ErrorCode.duplicateResource.rawValue, "carol": 0,
            ])
        #expect(result.response.results.count == 3)
        #expect(result.records.count == 1)
    }

    @Test("a deletion removes the credential of that mechanism only")
    func delete() {
        var c = securityController()
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion("alice")])
            ).records)
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion("alice", mechanism: 2)])
            ).records)
        let result = c.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(deletions: [.init(name: "alice", mechanism: 1)], upsertions: []))
        #expect(result.response.results.map(\.errorCode) == [0])
        commit(&c, result.records)
        #expect(c.image.scramCredential(user: "alice", mechanism: 1) == nil)
        #expect(c.image.scramCredential(user: "alice", mechanism: 2) != nil)
    }

    @Test("below metadata.version 3.5-IV2 every user gets UNSUPPORTED_VERSION")
    func oldMetadataVersion() {
        let c = securityController(metadataVersion: 10)
        let result = c.alterUserScramCredentials(
            AlterUserScramCredentialsRequest(deletions: [.init(name: "a", mechanism: 1)], upsertions: [upsertion("b")]))
        #expect(
            result.response.results.map(\.errorCode) == [
                ErrorCode.unsupportedVersion.rawValue, ErrorCode.unsupportedVersion.rawValue,
            ])
        #expect(result.records.isEmpty)
    }

    @Test("DescribeUserScramCredentials from the image: all users, named users, unknown and duplicated names")
    func describe() {
        var c = securityController()
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(
                    deletions: [], upsertions: [upsertion("bob", iterations: 8192), upsertion("alice")])
            ).records)
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(deletions: [], upsertions: [upsertion("alice", mechanism: 2)])
            ).records)
        let all = c.image.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: nil))
        #expect(all.errorCode == 0)
        #expect(all.results.map(\.user) == ["alice", "bob"])
        #expect(
            all.results[0].credentialInfos.map { [Int32($0.mechanism), $0.iterations] } == [[1, 4096], [2, 4096]])
        #expect(all.results[1].credentialInfos.map(\.iterations) == [8192])
        #expect(c.image.describeUserScramCredentials(DescribeUserScramCredentialsRequest(users: [])).results.count == 2)
        let named = c.image.describeUserScramCredentials(
            DescribeUserScramCredentialsRequest(users: [
                .init(name: "bob"), .init(name: "nobody"), .init(name: "alice"), .init(name: "alice"),
            ]))
        #expect(named.results.map(\.user) == ["bob", "nobody", "alice"])
        #expect(
            named.results.map(\.errorCode) == [
                0, ErrorCode.resourceNotFound.rawValue, ErrorCode.duplicateResource.rawValue,
            ])
        #expect(named.results[1].errorMessage == "Attempt to describe a user credential that does not exist: nobody")
        #expect(
            named.results[2].errorMessage
                == "Cannot describe SCRAM credentials for the same user twice in a single request: alice")
    }

    @Test("a SCRAM client logs in against credentials set through the controller, and fails with another password")
    func endToEnd() {
        var c = securityController()
        commit(
            &c,
            c.alterUserScramCredentials(
                AlterUserScramCredentialsRequest(
                    deletions: [],
                    upsertions: [upsertion("alice", "wonderland", mechanism: 2, iterations: 4096, salt: [7, 7, 7])])
            ).records)
        var random = SeededRandom(seed: 3)
        for (password, succeeds) in [("wonderland", true), ("looking-glass", false)] {
            var server = ScramServer(
                mechanism: .scramSha512, credentials: c.image.scramCredentialLookup, random: &random)
            var client = ScramClient(mechanism: .scramSha512, username: "alice", password: password, random: &random)
            guard case .challenge(let first) = server.step(input: client.initialResponse),
                case .send(let final) = client.step(serverMessage: first)
            else {
                Issue.record("no challenge")
                return
            }
            switch server.step(input: final) {
            case .success(let principal, let response):
                #expect(succeeds)
                #expect(principal == .user("alice"))
                #expect(client.step(serverMessage: response) == .complete)
            case .failure(let failure):
                #expect(!succeeds)
                #expect(failure.scramError == "invalid-proof")
            case .challenge:
                Issue.record("a third message")
            }
        }
    }
}
