// The control socket: the operator's view into a running broker, like bgpctl's socket beside
// bgpd. Same framing and envelope as helpers, its own interface (schema/privsep/control.json):
// status, a live tap of routed messages, restart of one helper, stop. Only the socket's owner
// (checked with SO_PEERCRED, on top of mode 0600) may talk to it.

import CPrivSep
import Glibc
import Logging
import PrivSepJSON
import PrivSepWire

/// A connected control client.
final class ControlClient {
    let index: Int
    let generation: UInt16
    let connection: Connection
    /// The tap this client asked for: the request id its records answer, and its filters.
    var tap: (re: Int64, helper: String?, type: String?)?
    /// Tap records not sent because the client's queue was full.
    var tapDropped = 0
    var interest: Readiness = .readable

    init(index: Int, generation: UInt16, connection: Connection) {
        self.index = index
        self.generation = generation
        self.connection = connection
    }
}

/// The broker's control-socket state.
struct ControlState {
    /// Clients at once: the socket is for operators, not a service.
    static let maxClients = 16
    /// A tap client whose queue holds more than this loses records instead of slowing routing.
    static let maxTapQueueBytes = 1 << 20

    var listener: OwnedFD?
    var path: String?
    var clients: [Int: ControlClient] = [:]
    var generation: UInt16 = 0
    /// How many clients are tapping: the router's hot path checks only this.
    var tapping = 0
    /// Sensitive property names per type and direction, computed on first use.
    var sensitiveCache: [String: Set<String>] = [:]
}

extension Broker {
    // MARK: The socket

    /// Creates the listening socket (replacing a stale one), mode 0600, owned by the broker's uid.
    func openControlSocket(_ path: String) throws(SystemCallError) {
        var status = stat()
        if lstat(path, &status) == 0 {
            // Never unlink something that is not a socket: a typo must not delete a file.
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw SystemCallError("control socket \(path) exists and is not a socket", errno: EEXIST) }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket") }
        let listener = OwnedFD(adopting: fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw SystemCallError("control socket path too long", errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        // The socket is created 0600 through the umask, so there is no moment it is open to others.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0 else { throw SystemCallError("bind \(path)") }
        guard listen(fd, 16) == 0 else { throw SystemCallError("listen \(path)") }
        try loop.add(fd, token: Broker.controlListenerToken, interest: .readable)
        control.listener = listener
        control.path = path
        logger.info("control socket ready", metadata: ["path": "\(path)"])
    }

    func closeControlSocket() {
        guard let listener = control.listener else { return }
        loop.remove(listener.rawValue)
        listener.close()
        if let path = control.path { unlink(path) }
        for client in control.clients.values { dropControlClient(client) }
        control.listener = nil
    }

    static let controlListenerToken = LoopToken(kind: .control, index: 0)
    /// How long accepting waits after the broker ran out of descriptors or memory.
    static let controlAcceptPauseMs: Int64 = 100

    func acceptControlClients() {
        guard let listener = control.listener else { return }
        while true {
            let fd = cprivsep_accept(listener.rawValue)
            guard fd >= 0 else {
                let code = errno
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    // The pending connection stays queued and the listener readable: watching
                    // it now would spin the loop. Look again once something may have freed.
                    logger.warning("control: cannot accept (\(String(cString: strerror(code)))); pausing \(Broker.controlAcceptPauseMs) ms")
                    try? loop.modify(listener.rawValue, token: Broker.controlListenerToken, interest: [])
                    deadlines.schedule(at: monotonicNanoseconds() + Broker.controlAcceptPauseMs * 1_000_000, .controlAccept)
                }
                return
            }
            let socket = OwnedFD(adopting: fd)
            var uid: uid_t = 0
            guard cprivsep_peer_uid(fd, &uid) == 0, uid == geteuid() || uid == 0 else {
                logger.warning("control: refused a client that is not the socket's owner", metadata: ["uid": "\(uid)"])
                continue
            }
            guard control.clients.count < ControlState.maxClients,
                let index = (0..<ControlState.maxClients).first(where: { control.clients[$0] == nil })
            else {
                logger.warning("control: too many clients (\(ControlState.maxClients)); refused one")
                continue
            }
            control.generation &+= 1
            let client = ControlClient(
                index: index, generation: control.generation,
                connection: Connection(socket: socket, peer: .helper, limits: WireLimits(maxFrame: 64 << 10)))
            do {
                try loop.add(fd, token: controlToken(client), interest: .readable)
            } catch {
                continue
            }
            control.clients[index] = client
        }
    }

    /// The pause after a failed accept is over.
    func resumeControlAccept() {
        guard let listener = control.listener else { return }
        try? loop.modify(listener.rawValue, token: Broker.controlListenerToken, interest: .readable)
    }

    private func controlToken(_ client: ControlClient) -> LoopToken {
        LoopToken(kind: .controlClient, index: UInt32(client.index), generation: client.generation)
    }

    func controlClient(for token: LoopToken) -> ControlClient? {
        guard let client = control.clients[Int(token.index)], client.generation == token.generation else { return nil }
        return client
    }

    func serviceControlClient(_ client: ControlClient, _ readiness: Readiness) {
        if readiness.contains(.writable) {
            do {
                _ = try client.connection.flush()
            } catch {
                dropControlClient(client)
                return
            }
            updateControlInterest(client)
        }
        guard !readiness.isDisjoint(with: [.readable, .hangup]) else { return }
        var frames: [Incoming] = []
        for _ in 0..<Broker.readsPerWakeup {
            let status: ReadStatus
            frames.removeAll(keepingCapacity: true)
            do {
                status = try client.connection.read(into: &frames)
            } catch {
                dropControlClient(client)
                return
            }
            switch status {
            case .wouldBlock: return
            case .endOfStream:
                dropControlClient(client)
                return
            case .frames:
                for frame in frames {
                    guard case .message(let message) = frame else { continue }
                    handleControl(message.envelope, from: client)
                }
            }
        }
    }

    func dropControlClient(_ client: ControlClient) {
        if client.tap != nil { control.tapping -= 1 }
        client.tap = nil
        loop.remove(client.connection.socket.rawValue)
        client.connection.close()
        control.clients[client.index] = nil
    }

    private func updateControlInterest(_ client: ControlClient) {
        let interest: Readiness = client.connection.hasPendingOutput ? [.readable, .writable] : .readable
        guard interest != client.interest else { return }
        client.interest = interest
        try? loop.modify(client.connection.socket.rawValue, token: controlToken(client), interest: interest)
    }

    private func sendControl(_ envelope: Envelope, to client: ControlClient) {
        do {
            try client.connection.send(envelope)
            updateControlInterest(client)
        } catch {
            dropControlClient(client)
        }
    }

    // MARK: Requests

    private func handleControl(_ envelope: Envelope, from client: ControlClient) {
        guard envelope.kind == .request, let type = envelope.type, let id = envelope.id else { return }
        func fail(_ code: ErrorCode, _ message: String) {
            sendControl(Envelope.errorReply(to: id, code: code, message: message), to: client)
        }
        guard type.hasPrefix("privsep.control."), let contract = catalog[type] else {
            return fail(.unknownType, "the control socket serves privsep.control.* only")
        }
        if let problems = contract.checkBody(.object(envelope.body)) {
            return fail(.invalid, "body does not match the schema of \(type): \(problems.first?.message ?? "")")
        }
        switch type {
        case "privsep.control.status":
            sendControl(Envelope.reply(to: id, body: statusBody()), to: client)
        case "privsep.control.tap":
            if client.tap == nil { control.tapping += 1 }
            client.tap = (id, envelope.body["helper"]?.stringValue, envelope.body["type"]?.stringValue)
            // An empty first record: from here on, nothing routed is missed.
            sendControl(Envelope.reply(to: id, more: true), to: client)
        case "privsep.control.restart":
            guard let name = envelope.body["helper"]?.stringValue, let helper = helpers.first(where: { $0.name == name }) else {
                return fail(ErrorCode("privsep.not_found"), "no helper named \(envelope.body["helper"]?.stringValue ?? "")")
            }
            restartNow(helper)
            sendControl(Envelope.reply(to: id), to: client)
        case "privsep.control.stop":
            logger.notice("stop requested on the control socket")
            sendControl(Envelope.reply(to: id), to: client)
            beginShutdown()
        default:
            fail(.unknownType, "\(type) is not served")
        }
    }

    /// An operator's restart: the backoff and the restart window start afresh.
    private func restartNow(_ helper: Helper) {
        logger.notice("restart requested on the control socket", metadata: ["helper": "\(helper.name)"])
        helper.consecutiveFailures = 0
        helper.restartTimes = []
        if helper.process != nil {
            helper.restartRequested = true
            kill(helper, reason: "restart requested by the operator")
        } else if helper.phase != .starting && phase == .running {
            spawn(helper)
        }
    }

    private func statusBody() -> JSONObject {
        let now = monotonicNanoseconds()
        var errors = JSONObject()
        for code in counters.errorsByCode.keys.sorted() { errors[code] = .number(JSONNumber(counters.errorsByCode[code] ?? 0)) }
        let broker: JSONObject = [
            "pid": .number(JSONNumber(Int64(getpid()))),
            "uptime_ms": .number(JSONNumber((now - startedAt) / 1_000_000)),
            "phase": .string("\(phase)"),
            "requests": .number(JSONNumber(counters.requestsAccepted)),
            "final_replies": .number(JSONNumber(counters.finalReplies)),
            "abandoned": .number(JSONNumber(counters.abandoned)),
            "in_flight": .number(JSONNumber(inFlight.count)),
            "replies_dropped": .number(JSONNumber(counters.repliesDropped)),
            "events_delivered": .number(JSONNumber(counters.eventsDelivered)),
            "errors": .object(errors),
            "open_fds": .number(JSONNumber(openDescriptorCount())),
            "rss_kib": .number(JSONNumber(residentKiB())),
        ]
        let serving = inFlight.countsByServer()
        let list: [JSONValue] = helpers.map { helper in
            var entry: JSONObject = [
                "name": .string(helper.name), "state": .string("\(helper.phase)"), "uid": .number(JSONNumber(Int64(helper.uid))),
                "restarts": .number(JSONNumber(helper.restarts)),
                "in_flight": .number(JSONNumber(inFlight.countFrom(helper.slot))),
                "serving": .number(JSONNumber(serving[helper.slot] ?? 0)),
                "queue_bytes": .number(JSONNumber(helper.connection?.pendingOutputBytes ?? 0)),
                "violations": .number(JSONNumber(helper.violations)),
            ]
            if let process = helper.process {
                entry["pid"] = .number(JSONNumber(Int64(process.pid)))
                entry["uptime_ms"] = .number(JSONNumber((now - process.startedAt) / 1_000_000))
            }
            var counted = helper.receivedUnknown
            for routed in types.byIndex where helper.received[routed.index].messages > 0 {
                counted[routed.name] = helper.received[routed.index]
            }
            var byType = JSONObject()
            for type in counted.keys.sorted() {
                let counters = counted[type] ?? TypeCounters()
                byType[type] = ["messages": .number(JSONNumber(counters.messages)), "errors": .number(JSONNumber(counters.errors))]
            }
            entry["types"] = .object(byType)
            return .object(entry)
        }
        return ["broker": .object(broker), "helpers": .array(list)]
    }

    // MARK: Tap

    /// Shows a message to every tapping client whose filter matches. `helper` is the helper it
    /// came from (`in`) or goes to (`out`).
    func tap(_ direction: String, _ helper: Helper, _ envelope: Envelope, type: String?, verdict: String? = nil) {
        var encoded: [UInt8] = []
        envelope.serialize(into: &encoded)
        let frameSize = encoded.count
        for client in control.clients.values {
            guard let tap = client.tap else { continue }
            if let wanted = tap.helper, wanted != helper.name { continue }
            if let wanted = tap.type, wanted != type { continue }
            if client.connection.pendingOutputBytes > ControlState.maxTapQueueBytes {
                client.tapDropped += 1
                continue
            }
            var record: JSONObject = [
                "direction": .string(direction), "helper": .string(helper.name), "kind": .string(envelope.kind.rawValue),
                "size": .number(JSONNumber(frameSize)), "fds": .number(JSONNumber(envelope.fds)),
            ]
            if let type { record["type"] = .string(type) }
            if let id = envelope.id { record["id"] = .number(JSONNumber(id)) }
            if let re = envelope.re { record["re"] = .number(JSONNumber(re)) }
            if let from = envelope.from { record["from"] = .string(from) }
            if let verdict { record["verdict"] = .string(verdict) }
            if let error = envelope.error {
                record["error"] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
            } else if let type {
                record["body"] = .object(redacted(envelope.body, type: type, reply: envelope.kind == .reply))
            }
            if client.tapDropped > 0 {
                record["dropped"] = .number(JSONNumber(client.tapDropped))
                client.tapDropped = 0
            }
            sendControl(Envelope.reply(to: tap.re, body: record, more: true), to: client)
        }
    }

    /// The body with every property its schema marks `"x-sensitive": true` replaced.
    private func redacted(_ body: JSONObject, type: String, reply: Bool) -> JSONObject {
        let key = (reply ? "reply:" : "body:") + type
        let sensitive: Set<String>
        if let cached = control.sensitiveCache[key] {
            sensitive = cached
        } else {
            sensitive = sensitiveProperties(catalog[type]?.definition[reply ? "reply" : "body"])
            control.sensitiveCache[key] = sensitive
        }
        guard !sensitive.isEmpty else { return body }
        var copy = body
        for index in copy.members.indices where sensitive.contains(copy.members[index].key) {
            copy.members[index].value = "<redacted>"
        }
        return copy
    }
}

/// Top-level property names a body schema marks `"x-sensitive": true` (directly under
/// `properties`, the shape every privsep schema uses for its members).
func sensitiveProperties(_ schema: JSONValue?) -> Set<String> {
    guard case .object(let properties)? = schema?["properties"] else { return [] }
    return Set(properties.members.filter { $0.value["x-sensitive"] == .bool(true) }.map(\.key))
}

/// The broker's resident set size in KiB, from /proc/self/statm.
func residentKiB() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let count = buffer.withUnsafeMutableBytes { readFD(fd, $0.baseAddress, $0.count) }
    guard count > 0 else { return -1 }
    let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
    guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return -1 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}
