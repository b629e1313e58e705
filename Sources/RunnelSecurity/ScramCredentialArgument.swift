/// A SCRAM credential given on a command line as Kafka's `kafka-storage format --add-scram`
/// takes it (Kafka's `ScramParser`), for `runnel format --add-scram`:
///
///     SCRAM-SHA-256=[name=alice,password=alice-secret]
///     SCRAM-SHA-512=[name=alice,iterations=8192,salt="MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=",saltedpassword="mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE="]
///
/// `name` and one of `password` or `saltedpassword` (with `salt`) are required; `salt` and
/// `saltedpassword` are base64; `iterations` defaults to 4096 and must lie in 4096...16384; a
/// value may be double-quoted.
public struct ScramCredentialArgument: Sendable, Equatable {
    public var user: String
    public var mechanism: ScramMechanism
    public var credential: ScramCredential

    /// Parses one `--add-scram` argument. Without a salt, one is drawn from `random` (pass a
    /// cryptographically secure generator outside tests).
    public init(parsing argument: String, random: inout some RandomNumberGenerator) throws(SecurityConfigError) {
        let input = argument.trimmingWhitespace()
        guard let equals = input.firstIndex(of: "=") else {
            throw SecurityConfigError("Failed to find equals sign in SCRAM argument '\(input)'")
        }
        let mechanismName = String(input[..<equals])
        guard let mechanism = ScramMechanism(mechanismName: mechanismName) else {
            throw SecurityConfigError("The add-scram mechanism \(mechanismName) is not supported.")
        }
        var config = input[input.index(after: equals)...]
        guard config.hasPrefix("[") else { throw SecurityConfigError("Expected configuration string to start with [") }
        guard config.hasSuffix("]") else { throw SecurityConfigError("Expected configuration string to end with ]") }
        config = config.dropFirst().dropLast()
        var components: [String: String] = [:]
        for part in config.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = part.firstIndex(of: "=") else {
                throw SecurityConfigError("No equals sign found in SCRAM component: \(part)")
            }
            var value = part[part.index(after: eq)...]
            if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
                value = value.dropFirst().dropLast()
            }
            components[String(part[..<eq])] = String(value)
        }
        guard let name = components.removeValue(forKey: "name") else {
            throw SecurityConfigError("You must supply 'name' to add-scram")
        }
        var salt: [UInt8]?
        if let text = components.removeValue(forKey: "salt") {
            guard let decoded = Base64.decode(text) else {
                throw SecurityConfigError("Failed to decode given salt: \(text)")
            }
            salt = decoded
        }
        var iterations: Int32 = 4096
        if let text = components.removeValue(forKey: "iterations") {
            guard let n = Int32(text) else { throw SecurityConfigError("Failed to parse iterations count: \(text)") }
            iterations = n
        }
        let password = components.removeValue(forKey: "password")
        let saltedText = components.removeValue(forKey: "saltedpassword")
        if !components.isEmpty {
            throw SecurityConfigError(
                "Unknown SCRAM configurations: \(components.keys.sorted().joined(separator: ", "))")
        }
        if iterations < mechanism.minIterations {
            throw SecurityConfigError(
                "The 'iterations' value must be >= \(mechanism.minIterations) for add-scram using \(mechanism)")
        }
        if iterations > ScramMechanism.maxIterations {
            throw SecurityConfigError(
                "The 'iterations' value must be <= \(ScramMechanism.maxIterations) for add-scram using \(mechanism)")
        }
        let formatter = ScramFormatter(mechanism)
        if let password {
            let salt = salt ?? randomBytes(32, using: &random)
            credential = formatter.credential(password: password, salt: salt, iterations: iterations)
        } else if let saltedText {
            guard let salt else {
                throw SecurityConfigError("You must supply 'salt' with 'saltedpassword' to add-scram")
            }
            guard let salted = Base64.decode(saltedText) else {
                throw SecurityConfigError("Failed to decode given saltedPassword: \(saltedText)")
            }
            credential = formatter.credential(saltedPassword: salted, salt: salt, iterations: iterations)
        } else {
            throw SecurityConfigError("You must supply one of 'password' or 'saltedpassword' to add-scram")
        }
        self.user = name
        self.mechanism = mechanism
    }
}
