import NIOCore
import RunnelCore
import RunnelSecurity
import RunnelWire

/// A SCRAM credential as DescribeUserScramCredentials reports it (never the keys).
public struct ScramCredentialInfo: Sendable, Equatable {
    public var user: String
    public var mechanism: String
    public var iterations: Int32
}

extension KafkaClient {
    // MARK: ACLs (Kafka's Admin createAcls, describeAcls, deleteAcls)

    /// CreateAcls; throws the first binding's refusal.
    public func createAcls(_ bindings: [AclBinding]) async throws {
        let (response, _, _) = try await sendAny { _ in
            CreateAclsRequest(
                creations: bindings.map {
                    .init(
                        resourceType: $0.pattern.resourceType.rawValue, resourceName: $0.pattern.name,
                        resourcePatternType: $0.pattern.patternType.rawValue,
                        principal: $0.entry.principal, host: $0.entry.host, operation: $0.entry.operation.rawValue,
                        permissionType: $0.entry.permissionType.rawValue)
                })
        }
        for (binding, result) in zip(bindings, response.results) where result.errorCode != 0 {
            throw ClientError(
                "creating ACL \(binding) failed: \(Self.reason(ErrorCode(result.errorCode), result.errorMessage))")
        }
    }

    /// DescribeAcls: the bindings `filter` selects.
    public func describeAcls(_ filter: AclBindingFilter) async throws -> [AclBinding] {
        let (response, _, _) = try await sendAny { _ in
            DescribeAclsRequest(
                resourceTypeFilter: filter.patternFilter.resourceType.rawValue,
                resourceNameFilter: filter.patternFilter.name,
                patternTypeFilter: filter.patternFilter.patternType.rawValue,
                principalFilter: filter.entryFilter.principal,
                hostFilter: filter.entryFilter.host, operation: filter.entryFilter.operation.rawValue,
                permissionType: filter.entryFilter.permissionType.rawValue)
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "listing ACLs failed: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))")
        }
        return response.resources.flatMap { resource in
            resource.acls.map {
                AclBinding(
                    ResourceType(code: resource.resourceType), resource.resourceName,
                    PatternType(code: resource.patternType),
                    principal: $0.principal, host: $0.host, operation: AclOperation(code: $0.operation),
                    permission: AclPermissionType(code: $0.permissionType))
            }
        }
    }

    /// DeleteAcls: removes every binding `filter` selects and returns them.
    public func deleteAcls(_ filter: AclBindingFilter) async throws -> [AclBinding] {
        let (response, _, _) = try await sendAny { _ in
            DeleteAclsRequest(filters: [
                .init(
                    resourceTypeFilter: filter.patternFilter.resourceType.rawValue,
                    resourceNameFilter: filter.patternFilter.name,
                    patternTypeFilter: filter.patternFilter.patternType.rawValue,
                    principalFilter: filter.entryFilter.principal,
                    hostFilter: filter.entryFilter.host, operation: filter.entryFilter.operation.rawValue,
                    permissionType: filter.entryFilter.permissionType.rawValue)
            ])
        }
        guard let result = response.filterResults.first else { throw ClientError("DeleteAcls answered no result") }
        guard result.errorCode == 0 else {
            throw ClientError("removing ACLs failed: \(Self.reason(ErrorCode(result.errorCode), result.errorMessage))")
        }
        return result.matchingAcls.map {
            AclBinding(
                ResourceType(code: $0.resourceType), $0.resourceName, PatternType(code: $0.patternType),
                principal: $0.principal,
                host: $0.host, operation: AclOperation(code: $0.operation),
                permission: AclPermissionType(code: $0.permissionType))
        }
    }

    // MARK: SCRAM credentials (Kafka's Admin alterUserScramCredentials, describeUserScramCredentials)

    /// Sets `user`'s SCRAM credential for `mechanism`: the salted password is computed here
    /// (PBKDF2 over a fresh salt), so the password never leaves the client.
    public func setScramCredential(
        user: String, mechanism: ScramMechanism, password: String, iterations: Int32 = 4096
    ) async throws {
        var random = SystemRandomNumberGenerator()
        let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let salted = ScramFormatter(mechanism).saltedPassword(password, salt: salt, iterations: iterations)
        let (response, _, _) = try await sendAny { _ in
            AlterUserScramCredentialsRequest(
                deletions: [],
                upsertions: [
                    .init(
                        name: user, mechanism: mechanism.rawValue, iterations: iterations,
                        salt: ByteBuffer(bytes: salt), saltedPassword: ByteBuffer(bytes: salted))
                ])
        }
        for result in response.results where result.errorCode != 0 {
            throw ClientError(
                "setting the \(mechanism.mechanismName) credential of \(user) failed: \(Self.reason(ErrorCode(result.errorCode), result.errorMessage))"
            )
        }
    }

    /// Deletes `user`'s SCRAM credential for `mechanism`.
    public func deleteScramCredential(user: String, mechanism: ScramMechanism) async throws {
        let (response, _, _) = try await sendAny { _ in
            AlterUserScramCredentialsRequest(
                deletions: [.init(name: user, mechanism: mechanism.rawValue)], upsertions: [])
        }
        for result in response.results where result.errorCode != 0 {
            throw ClientError(
                "deleting the \(mechanism.mechanismName) credential of \(user) failed: \(Self.reason(ErrorCode(result.errorCode), result.errorMessage))"
            )
        }
    }

    /// DescribeUserScramCredentials: every user's (or `users`') mechanisms and iterations.
    public func describeScramCredentials(users: [String]? = nil) async throws -> [ScramCredentialInfo] {
        let (response, _, _) = try await sendAny { _ in
            DescribeUserScramCredentialsRequest(users: users.map { $0.map { .init(name: $0) } })
        }
        guard response.errorCode == 0 else {
            throw ClientError(
                "listing SCRAM credentials failed: \(Self.reason(ErrorCode(response.errorCode), response.errorMessage))"
            )
        }
        var out: [ScramCredentialInfo] = []
        for result in response.results {
            guard result.errorCode == 0 else {
                throw ClientError(
                    "describing \(result.user) failed: \(Self.reason(ErrorCode(result.errorCode), result.errorMessage))"
                )
            }
            for info in result.credentialInfos {
                out.append(
                    ScramCredentialInfo(
                        user: result.user, mechanism: ScramMechanism(code: info.mechanism)?.mechanismName ?? "UNKNOWN",
                        iterations: info.iterations))
            }
        }
        return out
    }
}
