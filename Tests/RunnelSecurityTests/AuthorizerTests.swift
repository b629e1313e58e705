// Kafka's StandardAuthorizer rules, one test per rule, plus the ACL filter matching of
// DescribeAcls and DeleteAcls, authorizeByResourceType, authorized operations and their bit field.
import RunnelCore
@testable import RunnelSecurity
import RunnelWire
import Testing

let alice = KafkaPrincipal.user("alice")
let bob = KafkaPrincipal.user("bob")

func allow(
    _ type: ResourceType, _ name: String, _ pattern: PatternType = .literal, _ principal: String = "User:alice",
    operation: AclOperation, host: String = "*"
) -> AclBinding {
    AclBinding(type, name, pattern, principal: principal, host: host, operation: operation, permission: .allow)
}

func deny(
    _ type: ResourceType, _ name: String, _ pattern: PatternType = .literal, _ principal: String = "User:alice",
    operation: AclOperation, host: String = "*"
) -> AclBinding {
    AclBinding(type, name, pattern, principal: principal, host: host, operation: operation, permission: .deny)
}

func authorizer(
    _ bindings: [AclBinding], superUsers: Set<KafkaPrincipal> = [], allowEveryone: Bool = false
) -> StandardAuthorizer {
    var random = SeededRandom(seed: 1)
    return StandardAuthorizer(
        superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryone,
        acls: bindings.map { (KafkaUUID.random(using: &random), $0) })
}

@Suite("StandardAuthorizer rules")
struct StandardAuthorizerTests {
    @Test("a super user is allowed everything, even against a DENY")
    func superUser() {
        let a = authorizer([deny(.topic, "t", .literal, "User:admin", operation: .all)], superUsers: [.user("admin")])
        #expect(a.decide(.user("admin"), host: "1.2.3.4", operation: .write, resource: .topic("t")) == .superUser)
        #expect(a.authorize(.user("admin"), host: "1.2.3.4", operation: .clusterAction, resource: .cluster))
    }

    @Test("DENY beats ALLOW")
    func denyBeatsAllow() {
        let a = authorizer([allow(.topic, "t", operation: .read), deny(.topic, "t", operation: .read)])
        #expect(
            a.decide(alice, host: "h", operation: .read, resource: .topic("t"))
                == .deniedBy(deny(.topic, "t", operation: .read)))
    }

    @Test("a DENY on a prefix beats an ALLOW on the literal name")
    func prefixedDenyBeatsLiteralAllow() {
        let a = authorizer([
            allow(.topic, "payments.eu", operation: .write), deny(.topic, "payments.", .prefixed, operation: .write),
        ])
        #expect(!a.authorize(alice, host: "h", operation: .write, resource: .topic("payments.eu")))
    }

    @Test("User:* matches every principal, of any type")
    func wildcardPrincipal() {
        let a = authorizer([allow(.topic, "t", .literal, "User:*", operation: .read)])
        #expect(a.authorize(bob, host: "h", operation: .read, resource: .topic("t")))
        #expect(
            a.authorize(KafkaPrincipal(type: "Group", name: "ops"), host: "h", operation: .read, resource: .topic("t")))
    }

    @Test("a binding for another principal does not match")
    func otherPrincipal() {
        let a = authorizer([allow(.topic, "t", .literal, "User:bob", operation: .read)])
        #expect(a.decide(alice, host: "h", operation: .read, resource: .topic("t")) == .noMatchingAcl)
    }

    @Test("host * matches every host; another host must be equal")
    func hosts() {
        let a = authorizer([
            allow(.topic, "t", operation: .read, host: "10.0.0.1"), allow(.topic, "u", operation: .read),
        ])
        #expect(a.authorize(alice, host: "10.0.0.1", operation: .read, resource: .topic("t")))
        #expect(!a.authorize(alice, host: "10.0.0.2", operation: .read, resource: .topic("t")))
        #expect(a.authorize(alice, host: "10.0.0.2", operation: .read, resource: .topic("u")))
    }

    @Test("literal name * matches every resource of its type, and only of its type")
    func wildcardResource() {
        let a = authorizer([allow(.topic, "*", operation: .read)])
        #expect(a.authorize(alice, host: "h", operation: .read, resource: .topic("anything")))
        #expect(
            a.decide(alice, host: "h", operation: .read, resource: .group("anything")) == .noAclFound(allowed: false))
    }

    @Test("a prefixed pattern matches names that begin with it, not shorter or other names")
    func prefixed() {
        let a = authorizer([allow(.topic, "orders-", .prefixed, operation: .read)])
        #expect(a.authorize(alice, host: "h", operation: .read, resource: .topic("orders-eu")))
        #expect(a.authorize(alice, host: "h", operation: .read, resource: .topic("orders-")))
        #expect(!a.authorize(alice, host: "h", operation: .read, resource: .topic("orders")))
        #expect(a.decide(alice, host: "h", operation: .read, resource: .topic("orders")) == .noAclFound(allowed: false))
    }

    @Test("a literal binding matches only its exact name, byte for byte")
    func literalExact() {
        let a = authorizer([allow(.group, "caf\u{E9}", operation: .read)])
        #expect(a.authorize(alice, host: "h", operation: .read, resource: .group("caf\u{E9}")))
        #expect(
            !a.authorize(alice, host: "h", operation: .read, resource: .group("cafe\u{301}")),
            "canonically equivalent is not equal")
        #expect(!a.authorize(alice, host: "h", operation: .read, resource: .group("caf")))
    }

    @Test("DESCRIBE is implied by an ALLOW of READ, WRITE, DELETE or ALTER, and not by others")
    func impliedDescribe() {
        for op in [AclOperation.read, .write, .delete, .alter, .describe] {
            #expect(
                authorizer([allow(.topic, "t", operation: op)]).authorize(
                    alice, host: "h", operation: .describe, resource: .topic("t")), "\(op)")
        }
        for op in [AclOperation.create, .alterConfigs, .describeConfigs] {
            #expect(
                !authorizer([allow(.topic, "t", operation: op)]).authorize(
                    alice, host: "h", operation: .describe, resource: .topic("t")), "\(op)")
        }
    }

    @Test("DESCRIBE_CONFIGS is implied by an ALLOW of ALTER_CONFIGS")
    func impliedDescribeConfigs() {
        let a = authorizer([allow(.topic, "t", operation: .alterConfigs)])
        #expect(a.authorize(alice, host: "h", operation: .describeConfigs, resource: .topic("t")))
        #expect(!a.authorize(alice, host: "h", operation: .alter, resource: .topic("t")))
    }

    @Test("a DENY implies nothing: DENY READ does not deny DESCRIBE")
    func denyImpliesNothing() {
        let a = authorizer([allow(.topic, "t", operation: .describe), deny(.topic, "t", operation: .read)])
        #expect(a.authorize(alice, host: "h", operation: .describe, resource: .topic("t")))
        #expect(!a.authorize(alice, host: "h", operation: .read, resource: .topic("t")))
    }

    @Test("a binding whose permission this build does not know denies, as Kafka's findResult fails closed")
    func unknownPermissionDenies() {
        let a = authorizer([
            allow(.topic, "t", operation: .read),
            AclBinding(.topic, "t", principal: "User:alice", operation: .read, permission: .unknown),
        ])
        #expect(!a.authorize(alice, host: "h", operation: .read, resource: .topic("t")))
    }

    @Test("ALL allows every operation, and a DENY of ALL denies every operation")
    func all() {
        let a = authorizer([allow(.topic, "t", operation: .all)])
        for op in AclOperation.supported(by: .topic) {
            #expect(a.authorize(alice, host: "h", operation: op, resource: .topic("t")))
        }
        let d = authorizer([allow(.topic, "t", operation: .all), deny(.topic, "t", operation: .all)])
        #expect(!d.authorize(alice, host: "h", operation: .describe, resource: .topic("t")))
    }

    @Test("with no binding for the resource, allow.everyone.if.no.acl.found decides")
    func noAclFound() {
        let bindings = [allow(.topic, "other", operation: .read)]
        #expect(
            authorizer(bindings, allowEveryone: true).decide(bob, host: "h", operation: .write, resource: .topic("t"))
                == .noAclFound(allowed: true))
        #expect(
            authorizer(bindings, allowEveryone: false).decide(bob, host: "h", operation: .write, resource: .topic("t"))
                == .noAclFound(allowed: false))
    }

    @Test(
        "with bindings for the resource but none matching, the action is denied even if allow.everyone.if.no.acl.found")
    func bindingsButNoMatch() {
        let a = authorizer([allow(.topic, "t", operation: .read)], allowEveryone: true)
        #expect(a.decide(bob, host: "h", operation: .read, resource: .topic("t")) == .noMatchingAcl)
        #expect(a.decide(alice, host: "h", operation: .write, resource: .topic("t")) == .noMatchingAcl)
    }

    @Test("a prefixed binding counts as a binding for the resource when deciding the default")
    func prefixedCountsForDefault() {
        let a = authorizer([allow(.topic, "o", .prefixed, "User:bob", operation: .read)], allowEveryone: true)
        #expect(a.decide(alice, host: "h", operation: .read, resource: .topic("orders")) == .noMatchingAcl)
    }

    @Test("bindings are added and removed by record id")
    func addAndRemove() {
        var a = StandardAuthorizer()
        let id = KafkaUUID(high: 1, low: 2)
        a.add(id: id, binding: allow(.topic, "t", .prefixed, operation: .read))
        #expect(a.authorize(alice, host: "h", operation: .read, resource: .topic("tx")))
        a.add(id: id, binding: allow(.topic, "u", operation: .read))
        #expect(a.aclCount == 1)
        #expect(
            !a.authorize(alice, host: "h", operation: .read, resource: .topic("tx")), "the id's old binding is gone")
        a.remove(id: id)
        #expect(a.aclCount == 0)
        #expect(a.decide(alice, host: "h", operation: .read, resource: .topic("u")) == .noAclFound(allowed: false))
        a.remove(id: id)
    }

    @Test("ten thousand bindings: checks find the right ones among them")
    func manyBindings() {
        var bindings: [AclBinding] = []
        for i in 0..<5000 { bindings.append(allow(.topic, "topic-\(i)", .literal, "User:u\(i)", operation: .read)) }
        for i in 0..<5000 { bindings.append(allow(.group, "g\(i)-", .prefixed, "User:u\(i)", operation: .read)) }
        let a = authorizer(bindings)
        #expect(a.aclCount == 10_000)
        #expect(a.authorize(.user("u4321"), host: "h", operation: .read, resource: .topic("topic-4321")))
        #expect(!a.authorize(.user("u4321"), host: "h", operation: .read, resource: .topic("topic-4322")))
        #expect(a.authorize(.user("u77"), host: "h", operation: .describe, resource: .group("g77-consumers")))
        #expect(!a.authorize(.user("u78"), host: "h", operation: .describe, resource: .group("g77-consumers")))
        #expect(
            a.applicableCount(to: .topic("topic-4321")) == 1,
            "a check looks at the bindings that apply, not at all 10,000")
        #expect(a.applicableCount(to: .group("g77-consumers")) == 1)
        #expect(a.applicableCount(to: .topic("nothing")) == 0)
    }
}

@Suite("authorizeByResourceType")
struct AuthorizeByResourceTypeTests {
    @Test("an ALLOW on any topic for the principal allows WRITE by type")
    func allowSomewhere() {
        let a = authorizer([allow(.topic, "t", operation: .write)])
        #expect(a.authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
        #expect(!a.authorizeByResourceType(bob, host: "h", operation: .write, type: .topic))
        #expect(!a.authorizeByResourceType(alice, host: "h", operation: .write, type: .transactionalId))
    }

    @Test("a literal * DENY denies by type; a literal ALLOW dominated by a DENY of its name or a prefix does not count")
    func dominated() {
        #expect(
            !authorizer([allow(.topic, "t", operation: .write), deny(.topic, "*", operation: .write)])
                .authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
        #expect(
            !authorizer([allow(.topic, "t", operation: .write), deny(.topic, "t", operation: .write)])
                .authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
        #expect(
            !authorizer([
                allow(.topic, "abc", .prefixed, operation: .write), deny(.topic, "a", .prefixed, operation: .write),
            ])
            .authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
        #expect(
            authorizer([allow(.topic, "abc", operation: .write), deny(.topic, "abd", .prefixed, operation: .write)])
                .authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
    }

    @Test("implied operations do not count, ALL does; super users and the default apply")
    func rules() {
        #expect(
            !authorizer([allow(.topic, "t", operation: .read)]).authorizeByResourceType(
                alice, host: "h", operation: .describe, type: .topic))
        #expect(
            authorizer([allow(.topic, "t", operation: .all)]).authorizeByResourceType(
                alice, host: "h", operation: .write, type: .topic))
        #expect(
            authorizer([], superUsers: [alice]).authorizeByResourceType(
                alice, host: "h", operation: .write, type: .topic))
        #expect(
            authorizer([], allowEveryone: true).authorizeByResourceType(
                alice, host: "h", operation: .write, type: .topic))
        #expect(!authorizer([]).authorizeByResourceType(alice, host: "h", operation: .write, type: .topic))
    }
}

@Suite("authorized operations")
struct AuthorizedOperationsTests {
    @Test("the operations allowed on a resource, among those its type supports")
    func operations() {
        let a = authorizer([allow(.topic, "t", operation: .read), allow(.topic, "t", operation: .alterConfigs)])
        #expect(
            a.authorizedOperations(alice, host: "h", resource: .topic("t")) == [
                .read, .describe, .alterConfigs, .describeConfigs,
            ])
        #expect(
            authorizer([], superUsers: [alice]).authorizedOperations(alice, host: "h", resource: .group("g"))
                == [.read, .describe, .delete, .describeConfigs, .alterConfigs])
    }

    @Test("the bit field sets bit i for operation code i, as Kafka's Utils.to32BitField")
    func bitField() {
        #expect(AclOperation.bitField([.read, .describe]) == (1 << 3) | (1 << 8))
        #expect(AclOperation.bitField([]) == 0)
        #expect(AclOperation.operations(inBitField: (1 << 3) | (1 << 8)) == [.read, .describe])
        #expect(AclOperation.authorizedOperationsOmitted == Int32.min)
    }
}

@Suite("ACL filters")
struct AclFilterTests {
    let literalT = ResourcePattern(.topic, "orders", .literal)
    let wildcard = ResourcePattern(.topic, "*", .literal)
    let prefixed = ResourcePattern(.topic, "ord", .prefixed)

    @Test("ANY pattern type compares names exactly, whatever the pattern type")
    func anyPatternType() {
        let filter = ResourcePatternFilter(.topic, "orders", .any)
        #expect(filter.matches(literalT))
        #expect(!filter.matches(wildcard))
        #expect(!filter.matches(prefixed))
        #expect(filter.matches(ResourcePattern(.topic, "orders", .prefixed)))
    }

    @Test("MATCH selects every pattern that applies to the name: equal or * literals and prefixes")
    func matchPatternType() {
        let filter = ResourcePatternFilter(.topic, "orders", .match)
        #expect(filter.matches(literalT) && filter.matches(wildcard) && filter.matches(prefixed))
        #expect(!filter.matches(ResourcePattern(.topic, "orders-eu", .prefixed)))
        #expect(!filter.matches(ResourcePattern(.group, "orders", .literal)))
    }

    @Test("a specific pattern type selects only that type, with an exact name; a null name matches all names")
    func specific() {
        #expect(ResourcePatternFilter(.topic, "ord", .prefixed).matches(prefixed))
        #expect(!ResourcePatternFilter(.topic, "ord", .literal).matches(prefixed))
        #expect(ResourcePatternFilter(.topic, nil, .literal).matches(wildcard))
        #expect(ResourcePatternFilter(.any, nil, .any).matches(ResourcePattern(.cluster, "kafka-cluster")))
    }

    @Test("entry filters: null principal and host match all; ANY operation and permission match all; no implication")
    func entries() {
        let entry = AccessControlEntry(principal: "User:alice", host: "*", operation: .read, permissionType: .allow)
        #expect(AccessControlEntryFilter.any.matches(entry))
        #expect(
            AccessControlEntryFilter(principal: "User:alice", host: nil, operation: .read, permissionType: .any)
                .matches(entry))
        #expect(
            !AccessControlEntryFilter(principal: "User:*", host: nil, operation: .any, permissionType: .any).matches(
                entry))
        #expect(
            !AccessControlEntryFilter(principal: nil, host: "h", operation: .any, permissionType: .any).matches(entry))
        #expect(
            !AccessControlEntryFilter(principal: nil, host: nil, operation: .describe, permissionType: .any).matches(
                entry))
    }

    @Test("unknown components are flagged")
    func unknown() {
        #expect(
            AclBindingFilter(patternFilter: ResourcePatternFilter(.unknown, nil, .any), entryFilter: .any).isUnknown)
        #expect(
            AclBindingFilter(
                patternFilter: .any,
                entryFilter: AccessControlEntryFilter(
                    principal: nil, host: nil, operation: .unknown, permissionType: .any)
            ).isUnknown)
        #expect(!AclBindingFilter.any.isUnknown)
    }

    @Test("bindings Kafka's controller refuses to create")
    func validation() {
        #expect(allow(.topic, "t", operation: .read).validationError == nil)
        #expect(allow(.any, "t", operation: .read).validationError == "Invalid resourceType ANY")
        #expect(allow(.topic, "t", .match, operation: .read).validationError == "Invalid patternType MATCH")
        #expect(allow(.topic, "t", operation: .any).validationError == "Invalid operation ANY")
        #expect(allow(.topic, "", operation: .read).validationError == "Resource name should not be empty")
        #expect(
            allow(.cluster, "c", operation: .alter).validationError
                == "The only valid name for the CLUSTER resource is kafka-cluster")
        #expect(allow(.topic, "t", .literal, "alice", operation: .read).validationError != nil)
        #expect(
            AclBinding(.topic, "t", principal: "User:a", operation: .read, permission: .any).validationError
                == "Invalid permissionType ANY")
    }

    @Test("codes and names are Kafka's; unknown codes read as UNKNOWN")
    func codes() {
        #expect(ResourceType(code: 5) == .transactionalId && ResourceType(code: 99) == .unknown)
        #expect(AclOperation(code: 14) == .describeTokens && AclOperation(code: 15) == .unknown)
        #expect(AclOperation(name: "describe_configs") == .describeConfigs)
        #expect(PatternType(code: 4) == .prefixed && AclPermissionType(code: 3) == .allow)
        #expect(ResourceType.transactionalId.description == "TRANSACTIONAL_ID")
    }

    @Test("principals parse at the first colon and print back")
    func principals() {
        #expect(KafkaPrincipal(parsing: "User:CN=a,O=b:c") == KafkaPrincipal(type: "User", name: "CN=a,O=b:c"))
        #expect(KafkaPrincipal(parsing: "alice") == nil)
        #expect(KafkaPrincipal.user("alice").description == "User:alice")
        #expect(KafkaPrincipal.user("caf\u{E9}") != KafkaPrincipal.user("cafe\u{301}"))
    }
}
