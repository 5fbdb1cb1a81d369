// The broker's configuration: one JSON file, checked against schema/config.schema.json by our
// own validator before this code reads it. The reader below still checks every value it takes,
// so a schema edit can never turn a bad config into a crash; its errors name the JSON pointer.

import PrivSepJSON

/// A config problem: the file, the JSON pointer and what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let pointer: String
    public let message: String

    public init(file: String, pointer: String, message: String) {
        self.file = file
        self.pointer = pointer
        self.message = message
    }

    public var description: String { "\(file): \(pointer.isEmpty ? "/" : pointer): \(message)" }
}

/// When a helper is started again after it exits.
public enum RestartMode: String, Sendable {
    case always
    case onFailure = "on-failure"
    case never
}

/// Restart policy with exponential backoff and a cap on restarts within a window (s6-style).
public struct RestartPolicy: Sendable, Equatable {
    public var mode: RestartMode = .onFailure
    /// First delay; doubled after each consecutive failure up to `maxBackoffMs`.
    public var initialBackoffMs: Int64 = 100
    public var maxBackoffMs: Int64 = 30_000
    /// More than this many restarts within `windowMs` and the broker gives up on the helper.
    public var maxRestarts: Int = 5
    public var windowMs: Int64 = 60_000

    public init() {}
}

/// Per-helper bounds. Every queue and wait the broker keeps for a helper is capped here.
public struct HelperLimits: Sendable, Equatable {
    /// Largest frame accepted from or sent to the helper (announced in the hello reply).
    public var maxFrame: Int = 1 << 20
    /// Requests the helper may have in flight at once as a requester.
    public var maxInFlight: Int = 64
    /// Bytes queued towards the helper before the broker stops reading from its senders.
    public var queueBytes: Int = 4 << 20
    /// How long a request served by (or made by) this helper may wait for its final reply.
    public var requestTimeoutMs: Int64 = 30_000
    /// How long after spawn the helper's hello may take.
    public var helloTimeoutMs: Int64 = 10_000
    /// Refused messages (denied, invalid) after which the helper is killed.
    public var maxViolations: Int = 100
    /// How long the helper's queue may stay full without it reading before it is killed.
    public var stallTimeoutMs: Int64 = 10_000
    /// Messages per second the broker takes from the helper, in bursts of up to a tenth of a
    /// second's worth; beyond it the broker stops reading until the allowance refills, so a
    /// flooding helper waits on its own socket instead of taking the CPUs from the others.
    /// 0: no limit.
    public var maxRate: Int = 20_000

    public init() {}
}

/// Which uid and gid a helper runs as.
public enum HelperUser: Sendable, Equatable {
    /// A uid of its own from the broker's dynamic range (the default; like DynamicUser=).
    case dynamic
    /// A fixed uid and gid.
    case ids(uid: UInt32, gid: UInt32)
}

/// One helper as configured.
public struct HelperConfig: Sendable {
    /// The helper's name: unique, `^[a-z][a-z0-9_-]{0,31}$`; the `from` of what it sends.
    public var name: String
    /// argv; argv[0] is an absolute path.
    public var command: [String]
    /// The `sandbox` object, passed to the launcher as options one to one.
    public var sandbox: JSONObject
    public var user: HelperUser
    public var policy: HelperPolicy
    public var limits: HelperLimits
    public var restart: RestartPolicy
    /// If the broker gives up on this helper, the broker stops with a failure status.
    public var required: Bool
    /// The raw helper object, for services that read their own policy sections (files, net...).
    public var raw: JSONObject
}

/// The whole broker configuration.
public struct BrokerConfig: Sendable {
    /// The file it was read from, for messages.
    public var file: String
    /// Extra schema directories (absolute, resolved against the config file's directory).
    public var schemaDirectories: [String]
    public var logLevel: String
    public var logFormat: LogFormat
    public var controlSocket: String?
    public var shutdownGraceMs: Int64
    /// The uid range dynamic helpers are allocated from (inclusive).
    public var dynamicUIDRange: ClosedRange<UInt32>
    /// Helpers in file order.
    public var helpers: [HelperConfig]
}

/// Reads a `BrokerConfig` out of a parsed config document.
public struct ConfigReader {
    let file: String
    let baseDirectory: String

    public init(file: String) {
        self.file = file
        if let slash = file.lastIndex(of: "/") {
            baseDirectory = slash == file.startIndex ? "/" : String(file[..<slash])
        } else {
            baseDirectory = "."
        }
    }

    public func read(_ document: JSONValue) throws(ConfigError) -> BrokerConfig {
        let root = try object(document, at: "")
        var config = BrokerConfig(
            file: file, schemaDirectories: [], logLevel: "info", logFormat: .text, controlSocket: nil,
            shutdownGraceMs: 5_000, dynamicUIDRange: 61184...65519, helpers: [])
        for (key, value) in root.members {
            let pointer = "/" + escapePointer(key)
            switch key {
            case "schema_dirs": config.schemaDirectories = try strings(value, at: pointer).map(resolve)
            case "log":
                let log = try object(value, at: pointer)
                if let level = log["level"] { config.logLevel = try string(level, at: pointer + "/level") }
                if let format = log["format"] {
                    let name = try string(format, at: pointer + "/format")
                    guard let parsed = LogFormat(rawValue: name) else {
                        throw failure(pointer + "/format", "must be \"text\" or \"json\", not \"\(name)\"")
                    }
                    config.logFormat = parsed
                }
            case "control_socket": config.controlSocket = resolve(try string(value, at: pointer))
            case "shutdown_grace_ms": config.shutdownGraceMs = try integer(value, at: pointer, in: 0...600_000)
            case "dynamic_uids":
                let bounds = try array(value, at: pointer)
                guard bounds.count == 2 else { throw failure(pointer, "must be [first, last]") }
                let low = try integer(bounds[0], at: pointer + "/0", in: 1...4_294_967_294)
                let high = try integer(bounds[1], at: pointer + "/1", in: low...4_294_967_294)
                config.dynamicUIDRange = UInt32(low)...UInt32(high)
            case "helpers":
                let helpers = try object(value, at: pointer)
                for (name, helper) in helpers.members {
                    config.helpers.append(try readHelper(name: name, helper, at: pointer + "/" + escapePointer(name)))
                }
            case "$schema", "description": continue
            default: throw failure(pointer, "unknown member \"\(key)\"")
            }
        }
        guard !config.helpers.isEmpty else { throw failure("/helpers", "at least one helper is required") }
        return config
    }

    private func readHelper(name: String, _ value: JSONValue, at pointer: String) throws(ConfigError) -> HelperConfig {
        guard isValidHelperName(name) else {
            throw failure(pointer, "helper name \"\(name)\" must match ^[a-z][a-z0-9_-]{0,31}$ (and is not \"broker\")")
        }
        let helper = try object(value, at: pointer)
        var config = HelperConfig(
            name: name, command: [], sandbox: JSONObject(), user: .dynamic,
            policy: HelperPolicy(maySend: [], serves: [], receives: []), limits: HelperLimits(),
            restart: RestartPolicy(), required: false, raw: helper)
        var maySend: Set<String> = [], serves: Set<String> = [], receives: Set<String> = []
        for (key, member) in helper.members {
            let at = pointer + "/" + escapePointer(key)
            switch key {
            case "command":
                config.command = try strings(member, at: at)
                guard let program = config.command.first, program.hasPrefix("/") else {
                    throw failure(at, "must start with an absolute program path")
                }
            case "sandbox": config.sandbox = try object(member, at: at)
            case "user": config.user = try readUser(member, at: at)
            case "serves": serves = Set(try strings(member, at: at))
            case "may_send": maySend = Set(try strings(member, at: at))
            case "receives": receives = Set(try strings(member, at: at))
            case "limits": config.limits = try readLimits(member, at: at)
            case "restart": config.restart = try readRestart(member, at: at)
            case "required": config.required = try bool(member, at: at)
            case "description", "files", "net", "dns", "users": continue
            default: throw failure(at, "unknown member \"\(key)\"")
            }
        }
        guard !config.command.isEmpty else { throw failure(pointer, "missing \"command\"") }
        config.policy = HelperPolicy(maySend: maySend, serves: serves, receives: receives)
        return config
    }

    private func readUser(_ value: JSONValue, at pointer: String) throws(ConfigError) -> HelperUser {
        if case .string("dynamic") = value { return .dynamic }
        let ids = try object(value, at: pointer)
        guard let uid = ids["uid"], let gid = ids["gid"] else {
            throw failure(pointer, "must be \"dynamic\" or {\"uid\": N, \"gid\": N}")
        }
        // uid 0 would defeat the point of a helper; the launcher refuses it too.
        return .ids(
            uid: UInt32(try integer(uid, at: pointer + "/uid", in: 1...4_294_967_294)),
            gid: UInt32(try integer(gid, at: pointer + "/gid", in: 1...4_294_967_294)))
    }

    private func readLimits(_ value: JSONValue, at pointer: String) throws(ConfigError) -> HelperLimits {
        var limits = HelperLimits()
        for (key, member) in try object(value, at: pointer).members {
            let at = pointer + "/" + escapePointer(key)
            switch key {
            case "max_frame": limits.maxFrame = Int(try integer(member, at: at, in: 64...(16 << 20)))
            case "max_in_flight": limits.maxInFlight = Int(try integer(member, at: at, in: 1...65_536))
            case "queue_bytes": limits.queueBytes = Int(try integer(member, at: at, in: 4096...(1 << 30)))
            case "request_timeout_ms": limits.requestTimeoutMs = try integer(member, at: at, in: 1...86_400_000)
            case "hello_timeout_ms": limits.helloTimeoutMs = try integer(member, at: at, in: 1...600_000)
            case "max_violations": limits.maxViolations = Int(try integer(member, at: at, in: 1...1_000_000))
            case "stall_timeout_ms": limits.stallTimeoutMs = try integer(member, at: at, in: 1...86_400_000)
            case "max_rate": limits.maxRate = Int(try integer(member, at: at, in: 0...100_000_000))
            default: throw failure(at, "unknown member \"\(key)\"")
            }
        }
        // A queue must hold at least one whole frame, or one big reply would stall forever.
        limits.queueBytes = max(limits.queueBytes, limits.maxFrame + 4)
        return limits
    }

    private func readRestart(_ value: JSONValue, at pointer: String) throws(ConfigError) -> RestartPolicy {
        var policy = RestartPolicy()
        for (key, member) in try object(value, at: pointer).members {
            let at = pointer + "/" + escapePointer(key)
            switch key {
            case "policy":
                let name = try string(member, at: at)
                guard let mode = RestartMode(rawValue: name) else {
                    throw failure(at, "must be always, on-failure or never, not \"\(name)\"")
                }
                policy.mode = mode
            case "backoff_ms": policy.initialBackoffMs = try integer(member, at: at, in: 1...3_600_000)
            case "backoff_max_ms": policy.maxBackoffMs = try integer(member, at: at, in: 1...3_600_000)
            case "max_restarts": policy.maxRestarts = Int(try integer(member, at: at, in: 0...1_000_000))
            case "window_ms": policy.windowMs = try integer(member, at: at, in: 1...86_400_000)
            default: throw failure(at, "unknown member \"\(key)\"")
            }
        }
        policy.maxBackoffMs = max(policy.maxBackoffMs, policy.initialBackoffMs)
        return policy
    }

    // MARK: typed accessors that name the pointer on failure

    private func failure(_ pointer: String, _ message: String) -> ConfigError {
        ConfigError(file: file, pointer: pointer, message: message)
    }

    private func object(_ value: JSONValue, at pointer: String) throws(ConfigError) -> JSONObject {
        guard case .object(let object) = value else { throw failure(pointer, "must be an object, not \(value.typeName)") }
        return object
    }

    private func array(_ value: JSONValue, at pointer: String) throws(ConfigError) -> [JSONValue] {
        guard case .array(let items) = value else { throw failure(pointer, "must be an array, not \(value.typeName)") }
        return items
    }

    private func string(_ value: JSONValue, at pointer: String) throws(ConfigError) -> String {
        guard case .string(let text) = value else { throw failure(pointer, "must be a string, not \(value.typeName)") }
        return text
    }

    private func strings(_ value: JSONValue, at pointer: String) throws(ConfigError) -> [String] {
        var result: [String] = []
        for (index, item) in try array(value, at: pointer).enumerated() {
            result.append(try string(item, at: "\(pointer)/\(index)"))
        }
        return result
    }

    private func bool(_ value: JSONValue, at pointer: String) throws(ConfigError) -> Bool {
        guard case .bool(let flag) = value else { throw failure(pointer, "must be true or false, not \(value.typeName)") }
        return flag
    }

    private func integer(_ value: JSONValue, at pointer: String, in range: ClosedRange<Int64>) throws(ConfigError) -> Int64 {
        guard case .number(let number) = value, let exact = number.int64Value else {
            throw failure(pointer, "must be an integer, not \(value.typeName)")
        }
        guard range.contains(exact) else {
            throw failure(pointer, "\(exact) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return exact
    }

    private func resolve(_ path: String) -> String {
        path.hasPrefix("/") ? path : baseDirectory + "/" + path
    }
}

/// Escapes a JSON pointer token (RFC 6901).
func escapePointer(_ token: String) -> String {
    var escaped = ""
    for character in token {
        switch character {
        case "~": escaped += "~0"
        case "/": escaped += "~1"
        default: escaped.append(character)
        }
    }
    return escaped
}

/// Helper names become `from` values and log tags: short, plain, and never the broker's own.
func isValidHelperName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard let first = bytes.first, (1...32).contains(bytes.count), name != "broker",
        first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z")
    else { return false }
    return bytes.allSatisfy { byte in
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}
