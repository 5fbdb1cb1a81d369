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

/// One privileged operation: the requesting helper (its service policy and limits) and the
/// request body (schema and policy already checked by the router) in, a decision out.
typealias PrivilegedOperation = (Helper, JSONObject) -> ServiceDecision

extension Broker {
    /// The operation of each request type answered by a privileged service; nil for any other
    /// type. Looked up once per type, at load (`builtinService`).
    static func privilegedOperation(_ type: String) -> PrivilegedOperation? {
        switch type {
        case "privsep.file.open": return { helper, body in FileService.open(helper.plan.services, body) }
        case "privsep.file.read":
            return { helper, body in
                FileService.read(helper.plan.services, body, maxFrame: helper.config.limits.maxFrame)
            }
        case "privsep.net.listen": return { helper, body in NetService.listen(helper.plan.services, body) }
        case "privsep.net.connect": return { helper, body in NetService.connect(helper.plan.services, body) }
        case "privsep.dns.resolve": return { helper, body in DNSService.resolve(helper.plan.services, body) }
        case "privsep.user.lookup": return { helper, body in UserService.lookup(helper.plan.services, body) }
        default: return nil
        }
    }

    /// Runs one service request and audits the decision.
    func audited(_ operation: PrivilegedOperation, _ type: String, _ helper: Helper, _ message: ReceivedMessage)
        -> ServiceResult
    {
        let decision = operation(helper, message.envelope.body)
        audit(helper, type, message, decision)
        return decision.result
    }

    /// The longest argument text an audit line carries.
    static let auditArgumentLimit = 1024

    private func audit(_ helper: Helper, _ type: String, _ message: ReceivedMessage, _ decision: ServiceDecision) {
        let level: Logger.Level
        if case .success = decision.result { level = .info } else { level = .notice }
        guard log.accepts(level) else { return }
        // In key order, as LogSink wants them: the outcome's fields go between the common ones.
        // The field list is the broker's, reused from one audit to the next (left empty after
        // each); taken out so that appending does not copy it.
        var fields = auditFields
        auditFields = []
        fields.append(("arguments", auditArguments(message)))
        fields.append(("audit", "service"))
        switch decision.result {
        case .success(let reply):
            fields.append(("decision", "granted"))
            fields.append(("fds", String(reply.fds.count)))
            fields.append(("helper", helper.name))
        case .failure(let error):
            fields.append(("code", error.code.rawValue))
            fields.append(("decision", error.code == .denied ? "denied" : "failed"))
            fields.append(("helper", helper.name))
            fields.append(("reason", error.message))
        }
        fields.append(("rule", decision.rule ?? "none"))
        fields.append(("type", type))
        log.queue(level, "audit", fields: fields)
        fields.removeAll(keepingCapacity: true)
        auditFields = fields
    }

    /// The request body as the helper sent it (valid JSON, checked against its schema), cut to
    /// `auditArgumentLimit` bytes at a character boundary. The bytes as received, not the body
    /// encoded again: what was asked, exactly, at no extra cost.
    private func auditArguments(_ message: ReceivedMessage) -> String {
        let body = message.envelope.receivedBody ?? ArraySlice(JSONValue.object(message.envelope.body).serialized())
        guard body.count > Broker.auditArgumentLimit else { return String(decoding: body, as: UTF8.self) }
        var end = body.startIndex + Broker.auditArgumentLimit
        // Back off continuation bytes (10xxxxxx), so no character is cut in two.
        while end > body.startIndex && body[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: body[..<end], as: UTF8.self) + "..."
    }
}
