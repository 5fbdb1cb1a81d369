// The broker's own message types: the handshake, ping, log, introspect, restrict, and the
// shutdown event it sends. Their schemas live in schema/privsep/ like everyone else's, and the
// router has already checked policy and the request body before a handler runs.

import Logging
import PrivSepJSON
import PrivSepWire

/// A successful built-in reply: its body and the descriptors it carries (owned by the result).
struct ServiceReply {
    var body: JSONObject
    var fds: [OwnedFD] = []
    /// The body is the request's own (`body` is then unused): its bytes as received are sent
    /// back, not encoded again.
    var echoesRequest = false

    /// The request's body, sent back.
    static let echo = ServiceReply(body: JSONObject(), echoesRequest: true)
}

typealias ServiceResult = Result<ServiceReply, ErrorBody>
typealias BuiltinService = (Broker, Helper, ReceivedMessage) -> ServiceResult
typealias BuiltinEvent = (Broker, Helper, Envelope) -> Void

extension ErrorBody: Error {}

extension Broker {
    /// The broker's handler for a request type it answers itself; looked up once per type, at
    /// load (`RoutedType.service`).
    static func builtinService(_ type: String) -> BuiltinService? {
        switch type {
        case "privsep.hello":
            return { _, helper, _ in .failure(ErrorBody(code: .invalid, message: "helper \(helper.name) already said hello")) }
        case "privsep.ping": return { _, _, _ in .success(.echo) }
        case "privsep.introspect": return { broker, helper, _ in .success(ServiceReply(body: broker.introspect(helper))) }
        case "privsep.restrict": return { broker, helper, message in broker.restrict(helper, message.envelope.body) }
        default:
            guard let operation = Broker.privilegedOperation(type) else { return nil }
            return { broker, helper, message in broker.audited(operation, type, helper, message) }
        }
    }

    /// The broker's handler for an event type it takes itself (`RoutedType.event`).
    static func builtinEvent(_ type: String) -> BuiltinEvent? {
        switch type {
        case "privsep.log": return { broker, helper, envelope in broker.logFromHelper(helper, envelope.body) }
        default: return nil
        }
    }

    // MARK: Handshake

    /// The first message must be privsep.hello; anything else is answered privsep.protocol and
    /// the connection closed.
    func handleHandshake(_ message: ReceivedMessage, from helper: Helper) -> Bool {
        let envelope = message.envelope
        let hello: Hello
        do {
            hello = try Hello(validatingFirst: envelope)
        } catch {
            if let id = envelope.id, envelope.kind == .request {
                counters.requestsAccepted += 1
                reply(to: helper, re: id, error: ErrorBody(code: .protocol, message: error.message))
            }
            protocolFailure(helper, error)
            return true
        }
        guard let id = envelope.id else { return true }
        counters.requestsAccepted += 1
        helper.phase = .ready
        helper.consecutiveFailures = 0
        let welcome = Welcome(
            helper: helper.name, maxFrame: helper.config.limits.maxFrame, maySend: helper.policy.maySend.sorted(),
            serves: helper.policy.serves.sorted(), receives: helper.policy.receives.sorted())
        var reply = welcome.reply(to: id)
        reply.from = "broker"
        counters.finalReplies += 1
        deliver(reply, to: helper)
        logger.info("helper ready", metadata: [
            "helper": "\(helper.name)", "client": "\(hello.client)", "pid": "\(helper.process?.pid ?? 0)",
            "uid": "\(helper.uid)",
        ])
        let waiting = helper.waitingRequests
        helper.waitingRequests = []
        for (brokerID, forwarded, fds) in waiting where inFlight[brokerID] != nil {
            inFlight.reassign(brokerID: brokerID, to: helper.ref)
            deliver(forwarded, fds: fds, to: helper)
        }
        return true
    }

    // MARK: Introspect, restrict, log

    private func introspect(_ helper: Helper) -> JSONObject {
        func entries(_ types: Set<String>) -> JSONValue {
            .array(types.sorted().compactMap { type in
                guard let contract = catalog[type] else { return nil }
                return .object(["type": .string(type), "definition": contract.definition])
            })
        }
        var body = JSONObject()
        body["helper"] = .string(helper.name)
        body["may_send"] = entries(helper.policy.maySend.union(HelperPolicy.alwaysAllowed))
        body["serves"] = entries(helper.policy.serves)
        body["receives"] = entries(helper.policy.receives)
        return body
    }

    private func restrict(_ helper: Helper, _ body: JSONObject) -> ServiceResult {
        func set(_ key: String) -> Set<String>? {
            guard case .array(let items)? = body[key] else { return nil }
            return Set(items.compactMap(\.stringValue))
        }
        var policy = helper.policy
        let dropped = policy.restrict(maySend: set("may_send"), serves: set("serves"), receives: set("receives"))
        helper.enforce(policy, types: types)
        if !dropped.isEmpty {
            logger.info("helper dropped permissions", metadata: [
                "helper": "\(helper.name)", "dropped": "\(dropped.joined(separator: ","))",
            ])
        }
        var reply = JSONObject()
        reply["may_send"] = sortedArray(helper.policy.maySend)
        reply["serves"] = sortedArray(helper.policy.serves)
        reply["receives"] = sortedArray(helper.policy.receives)
        return .success(ServiceReply(body: reply))
    }

    private func logFromHelper(_ helper: Helper, _ body: JSONObject) {
        let level = body["level"]?.stringValue.flatMap(Logger.Level.init(rawValue:)) ?? .info
        var metadata: Logger.Metadata = ["helper": "\(helper.name)"]
        if case .object(let fields)? = body["fields"] {
            for (key, value) in fields.members.prefix(32) where metadata[key] == nil {
                metadata[key] = .string(value.stringValue ?? value.jsonText)
            }
        }
        logger.log(level: level, "\(body["message"]?.stringValue ?? "")", metadata: metadata)
    }

    // MARK: Shutdown notice

    /// Tells a ready helper the broker is stopping.
    func sendShutdownNotice(to helper: Helper, graceMs: Int64) {
        var event = Envelope.event("privsep.shutdown", body: ["grace_ms": .number(JSONNumber(graceMs))])
        event.from = "broker"
        deliver(event, to: helper)
    }
}

func sortedArray(_ items: Set<String>) -> JSONValue {
    .array(items.sorted().map { .string($0) })
}
