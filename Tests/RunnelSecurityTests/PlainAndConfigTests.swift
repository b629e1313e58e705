// SASL/PLAIN (server and client), the JAAS configuration text its users come from, super.users,
// and ssl.principal.mapping.rules with the cases of Kafka's SslPrincipalMapperTest.
import RunnelCore
@testable import RunnelSecurity
import RunnelWire
import Testing

let plainJaas = """
    org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" \
    user_admin="admin-secret" user_alice="alice-secret";
    """

@Suite("SASL/PLAIN")
struct PlainTests {
    func server() throws -> PlainServer {
        PlainServer(users: try PlainUsers(jaasConfig: plainJaas))
    }

    func message(_ authzid: String, _ user: String, _ password: String) -> [UInt8] {
        Array(authzid.utf8) + [0] + Array(user.utf8) + [0] + Array(password.utf8)
    }

    func failure(_ step: SaslStep) -> SaslFailure? {
        if case .failure(let failure) = step { return failure }
        return nil
    }

    @Test("a user of the listener's JAAS config with its password is authenticated as User:<name>")
    func success() throws {
        var server = try server()
        #expect(
            server.step(input: message("", "alice", "alice-secret"))
                == .success(principal: .user("alice"), response: []))
        #expect(failure(server.step(input: message("", "alice", "alice-secret")))?.errorCode == .illegalSaslState)
    }

    @Test("a wrong password or unknown user gets Kafka's sentence")
    func wrongPassword() throws {
        for (user, password) in [("alice", "nope"), ("mallory", "alice-secret"), ("alice", "alice-secret ")] {
            var server = try server()
            #expect(
                failure(server.step(input: message("", user, password)))?.clientMessage
                    == "Authentication failed: Invalid username or password")
        }
    }

    @Test("an authorization id other than the user is refused; the same one is accepted")
    func authorizationId() throws {
        var server = try server()
        #expect(
            failure(server.step(input: message("admin", "alice", "alice-secret")))?.clientMessage
                == "Authentication failed: Client requested an authorization id that is different from username")
        var same = try self.server()
        #expect(
            same.step(input: message("alice", "alice", "alice-secret"))
                == .success(principal: .user("alice"), response: []))
    }

    @Test("a message without exactly three NUL-separated fields, or with an empty user or password, is refused")
    func malformed() throws {
        let cases: [([UInt8], String)] = [
            (Array("alice".utf8), "Invalid SASL/PLAIN response: expected 3 tokens, got 1"),
            (message("", "alice", "a") + [0], "Invalid SASL/PLAIN response: expected 3 tokens, got 4"),
            (message("", "", "alice-secret"), "Authentication failed: username not specified"),
            (message("", "alice", ""), "Authentication failed: password not specified"),
        ]
        for (input, reason) in cases {
            var server = try server()
            let f = failure(server.step(input: input))
            #expect(f?.reason == reason)
            #expect(
                f?.clientMessage
                    == "Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"
            )
        }
    }

    @Test("the client sends NUL user NUL password and completes on the empty answer")
    func client() throws {
        var client = PlainClient(username: "alice", password: "alice-secret")
        #expect(client.initialResponse == message("", "alice", "alice-secret"))
        var server = try server()
        #expect(server.step(input: client.initialResponse) == .success(principal: .user("alice"), response: []))
        #expect(client.step(serverMessage: []) == .complete)
    }
}

@Suite("JAAS config")
struct JaasConfigTests {
    @Test("Kafka's PlainLoginModule text parses into its options")
    func plainModule() throws {
        let module = try JaasConfig.parseSingle(plainJaas)
        #expect(module.name == JaasLoginModule.plainLoginModule)
        #expect(module.controlFlag == "required")
        #expect(
            module.options == [
                "username": "admin", "password": "admin-secret", "user_admin": "admin-secret",
                "user_alice": "alice-secret",
            ])
        #expect(PlainUsers(loginModule: module).count == 2)
    }

    @Test("quotes of either kind, escapes, bare words and comments are read as Java's StreamTokenizer reads them")
    func tokens() throws {
        let text = """
            // a comment
            org.apache.kafka.common.security.scram.ScramLoginModule REQUIRED /* inline */ username='bob' password="p\\"w\\\\d" tokenauth=true;
            """
        let module = try JaasConfig.parseSingle(text)
        #expect(module.controlFlag == "required")
        #expect(module.options == ["username": "bob", "password": "p\"w\\d", "tokenauth": "true"])
    }

    @Test("errors say what is wrong")
    func errors() {
        let cases: [(String, String)] = [
            ("org.Module", "Login module control flag not specified in JAAS config"),
            ("org.Module needed;", "Invalid login module control flag 'needed' in JAAS config"),
            ("org.Module required user=;", "Value not specified for key 'user' in JAAS config"),
            ("org.Module required user=\"x\"", "JAAS config entry not terminated by semi-colon"),
            (
                "a required; b required;",
                "JAAS config property sasl.jaas.config contains 2 login modules, should be 1 module"
            ),
            ("org.Module required user=\"x;", "JAAS config has a quoted value that is never closed"),
        ]
        for (text, message) in cases {
            #expect(throws: SecurityConfigError(message)) { _ = try JaasConfig.parseSingle(text) }
        }
        #expect(
            throws: SecurityConfigError(
                "sasl.jaas.config names login module org.Other; SASL/PLAIN needs org.apache.kafka.common.security.plain.PlainLoginModule"
            )
        ) {
            _ = try PlainUsers(jaasConfig: "org.Other required;")
        }
    }
}

@Suite("super.users")
struct SuperUsersTests {
    @Test("principals separated by semicolons, blanks skipped")
    func parse() throws {
        #expect(
            try StandardAuthorizer.superUsers(fromConfig: "User:admin; User:broker ;;") == [
                .user("admin"), .user("broker"),
            ])
        #expect(try StandardAuthorizer.superUsers(fromConfig: "") == [])
    }

    @Test("an entry that is not Type:name is refused")
    func refused() {
        #expect(throws: SecurityConfigError.self) {
            _ = try StandardAuthorizer.superUsers(fromConfig: "User:admin,User:bob;admin")
        }
    }
}

@Suite("ssl.principal.mapping.rules")
struct SslPrincipalMapperTests {
    @Test("DEFAULT keeps the whole distinguished name")
    func defaultRule() throws {
        let mapper = try SslPrincipalMapper()
        #expect(mapper.name(for: "CN=alice,OU=eng") == "CN=alice,OU=eng")
        #expect(mapper.principal(for: "CN=alice") == .user("CN=alice"))
    }

    @Test("Kafka's SslPrincipalMapperTest mappings")
    func kafkaCases() throws {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ].joined(separator: ", ")
        let mapper = try SslPrincipalMapper(rules: rules)
        #expect(mapper.name(for: "CN=Duke,OU=ServiceUsers,O=Org,C=US") == "duke")
        #expect(mapper.name(for: "CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US") == "duke@sme")
        #expect(mapper.name(for: "cn=duke,ou=sme,dc=mycp,dc=com") == "DUKE@SME")
        #expect(mapper.name(for: "cN=duke,OU=JavaSoft,O=Sun Microsystems") == "DUKE")
        #expect(mapper.name(for: "OU=JavaSoft,O=Sun Microsystems,C=US") == "OU=JavaSoft,O=Sun Microsystems,C=US")
    }

    @Test("commas inside a rule's pattern do not split rules")
    func commasInPatterns() throws {
        let mapper = try SslPrincipalMapper(
            rules: "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/, RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/")
        #expect(mapper.name(for: "CN=bob,OU=x") == "bob")
        #expect(mapper.name(for: "CN=Eve,OU=x") == nil, "E is excluded by both classes")
    }

    @Test("a $n for a group the pattern lacks stays literal; \\/ is a slash")
    func replacementSyntax() throws {
        let mapper = try SslPrincipalMapper(rules: "RULE:^CN=(.*)$/$1-$2\\/x/")
        #expect(mapper.name(for: "CN=a") == "a-$2/x")
    }

    @Test("no rule applying gives nil")
    func noRule() throws {
        let mapper = try SslPrincipalMapper(rules: "RULE:^CN=(.*),OU=ServiceUsers$/$1/")
        #expect(mapper.name(for: "CN=a,OU=other") == nil)
    }

    @Test("Kafka's invalid rules are refused")
    func invalid() {
        for rules in [
            "default", "DEFAUL", "DEFAULT/L", "DEFAULT/U", "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1/LU", "RULE:CN=(.*?),OU=ServiceUsers.*/$1/L/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1/LL", "RULE:CN=(.*?),OU=ServiceUsers.*/$1/L/", "RULE:(/x/",
        ] {
            #expect(throws: SecurityConfigError.self, "\(rules)") { _ = try SslPrincipalMapper(rules: rules) }
        }
    }
}

@Suite("SASL server config")
struct SaslServerConfigTests {
    @Test("a handshake gets a server only for an enabled mechanism this build knows")
    func servers() throws {
        let config = SaslServerConfig(
            enabledMechanisms: ["PLAIN", "SCRAM-SHA-512", "GSSAPI"], plainUsers: try PlainUsers(jaasConfig: plainJaas))
        var random = SeededRandom(seed: 5)
        let none: ScramServer.CredentialLookup = { _, _ in nil }
        #expect(config.server(for: "PLAIN", scramCredentials: none, random: &random)?.mechanismName == "PLAIN")
        #expect(
            config.server(for: "SCRAM-SHA-512", scramCredentials: none, random: &random)?.mechanismName
                == "SCRAM-SHA-512")
        #expect(config.server(for: "SCRAM-SHA-256", scramCredentials: none, random: &random) == nil, "not enabled")
        #expect(config.server(for: "GSSAPI", scramCredentials: none, random: &random) == nil, "not supported")
        var plain = config.server(for: "PLAIN", scramCredentials: none, random: &random)!
        #expect(
            plain.step(input: [0] + Array("alice".utf8) + [0] + Array("alice-secret".utf8))
                == .success(principal: .user("alice"), response: []))
    }
}

@Suite("--add-scram arguments")
struct ScramCredentialArgumentTests {
    @Test("a password with a given salt gives RFC 7677's keys")
    func password() throws {
        var random = SeededRandom(seed: 1)
        let argument = try ScramCredentialArgument(
            parsing: "SCRAM-SHA-256=[name=user,salt=\"W22ZaJ0SNY7soEsUEjb6gQ==\",password=pencil]", random: &random)
        #expect(argument.user == "user" && argument.mechanism == .scramSha256)
        #expect(argument.credential.iterations == 4096)
        #expect(Base64.encode(argument.credential.storedKey) == "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=")
        #expect(Base64.encode(argument.credential.serverKey) == "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
    }

    @Test("Kafka's ScramParserTest salted-password argument gives the keys Python computes from it")
    func saltedPassword() throws {
        var random = SeededRandom(seed: 1)
        let argument = try ScramCredentialArgument(
            parsing:
                "SCRAM-SHA-256=[name=alice,salt=\"MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=\",saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\",iterations=8192]",
            random: &random)
        #expect(argument.credential.iterations == 8192)
        #expect(Base64.encode(argument.credential.storedKey) == "XTIqoHHo3sscdYxycL07uh8utmHn9fXtjqyDF67CjSU=")
        #expect(Base64.encode(argument.credential.serverKey) == "Za53R2yENISN7fHL7WUxriFkV7cfbrO3+CtEptMbTPE=")
    }

    @Test("without a salt, a fresh one is drawn")
    func freshSalt() throws {
        var random = SeededRandom(seed: 1)
        let a = try ScramCredentialArgument(parsing: "SCRAM-SHA-512=[name=alice,password=x]", random: &random)
        let b = try ScramCredentialArgument(parsing: "SCRAM-SHA-512=[name=alice,password=x]", random: &random)
        #expect(a.credential.salt.count == 32 && a.credential.salt != b.credential.salt)
    }

    @Test("Kafka's errors")
    func errors() {
        var random = SeededRandom(seed: 1)
        let cases: [(String, String)] = [
            ("SCRAM-SHA-256", "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-256'"),
            ("SCRAM-SHA-1=[name=a,password=b]", "The add-scram mechanism SCRAM-SHA-1 is not supported."),
            ("SCRAM-SHA-256=name=a]", "Expected configuration string to start with ["),
            ("SCRAM-SHA-256=[name=a", "Expected configuration string to end with ]"),
            ("SCRAM-SHA-256=[password=b]", "You must supply 'name' to add-scram"),
            ("SCRAM-SHA-256=[name=a]", "You must supply one of 'password' or 'saltedpassword' to add-scram"),
            ("SCRAM-SHA-256=[name=a,saltedpassword=AAAA]", "You must supply 'salt' with 'saltedpassword' to add-scram"),
            (
                "SCRAM-SHA-256=[name=a,password=b,iterations=100]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM_SHA_256"
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,iterations=16385]",
                "The 'iterations' value must be <= 16384 for add-scram using SCRAM_SHA_256"
            ),
            ("SCRAM-SHA-256=[name=a,password=b,colour=red]", "Unknown SCRAM configurations: colour"),
            ("SCRAM-SHA-256=[name=a,password=b,salt=!!]", "Failed to decode given salt: !!"),
            ("SCRAM-SHA-256=[name=a,nothing]", "No equals sign found in SCRAM component: nothing"),
        ]
        for (text, message) in cases {
            #expect(throws: SecurityConfigError(message), "\(text)") {
                _ = try ScramCredentialArgument(parsing: text, random: &random)
            }
        }
    }
}
