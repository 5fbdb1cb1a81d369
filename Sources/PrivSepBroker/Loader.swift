// Start-up: read the config, check it against schema/config.schema.json, load the schema
// directories, and check the policy against the message types, so that every mistake is
// reported before a single helper runs. Each problem names the file, the JSON pointer and why.

import PrivSepJSON
import PrivSepSandbox
import PrivSepSchema
import PrivSepWire

/// Everything wrong with a config, one problem per line.
public struct LoadError: Error, CustomStringConvertible, Sendable {
    public let problems: [String]

    init(_ problems: [String]) { self.problems = problems }
    init(_ problem: String) { self.problems = [problem] }

    public var description: String { problems.joined(separator: "\n") }
}

/// Builds a `BrokerSetup` from a config file.
public enum BrokerLoader {
    /// Largest config file read (it is ours, but a typo'd path to a huge file should not hurt).
    static let maxConfigBytes = 4 << 20

    public static func load(configPath: String, launcherPath: String) throws(LoadError) -> BrokerSetup {
        let document = try readConfig(configPath)
        let config: BrokerConfig
        do {
            config = try ConfigReader(file: configPath).read(document)
        } catch {
            throw LoadError("\(error)")
        }
        var problems: [String] = []
        var plans: [HelperPlan] = []
        var uids = DynamicUIDAllocator(range: config.dynamicUIDRange)
        for helper in config.helpers {
            let pointer = "/helpers/" + escapePointer(helper.name)
            var ids: (uid: UInt32, gid: UInt32)
            switch helper.user {
            case .ids(let uid, let gid): ids = (uid, gid)
            case .dynamic:
                guard let uid = uids.allocate() else {
                    problems.append("\(configPath): \(pointer)/user: the dynamic uid range \(config.dynamicUIDRange) is exhausted")
                    continue
                }
                ids = (uid, uid)
            }
            do {
                let spec = try HelperLauncher.spec(for: helper, uid: ids.uid, gid: ids.gid, file: configPath, pointer: pointer)
                let seccomp = try compileSeccomp(spec, file: configPath, pointer: pointer)
                let services = try ServicePolicyReader(file: configPath, pointer: pointer).read(helper.raw)
                plans.append(HelperPlan(uid: ids.uid, gid: ids.gid, spec: spec, seccomp: seccomp, services: services))
            } catch {
                problems.append("\(error)")
            }
        }
        let registry: SchemaRegistry
        do {
            registry = try SchemaRegistry.load(directories: config.schemaDirectories)
        } catch {
            throw LoadError(problems + error.problems.map { "\($0.problem)" })
        }
        problems += policyProblems(config, registry)
        guard problems.isEmpty else { throw LoadError(problems) }
        return BrokerSetup(config: config, plans: plans, catalog: catalog(from: registry), launcherPath: launcherPath)
    }

    private static func compileSeccomp(_ spec: SandboxSpec, file: String, pointer: String) throws(ConfigError) -> SeccompProgram? {
        do {
            return try spec.compileSeccomp()
        } catch {
            throw ConfigError(file: file, pointer: pointer + "/sandbox", message: "seccomp filter: \(error)")
        }
    }

    /// Parses the file as strict JSON and validates it against the config schema.
    static func readConfig(_ path: String) throws(LoadError) -> JSONValue {
        let bytes: [UInt8]
        do {
            bytes = try SchemaFiles.read(path, limit: maxConfigBytes)
        } catch {
            throw LoadError("\(error)")
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw LoadError("\(path): not valid JSON: \(error)")
        }
        let schema: Schema
        do {
            schema = try SchemaRegistry.builtinSchema("config.schema.json")
        } catch {
            throw LoadError("built-in config schema: \(error)")
        }
        let result = schema.validate(document)
        guard result.valid else {
            throw LoadError(result.errors.prefix(20).map {
                "\(path): \($0.instanceLocation.isEmpty ? "/" : $0.instanceLocation): \($0.error) (schema \($0.keywordLocation))"
            })
        }
        return document
    }

    /// Every type a helper names must exist and be of the right kind; each request type has at
    /// most one server, and the broker's own types cannot be served by a helper.
    static func policyProblems(_ config: BrokerConfig, _ registry: SchemaRegistry) -> [String] {
        var problems: [String] = []
        var servedBy: [String: String] = [:]
        for helper in config.helpers {
            let at = "\(config.file): /helpers/\(escapePointer(helper.name))"
            for type in helper.policy.serves.sorted() {
                guard let message = registry[type] else {
                    problems.append("\(at)/serves: no message type \(type) in the schema directories")
                    continue
                }
                if message.kind != .request { problems.append("\(at)/serves: \(type) is an event; only requests are served") }
                // The privsep.* namespace is the broker's: its services, control and handshake.
                if type.hasPrefix("privsep.") { problems.append("\(at)/serves: \(type) is served by the broker itself") }
                if let other = servedBy[type] { problems.append("\(at)/serves: \(type) is already served by \(other)") }
                servedBy[type] = helper.name
            }
            for type in helper.policy.maySend.sorted() where registry[type] == nil {
                problems.append("\(at)/may_send: no message type \(type) in the schema directories")
            }
            for type in helper.policy.receives.sorted() {
                guard let message = registry[type] else {
                    problems.append("\(at)/receives: no message type \(type) in the schema directories")
                    continue
                }
                if message.kind != .event { problems.append("\(at)/receives: \(type) is a request; only events are received") }
            }
        }
        return problems
    }

    /// The router's view of the registry: kinds, fds, and compiled checks.
    static func catalog(from registry: SchemaRegistry) -> ContractCatalog {
        ContractCatalog(registry.types.values.map { message in
            MessageContract(
                type: message.name, kind: message.kind == .request ? .request : .event, fds: message.fds,
                replyFds: message.replyFds, errors: message.errors, checkBody: check(message.body),
                checkReply: message.reply.map(check) ?? acceptAnything, checkBodyBytes: checkBytes(message.body),
                checkReplyBytes: message.reply.flatMap(checkBytes), replyIsBody: message.replyIsBody, definition: message.definition)
        })
    }

    private static let acceptAnything: BodyCheck = { _ in nil }

    /// The body inside the envelope (one container around it), from the frame's bytes.
    private static func checkBytes(_ schema: Schema) -> BodyBytesCheck? {
        guard schema.vouchesForPlainObjects else { return nil }
        return { frame, start, limits in schema.checkPlainObject(in: frame, at: start, enclosingDepth: 1, limits: limits) }
    }

    /// The fast valid/invalid walk first; the detailed walk only for what fails.
    private static func check(_ schema: Schema) -> BodyCheck {
        let check: BodyCheck = { (value: JSONValue) -> [ValidationProblem]? in
            if schema.isValid(value) { return nil }
            var problems: [ValidationProblem] = []
            for unit in schema.validate(value).errors {
                problems.append(ValidationProblem(
                    instanceLocation: unit.instanceLocation, keywordLocation: unit.keywordLocation, message: unit.error))
            }
            return problems
        }
        return check
    }
}
