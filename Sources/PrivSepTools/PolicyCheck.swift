// `privsep check CONFIG`: what a config allows, read together with its schema directories, before
// anything runs. The broker's own loader decides what is an error at start (one way to load a
// config); this file adds what is legal but almost certainly a mistake, and the exposure of each
// helper's sandbox.

import PrivSepBroker
import PrivSepJSON
import PrivSepSandbox
import PrivSepSchema

/// One thing `privsep check` found.
public struct CheckFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable, Comparable {
        case error, warning
        public static func < (a: Severity, b: Severity) -> Bool { a == .error && b == .warning }
    }

    /// What kind of problem, stable for tests and scripts.
    public enum Code: String, Sendable, CaseIterable {
        /// The broker would refuse to start (the loader's own problems).
        case load
        /// A request type in may_send that no helper serves and the broker does not provide.
        case unserved
        /// A request type a helper serves that no helper may send.
        case unused_service
        /// An event type a helper may send that nobody receives.
        case unreceived_event
        /// An event type a helper receives that nobody may send.
        case unsent_event
        /// A sandbox weaker than the default profile (profile none, network, write binds...).
        case exposure
        /// A `files` rule (or a bind) wider than any helper needs, such as `/`.
        case broad_rule
        /// A service policy section that cannot take effect, or a service used with no policy.
        case service_policy
        /// Two helpers share a fixed uid (they can signal and ptrace each other).
        case shared_uid
        /// A warning from loading the schema directories.
        case schema
    }

    public let severity: Severity
    public let code: Code
    /// The helper concerned, if any.
    public let helper: String?
    /// `FILE: /json/pointer: what is wrong`.
    public let message: String

    public var description: String { "\(severity.rawValue): \(message) [\(code.rawValue)]" }
}

/// The result of checking one config.
public struct CheckReport: Sendable {
    public let file: String
    public var findings: [CheckFinding] = []
    /// Per helper, in config order; empty when the config did not load.
    public var exposure: [HelperExposure] = []

    public var errors: [CheckFinding] { findings.filter { $0.severity == .error } }
    public var warnings: [CheckFinding] { findings.filter { $0.severity == .warning } }
    public func has(_ code: CheckFinding.Code, helper: String? = nil) -> Bool {
        findings.contains { $0.code == code && (helper == nil || $0.helper == helper) }
    }
}

extension CheckReport {
    /// The report as JSON (`privsep check --json`): file, counts, findings, and per helper its
    /// score (a number with one decimal), rating and the items that make it up.
    public var json: JSONValue {
        let findings: [JSONValue] = findings.map { finding in
            .object(JSONObject(uniqueMembers: [
                ("severity", .string(finding.severity.rawValue)), ("code", .string(finding.code.rawValue)),
                ("helper", finding.helper.map(JSONValue.string) ?? .null), ("message", .string(finding.message)),
            ]))
        }
        let exposure: [JSONValue] = exposure.map { helper in
            let items: [JSONValue] = helper.items.map { item in
                .object(JSONObject(uniqueMembers: [
                    ("weight", decimal(item.weight)), ("what", .string(item.what)), ("pointer", .string(item.pointer)),
                ]))
            }
            return .object(JSONObject(uniqueMembers: [
                ("helper", .string(helper.helper)), ("score", JSONNumber(lexeme: helper.scoreText).map(JSONValue.number) ?? .null),
                ("rating", .string(helper.rating)), ("items", .array(items)),
            ]))
        }
        return .object(JSONObject(uniqueMembers: [
            ("file", .string(file)), ("errors", .number(JSONNumber(errors.count))),
            ("warnings", .number(JSONNumber(warnings.count))), ("findings", .array(findings)), ("exposure", .array(exposure)),
        ]))
    }

    private func decimal(_ value: Double) -> JSONValue {
        let tenths = Int((value * 10).rounded())
        return JSONNumber(lexeme: "\(tenths / 10).\(tenths % 10)").map(JSONValue.number) ?? .null
    }
}

/// A loaded config with its registry: the input of `check` and `graph`.
public struct LoadedPolicy: Sendable {
    public let setup: BrokerSetup
    public let registry: SchemaRegistry

    public var config: BrokerConfig { setup.config }

    /// Loads through `BrokerLoader` (exactly what `privsep run` would accept), then the registry
    /// of the config's schema directories for kinds, interfaces and definitions.
    public static func load(configPath: String) throws(PolicyLoadError) -> LoadedPolicy {
        let setup: BrokerSetup
        do {
            // The launcher path is only recorded by the loader, never used.
            setup = try BrokerLoader.load(configPath: configPath, launcherPath: "/nonexistent/privsep-sandbox")
        } catch {
            throw PolicyLoadError(problems: error.problems)
        }
        do {
            let registry = try SchemaRegistry.load(directories: setup.config.schemaDirectories)
            return LoadedPolicy(setup: setup, registry: registry)
        } catch {
            // The loader has just loaded the same directories; this cannot differ, but say so if it does.
            throw PolicyLoadError(problems: error.problems.map { "\($0.problem)" })
        }
    }

    /// Whether the broker itself handles `type` for helpers: every type of a `privsep.` interface
    /// in the registry (the built-ins and the services), so new services need no list kept here,
    /// except the control socket's.
    public func isBrokerType(_ type: String) -> Bool {
        guard let message = registry[type] else { return false }
        // privsep.control.* is spoken on the control socket only; a helper gets no answer.
        if message.interface == LoadedPolicy.controlInterface { return false }
        return message.interface == "privsep" || message.interface.hasPrefix("privsep.")
    }

    /// The control socket's interface (schema/privsep/control.json).
    static let controlInterface = "privsep.control"

    /// Request type → the name of the helper that serves it (the loader has checked there is
    /// at most one).
    public func servers() -> [String: String] {
        var result: [String: String] = [:]
        for helper in config.helpers {
            for type in helper.policy.serves { result[type] = helper.name }
        }
        return result
    }
}

/// Why a config could not be loaded: every problem, one per line, each naming file and pointer.
public struct PolicyLoadError: Error, Sendable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

/// The policy checks themselves.
public enum PolicyCheck {
    /// Checks the config at `configPath`: never throws; load failures become `load` findings.
    public static func run(configPath: String) -> CheckReport {
        var report = CheckReport(file: configPath)
        let policy: LoadedPolicy
        do {
            policy = try LoadedPolicy.load(configPath: configPath)
        } catch {
            report.findings = error.problems.map { CheckFinding(severity: .error, code: .load, helper: nil, message: $0) }
            return report
        }
        report.findings += flowFindings(policy)
        report.findings += serviceFindings(policy)
        report.findings += identityFindings(policy)
        report.exposure = policy.config.helpers.indices.map { Exposure.assess(policy, helper: $0) }
        for assessment in report.exposure {
            for item in assessment.items where item.warn {
                report.findings.append(CheckFinding(
                    severity: .warning, code: item.broad ? .broad_rule : .exposure, helper: assessment.helper,
                    message: "\(configPath): \(item.pointer): \(item.what)"))
            }
        }
        for warning in policy.registry.warnings where !warning.problem.location.hasPrefix("builtin:") {
            report.findings.append(CheckFinding(severity: .warning, code: .schema, helper: nil, message: "\(warning.problem)"))
        }
        return report
    }

    static func at(_ policy: LoadedPolicy, _ helper: String, _ member: String) -> String {
        "\(policy.config.file): /helpers/\(helper)/\(member)"
    }

    /// Who may send what to whom: requests nobody answers, services nobody calls, events that
    /// go nowhere or never come.
    static func flowFindings(_ policy: LoadedPolicy) -> [CheckFinding] {
        var findings: [CheckFinding] = []
        let servers = policy.servers()
        var sent: Set<String> = [], received: Set<String> = []
        for helper in policy.config.helpers {
            sent.formUnion(helper.policy.maySend)
            received.formUnion(helper.policy.receives)
        }
        for helper in policy.config.helpers {
            for type in helper.policy.maySend.sorted() {
                guard let message = policy.registry[type], !policy.isBrokerType(type) else { continue }
                switch message.kind {
                case .request where servers[type] == nil:
                    findings.append(CheckFinding(
                        severity: .error, code: .unserved, helper: helper.name,
                        message: "\(at(policy, helper.name, "may_send")): \(type) is served by no helper and not by the broker; every request would be answered privsep.unavailable"))
                case .event where !received.contains(type):
                    findings.append(CheckFinding(
                        severity: .warning, code: .unreceived_event, helper: helper.name,
                        message: "\(at(policy, helper.name, "may_send")): event \(type) is received by no helper; it would be dropped"))
                default: break
                }
            }
            for type in helper.policy.serves.sorted() where !sent.contains(type) {
                findings.append(CheckFinding(
                    severity: .warning, code: .unused_service, helper: helper.name,
                    message: "\(at(policy, helper.name, "serves")): \(type) is in no helper's may_send; nobody can call it"))
            }
            for type in helper.policy.receives.sorted() where !sent.contains(type) && !policy.isBrokerType(type) {
                findings.append(CheckFinding(
                    severity: .warning, code: .unsent_event, helper: helper.name,
                    message: "\(at(policy, helper.name, "receives")): event \(type) is in no helper's may_send; it never arrives"))
            }
        }
        return findings
    }

    /// The broker services (`privsep.file`, `.net`, `.dns`, `.user`) and their policy sections
    /// (`files`, `net`, `dns`, `users`): one without the other does nothing useful.
    static func serviceFindings(_ policy: LoadedPolicy) -> [CheckFinding] {
        var findings: [CheckFinding] = []
        for helper in policy.config.helpers {
            for service in ServiceSection.all {
                let uses = helper.policy.maySend.contains { $0.hasPrefix(service.interface + ".") }
                let section = helper.raw[service.section]
                let hasRules = section.map(ServiceSection.hasRules) ?? false
                if section != nil && !uses {
                    findings.append(CheckFinding(
                        severity: .warning, code: .service_policy, helper: helper.name,
                        message: "\(at(policy, helper.name, service.section)): rules for \(service.interface) but no \(service.interface).* type in may_send; they cannot be used"))
                } else if uses && !hasRules {
                    findings.append(CheckFinding(
                        severity: .warning, code: .service_policy, helper: helper.name,
                        message: "\(at(policy, helper.name, "may_send")): \(service.interface).* allowed but no \"\(service.section)\" rules; every call would be denied"))
                }
            }
        }
        return findings
    }

    /// Helpers with the same fixed uid are not separated from each other.
    static func identityFindings(_ policy: LoadedPolicy) -> [CheckFinding] {
        var findings: [CheckFinding] = []
        var owner: [UInt32: String] = [:]
        for (index, helper) in policy.config.helpers.enumerated() {
            guard case .ids = helper.user else { continue }
            let uid = policy.setup.plans[index].uid
            if let other = owner[uid] {
                findings.append(CheckFinding(
                    severity: .warning, code: .shared_uid, helper: helper.name,
                    message: "\(at(policy, helper.name, "user")): uid \(uid) is also \(other)'s; the two can signal and ptrace each other"))
            } else {
                owner[uid] = helper.name
            }
        }
        return findings
    }
}

/// A broker service and the helper member holding its policy.
struct ServiceSection {
    let interface: String
    let section: String

    static let all = [
        ServiceSection(interface: "privsep.file", section: "files"), ServiceSection(interface: "privsep.net", section: "net"),
        ServiceSection(interface: "privsep.dns", section: "dns"), ServiceSection(interface: "privsep.user", section: "users"),
    ]

    static func hasRules(_ value: JSONValue) -> Bool {
        switch value {
        case .array(let items): return !items.isEmpty
        case .object(let object): return object.members.contains { hasRules($0.value) }
        default: return false
        }
    }
}
