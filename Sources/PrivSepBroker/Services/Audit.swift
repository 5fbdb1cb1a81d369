// The privileged services' entry point and their audit trail. Every request to a service ends
// in exactly one decision: granted (the reply, perhaps with a descriptor), denied (policy said
// no: privsep.denied), or failed (policy allowed it, the operation did not succeed:
// privsep.not_found, privsep.refused...). Each decision is one structured log line, message
// `audit`, with the helper, the type, the arguments, the decision and the rule.

import Logging
import PrivSepJSON
import PrivSepWire

/// What a service decided: the reply, and the rule that decided it.
struct ServiceDecision {
    var result: ServiceResult
    /// The config pointer of the rule that matched (e.g. `/helpers/web/files/0`); nil when none did.
    var rule: String?

    static func granted(_ body: JSONObject, fds: [OwnedFD] = [], rule: String?) -> ServiceDecision {
        ServiceDecision(result: .success(ServiceReply(body: body, fds: fds)), rule: rule)
    }

    /// Policy refused: privsep.denied with `data.reason`, a stable tag.
    static func denied(_ message: String, reason: String, rule: String? = nil) -> ServiceDecision {
        ServiceDecision(
            result: .failure(ErrorBody(code: .denied, message: message, data: .object(["reason": .string(reason)]))),
            rule: rule)
    }

    static func failed(_ code: ErrorCode, _ message: String, rule: String?) -> ServiceDecision {
        ServiceDecision(result: .failure(ErrorBody(code: code, message: message)), rule: rule)
    }
}

/// Error codes of the services beyond the nine of protocol v1.
extension ErrorCode {
    static let notFound: ErrorCode = "privsep.not_found"
    static let exists: ErrorCode = "privsep.exists"
    static let isDirectory: ErrorCode = "privsep.is_directory"
    static let notDirectory: ErrorCode = "privsep.not_directory"
    static let ioError: ErrorCode = "privsep.io_error"
    static let addressInUse: ErrorCode = "privsep.address_in_use"
    static let refused: ErrorCode = "privsep.refused"
}

extension Broker {
    /// The request types answered by the privileged services.
    static let privilegedServiceTypes: Set<String> = [
        "privsep.file.open", "privsep.file.read", "privsep.net.listen", "privsep.net.connect", "privsep.dns.resolve",
        "privsep.user.lookup",
    ]

    /// Runs one service request (policy and schema already checked by the router) and audits
    /// the decision.
    func privilegedService(_ helper: Helper, _ envelope: Envelope) -> ServiceResult {
        let type = envelope.type ?? ""
        let body = envelope.body
        let policy = helper.plan.services
        let decision: ServiceDecision
        switch type {
        case "privsep.file.open": decision = FileService.open(policy, body)
        case "privsep.file.read": decision = FileService.read(policy, body, maxFrame: helper.config.limits.maxFrame)
        case "privsep.net.listen": decision = NetService.listen(policy, body)
        case "privsep.net.connect": decision = NetService.connect(policy, body)
        case "privsep.dns.resolve": decision = DNSService.resolve(policy, body)
        case "privsep.user.lookup": decision = UserService.lookup(policy, body)
        default: decision = .failed(.unknownType, "no privileged service \(type)", rule: nil)
        }
        audit(helper, type, body, decision)
        return decision.result
    }

    /// The longest argument text an audit line carries.
    static let auditArgumentLimit = 1024

    private func audit(_ helper: Helper, _ type: String, _ body: JSONObject, _ decision: ServiceDecision) {
        let level: Logger.Level
        if case .success = decision.result { level = .info } else { level = .notice }
        guard log.accepts(level) else { return }
        var arguments = JSONValue.object(body).serialized()
        if arguments.count > Broker.auditArgumentLimit {
            arguments.removeSubrange(Broker.auditArgumentLimit...)
            arguments.append(contentsOf: "...".utf8)
        }
        // In key order, as LogSink.write wants them: the outcome's fields go between the common ones.
        var fields: [(key: String, value: String)] = [
            ("arguments", String(decoding: arguments, as: UTF8.self)), ("audit", "service"),
        ]
        switch decision.result {
        case .success(let reply):
            fields += [("decision", "granted"), ("fds", String(reply.fds.count)), ("helper", helper.name)]
        case .failure(let error):
            fields += [
                ("code", error.code.rawValue), ("decision", error.code == .denied ? "denied" : "failed"),
                ("helper", helper.name), ("reason", error.message),
            ]
        }
        fields += [("rule", decision.rule ?? "none"), ("type", type)]
        log.write(level, "audit", fields: fields)
    }
}
