// Moving messages: read a helper's frames, check each against envelope, policy and schema, and
// route it; write queued output; pause senders whose destination is full.
//
// Order of checks for a request (each failure is one error reply, and the request is answered):
// duplicate id (protocol error), shutting down, unknown type, kind, policy, fds, schema, then
// routing (built-in service, serving helper, or unavailable). Policy comes before the schema so
// a denied helper learns nothing about the shape of types it may not use.

import PrivSepJSON
import PrivSepWire

extension Broker {
    /// Reads per control client per wakeup.
    static let readsPerWakeup = 8
    /// Reads of an exited helper's socket before it is closed: 16 KiB each, more than a
    /// socket buffer holds.
    static let readsAfterExit = 64
    /// Messages handled per helper per turn: enough to batch (most of a 16 KiB read of small
    /// frames in one turn, so one flush to their receiver instead of four or five), few enough
    /// that one busy helper costs the others at most a turn (about 0.2 ms of the broker's work).
    /// 128 instead of 32: routed events on one CPU took less broker CPU per event in 8 of 11
    /// alternating runs, about 4% at the median (docs/performance.md, twelfth round).
    static let messagesPerTurn = 128

    // MARK: Reading

    /// One read per wakeup, and no read at all while earlier messages wait: what a helper has
    /// sent but the broker has not handled stays bounded by one read. A helper over its rate is
    /// not read until its allowance refills, unless it hung up: then what is left is bounded by
    /// its socket buffer, and the messages it sent before going are still handled.
    /// True when it read frames (there may be more).
    @discardableResult
    func readFrom(_ helper: Helper, hungUp: Bool = false) -> Bool {
        guard processHeld(helper), !helper.paused, let connection = helper.connection else { return false }
        if !hungUp && overRate(helper) { return false }
        let status: ReadStatus
        do {
            status = try helper.read(connection)
        } catch {
            protocolFailure(helper, error)
            return false
        }
        switch status {
        case .wouldBlock:
            return false
        case .endOfStream:
            disconnect(helper, reason: "closed its connection")
            return false
        case .frames:
            processHeld(helper)
            return true
        }
    }

    /// Handles held messages in order, at most `messagesPerTurn` of them; true when none are
    /// left. A helper with more waits for its next turn in the backlog, so one that floods the
    /// broker costs the others at most a turn's worth of latency. False also when a destination
    /// is full (the helper is paused until it drains).
    @discardableResult
    func processHeld(_ helper: Helper) -> Bool {
        var budget = Broker.messagesPerTurn
        while helper.connection != nil, let next = helper.nextHeld() {
            if !handle(next, from: helper) {
                helper.holdAgain(next)
                return false
            }
            helper.rateAllowance -= 1
            budget -= 1
            if budget == 0 && helper.hasHeld {
                if !helper.inBacklog {
                    helper.inBacklog = true
                    backlog.append(helper)
                }
                return false
            }
        }
        return true
    }

    /// Gives every helper in the backlog one more turn.
    func runBacklog() {
        let turn = backlog
        backlog = []
        for helper in turn {
            helper.inBacklog = false
            guard helper.connection != nil, !helper.paused else { continue }
            processHeld(helper)
        }
    }

    /// Handles one message; false when it must wait because a destination is full (the sender
    /// has then been paused and the message is untouched).
    private func handle(_ incoming: Incoming, from helper: Helper) -> Bool {
        switch incoming {
        case .refused(let refused):
            guard let id = refused.replyTo else {
                noteViolation(helper, "refused message: \(refused.error.message)")
                return true
            }
            if helper.isFull { return block(helper, on: helper) }
            counters.requestsAccepted += 1
            reply(to: helper, re: id, error: ErrorBody(
                code: refused.error.code, message: refused.error.message,
                data: .object(["reason": .string(refused.error.reason.rawValue)])))
            noteViolation(helper, "refused message: \(refused.error.message)")
            return true
        case .message(let message):
            if helper.phase == .starting { return handleHandshake(message, from: helper) }
            switch message.envelope.kind {
            case .request: return routeRequest(message, from: helper)
            case .event: return routeEvent(message, from: helper)
            case .reply: return routeReply(message, from: helper)
            }
        }
    }

    // MARK: Requests

    /// Where a request goes, decided before anything is sent or counted, so that a request
    /// that must wait for a full destination can be retried untouched.
    private enum Admission {
        case refuse(ErrorCode, String, data: JSONValue?, violation: Bool)
        case service(BuiltinService, RoutedType)
        case route(Helper, RoutedType)
    }

    private func admit(_ message: ReceivedMessage, _ routed: RoutedType?, type: String, from helper: Helper) -> Admission {
        let envelope = message.envelope
        guard phase == .running else { return .refuse(.shuttingDown, "the broker is shutting down", data: nil, violation: false) }
        guard let routed else {
            return .refuse(.unknownType, "no message type \(type) is defined", data: nil, violation: true)
        }
        let contract = routed.contract
        guard contract.kind == .request else {
            return .refuse(.invalid, "\(type) is an event: send it without an id", data: nil, violation: true)
        }
        guard helper.allowed.maySend[routed.index] else {
            return .refuse(.denied, "helper \(helper.name) may not send \(type)", data: nil, violation: true)
        }
        guard message.fds.count == contract.fds else {
            return .refuse(.invalid, "\(type) carries \(contract.fds) file descriptors; the frame had \(message.fds.count)",
                           data: nil, violation: true)
        }
        // A body the receiver checked from its bytes is valid; any other is checked (and parsed) now.
        if !message.bodyChecked, let problems = contract.checkBody(.object(envelope.body)) {
            return .refuse(.invalid, "body does not match the schema of \(type)", data: invalidData(problems), violation: true)
        }
        if let service = routed.service { return .service(service, routed) }
        guard let serverSlot = routed.server, helpers[serverSlot].allowed.serves[routed.index] else {
            return .refuse(.unavailable, "no helper serves \(type)", data: nil, violation: false)
        }
        let server = helpers[serverSlot]
        guard server.phase != .failed && server.phase != .stopped else {
            return .refuse(.unavailable, "helper \(server.name), which serves \(type), is not running", data: nil, violation: false)
        }
        guard inFlight.countFrom(helper.slot) < helper.config.limits.maxInFlight else {
            return .refuse(.unavailable, "too many requests in flight (limit \(helper.config.limits.maxInFlight))",
                           data: nil, violation: false)
        }
        return .route(server, routed)
    }

    private func routeRequest(_ message: ReceivedMessage, from helper: Helper) -> Bool {
        let envelope = message.envelope
        guard let type = envelope.type, let id = envelope.id else { return true }
        // Its replies could not be queued: wait until it reads.
        if helper.isFull { return block(helper, on: helper) }
        if inFlight.contains(requester: helper.slot, id: id) {
            protocolFailure(helper, WireError.protocolViolation(
                .duplicateId, "request id \(id) is already in flight: ids must be unique among a sender's open requests"))
            return true
        }
        let routed = helper.resolve(type, in: types)
        let admission = admit(message, routed, type: type, from: helper)
        if case .route(let server, _) = admission, server.isReady, server.isFull { return block(helper, on: server) }
        counters.requestsAccepted += 1
        helper.count(routed, type)
        if control.tapping > 0 {
            var verdict = "accepted"
            if case .refuse(let code, _, _, _) = admission { verdict = code.rawValue }
            tap("in", helper, envelope, type: type, verdict: verdict)
        }
        switch admission {
        case .refuse(let code, let text, let data, let violation):
            refuse(helper, id, routed, type, code, text, data: data)
            // After the reply: the violation may kill the helper and close its connection.
            if violation { noteViolation(helper, "\(code): \(text)") }
        case .service(let service, let routed):
            answer(helper, id, routed, service(self, helper, message), request: message)
        case .route(let server, let routed):
            forward(message, routed, id: id, from: helper, to: server)
        }
        return true
    }

    private func forward(_ message: ReceivedMessage, _ routed: RoutedType, id: Int64, from helper: Helper, to server: Helper) {
        let deadline = monotonicNanoseconds() + server.config.limits.requestTimeoutMs * 1_000_000
        let brokerID = inFlight.insert(
            requester: helper.ref, requesterID: id, server: server.ref, routed: routed, deadline: deadline)
        scheduleSweep(by: deadline)
        var forwarded = Envelope.request(routed.name, id: brokerID)
        forwarded.setBody(from: message.envelope)
        forwarded.from = helper.name
        if server.isReady {
            server.connection?.expectReply(to: brokerID, check: routed.contract.checkReplyBytes)
            deliver(forwarded, fds: message.fds, to: server)
        } else {
            // Starting or restarting: it gets the request after its hello, or the timeout answers.
            server.waitingRequests.append((brokerID, forwarded, message.fds))
        }
    }

    /// Sends an error as the final reply to a request (already counted) and counts the refusal.
    @discardableResult
    func refuse(_ helper: Helper, _ id: Int64, _ routed: RoutedType?, _ type: String, _ code: ErrorCode, _ text: String,
                data: JSONValue? = nil) -> Bool
    {
        helper.countError(routed, type)
        reply(to: helper, re: id, error: ErrorBody(code: code, message: text, data: data))
        return true
    }

    /// The outcome of a built-in service, sent as the final reply.
    private func answer(_ helper: Helper, _ id: Int64, _ routed: RoutedType, _ result: ServiceResult,
                        request: ReceivedMessage)
    {
        let type = routed.name
        switch result {
        case .success(let reply):
            var envelope = Envelope.reply(to: id, body: reply.body)
            if reply.echoesRequest { envelope.setBody(from: request.envelope) }
            // An echo of the body admit checked, against the same schema, needs no second check.
            let checked = reply.echoesRequest && routed.contract.replyIsBody
            if !checked, let problems = routed.contract.checkReply(.object(envelope.body)) {
                // A broker bug, not the helper's: never send what the schema forbids.
                logger.error("built-in reply failed its schema", metadata: [
                    "type": "\(type)", "problems": "\(problems.map(\.message))",
                ])
                refuse(helper, id, routed, type, .internal, "the broker produced an invalid reply for \(type)")
                return
            }
            envelope.from = "broker"
            counters.finalReplies += 1
            // The descriptors were opened for this reply alone: handed over, not duplicated.
            deliver(envelope, fds: reply.fds, to: helper, type: type, handing: true)
        case .failure(let error):
            helper.countError(routed, type)
            reply(to: helper, re: id, error: error)
        }
    }

    /// The `data` of a privsep.invalid reply: each failure's instance and schema location.
    private func invalidData(_ problems: [ValidationProblem]) -> JSONValue {
        .object(["errors": .array(problems.prefix(16).map { $0.jsonValue })])
    }

    // MARK: Events

    private func routeEvent(_ message: ReceivedMessage, from helper: Helper) -> Bool {
        let envelope = message.envelope
        guard let type = envelope.type else { return true }
        guard let routed = helper.resolve(type, in: types), routed.contract.kind == .event else {
            noteViolation(helper, "event of unknown type \(type)")
            return true
        }
        let contract = routed.contract
        guard helper.allowed.maySend[routed.index] else {
            noteViolation(helper, "denied event \(type)")
            return true
        }
        guard message.fds.count == contract.fds else {
            noteViolation(helper, "event \(type) with \(message.fds.count) fds, schema says \(contract.fds)")
            return true
        }
        if !message.bodyChecked, let problems = contract.checkBody(.object(envelope.body)) {
            noteViolation(helper, "invalid event \(type): \(problems.first?.message ?? "")")
            return true
        }
        if control.tapping > 0 { tap("in", helper, envelope, type: type, verdict: "accepted") }
        if let handler = routed.event {
            helper.count(routed, type)
            handler(self, helper, envelope)
            return true
        }
        // All or nothing: never deliver to some receivers and then wait for the rest.
        for slot in routed.receivers where receives(helpers[slot], routed, from: helper) && helpers[slot].isFull {
            return block(helper, on: helpers[slot])
        }
        helper.count(routed, type)
        var delivered = Envelope.event(type)
        delivered.setBody(from: envelope)
        delivered.from = helper.name
        for slot in routed.receivers where receives(helpers[slot], routed, from: helper) {
            deliver(delivered, fds: message.fds, to: helpers[slot], type: type)
            counters.eventsDelivered += 1
        }
        return true
    }

    /// Whether `receiver` gets `type` from `sender` now: ready, not the sender, still allowed.
    private func receives(_ receiver: Helper, _ routed: RoutedType, from sender: Helper) -> Bool {
        receiver.slot != sender.slot && receiver.isReady && receiver.allowed.receives[routed.index]
    }

    // MARK: Replies

    private func routeReply(_ message: ReceivedMessage, from server: Helper) -> Bool {
        let envelope = message.envelope
        guard let re = envelope.re, let request = inFlight[re], request.server == server.ref else {
            server.unmatchedReplies += 1
            counters.repliesDropped += 1
            logger.debug("dropped a reply to an unknown or finished request", metadata: [
                "helper": "\(server.name)", "re": "\(envelope.re ?? 0)",
            ])
            return true
        }
        if control.tapping > 0 { tap("in", server, envelope, type: request.type, verdict: "accepted") }
        let requester = helpers[request.requester.slot]
        guard requester.ref == request.requester, requester.connection != nil else {
            inFlight.remove(brokerID: re)
            counters.abandoned += 1
            return true
        }
        // Streams are the one open-ended flow towards a requester; hold them when it lags.
        if envelope.more && requester.isFull { return block(server, on: requester) }
        var outgoing: Envelope
        var fds = message.fds
        if let error = envelope.error {
            outgoing = Envelope.errorReply(to: request.requesterID, code: error.code, message: error.message, data: error.data)
            outgoing.from = server.name
        } else if let problem = replyProblem(message, request) {
            noteViolation(server, problem)
            // The server's reply is replaced: what the requester gets is the broker's word.
            outgoing = Envelope.errorReply(
                to: request.requesterID, code: .invalid,
                message: "helper \(server.name) sent a reply that does not match \(request.type): \(problem)")
            outgoing.from = "broker"
            fds = []
        } else {
            outgoing = Envelope.reply(to: request.requesterID, more: envelope.more)
            outgoing.setBody(from: envelope)
            outgoing.from = server.name
        }
        if outgoing.more {
            let deadline = monotonicNanoseconds() + server.config.limits.requestTimeoutMs * 1_000_000
            inFlight.extendDeadline(brokerID: re, to: deadline)
        } else {
            inFlight.remove(brokerID: re)
            counters.finalReplies += 1
            if let code = outgoing.error?.code { count(error: code) }
        }
        deliver(outgoing, fds: fds, to: requester, type: request.type)
        return true
    }

    private func replyProblem(_ message: ReceivedMessage, _ request: InFlightRequest) -> String? {
        let contract = request.routed.contract
        guard message.fds.count == contract.replyFds else {
            return "the reply carries \(message.fds.count) file descriptors, the schema says \(contract.replyFds)"
        }
        if !message.bodyChecked, let problems = contract.checkReply(.object(message.envelope.body)) {
            let first = problems.first
            return "\(first?.instanceLocation ?? ""): \(first?.message ?? "does not match")"
        }
        return nil
    }

    // MARK: Timeouts

    /// How late a request may time out, so that one sweep takes every request due within it: a
    /// storm of timeouts costs at most 100 sweeps a second, not one sweep per request.
    static let sweepSlackNs: Int64 = 10_000_000

    /// Makes sure a sweep of the in-flight table runs within `sweepSlackNs` after `deadline`.
    /// Requests are timed out by sweeps, not by a heap entry each: most are answered long before
    /// their deadline, and an entry per request would leave rate x timeout dead entries in the
    /// heap (600 000 at 20 000 requests/s and 30 s), each costing a push and a pop.
    func scheduleSweep(by deadline: Int64) {
        let at = deadline + Broker.sweepSlackNs
        if let planned = sweepAt, planned <= at { return }
        sweepAt = at
        deadlines.schedule(at: at, .requestSweep)
    }

    /// Times out every request past its deadline, then plans the next sweep for the earliest
    /// deadline left. An entry planned before an earlier deadline took its place finds
    /// `sweepAt` still ahead and returns at once.
    func sweepRequests() {
        let now = monotonicNanoseconds()
        if let planned = sweepAt, planned > now { return }
        sweepAt = nil
        let (expired, next) = inFlight.removeExpired(now: now)
        for request in expired { timedOut(request) }
        if let next { scheduleSweep(by: next) }
    }

    private func timedOut(_ request: InFlightRequest) {
        let requester = helpers[request.requester.slot]
        guard requester.ref == request.requester else {
            counters.abandoned += 1
            return
        }
        let server = helpers[request.server.slot]
        reply(to: requester, re: request.requesterID, error: ErrorBody(
            code: .timeout, message: "helper \(server.name) did not answer \(request.type) in time"))
    }

    // MARK: Writing

    /// Sends an error reply (a final reply) from the broker.
    func reply(to helper: Helper, re: Int64, error: ErrorBody) {
        guard helper.connection != nil else {
            counters.abandoned += 1
            return
        }
        var envelope = Envelope.errorReply(to: re, code: error.code, message: error.message, data: error.data)
        envelope.from = "broker"
        counters.finalReplies += 1
        count(error: error.code)
        deliver(envelope, to: helper)
    }

    /// Queues `envelope` (with `fds`, borrowed) to `helper`. A helper whose queue passes its
    /// hard cap is stuck: it is disconnected and its restart policy applies.
    /// `type` names a reply's request type for the tap. A body passed on unchanged is written
    /// as received (`Envelope.receivedBody`).
    /// `handing` gives the queue the descriptors themselves (the caller has no further use for
    /// them) instead of duplicates.
    func deliver(_ envelope: Envelope, fds: [OwnedFD] = [], to helper: Helper, type: String? = nil,
                 handing: Bool = false)
    {
        guard let connection = helper.connection else { return }
        if control.tapping > 0 { tap("out", helper, envelope, type: type ?? envelope.type) }
        do {
            // Written at the end of this loop iteration, together with everything else for it.
            if handing {
                try connection.enqueue(envelope, handing: fds)
            } else {
                try connection.enqueue(envelope, fds: fds.map(\.descriptor))
            }
            if !helper.needsFlush {
                helper.needsFlush = true
                pendingFlush.append(helper)
            }
            if helper.isFull { scheduleStallCheck(helper) }
        } catch {
            disconnect(helper, reason: "cannot take more output: \(error.message)")
        }
    }

    /// Writes what this iteration queued, one flush per helper instead of one write per message.
    func flushPending() {
        while let helper = pendingFlush.popLast() {
            helper.needsFlush = false
            flushOutput(helper)
        }
    }

    func flushOutput(_ helper: Helper) {
        guard let connection = helper.connection else { return }
        let before = connection.pendingOutputBytes
        do {
            _ = try connection.flush()
        } catch {
            disconnect(helper, reason: "write failed: \(error.message)")
            return
        }
        helper.flushedBytes += before - connection.pendingOutputBytes
        updateInterest(helper)
        if !helper.isFull { resumeBlockedSenders(of: helper) }
    }

    /// Watches for readable unless paused, writable while output is queued.
    func updateInterest(_ helper: Helper) {
        guard let connection = helper.connection else { return }
        var interest: Readiness = []
        if !helper.paused && !helper.throttled { interest.insert(.readable) }
        if connection.hasPendingOutput { interest.insert(.writable) }
        guard interest != helper.interest else { return }
        helper.interest = interest
        try? loop.modify(connection.socket.rawValue, token: token(.helperSocket, helper), interest: interest)
    }

    // MARK: Rate

    /// Refills the helper's allowance for the time passed; when it is spent, stops reading the
    /// helper and schedules the read that follows the refill. True when the helper must wait.
    func overRate(_ helper: Helper) -> Bool {
        let rate = helper.config.limits.maxRate
        guard rate > 0 else { return false }
        let now = monotonicNanoseconds()
        let refill = Double(now - helper.rateUpdatedAt) * Double(rate) / 1e9
        helper.rateAllowance = min(helper.rateAllowance + refill, Double(helper.rateBurst))
        helper.rateUpdatedAt = now
        guard helper.rateAllowance <= 0 else { return false }
        if !helper.throttled {
            helper.throttled = true
            helper.throttles += 1
            if helper.throttles == 1 {
                logger.notice("over its max_rate: not read until its allowance refills", metadata: [
                    "helper": "\(helper.name)", "max_rate": "\(rate)",
                ])
            }
            updateInterest(helper)
            // Back when one turn's worth is there: waking for every message would cost more than it saves.
            let wanted = Double(min(Broker.messagesPerTurn, helper.rateBurst)) - helper.rateAllowance
            deadlines.schedule(at: now + Int64(wanted * 1e9 / Double(rate)) + 1,
                               .rateRefilled(slot: helper.slot, generation: helper.generation))
        }
        return true
    }

    func rateRefilled(slot: Int, generation: UInt16) {
        let helper = helpers[slot]
        guard helper.generation == generation, helper.connection != nil, helper.throttled else { return }
        helper.throttled = false
        updateInterest(helper)
    }

    // MARK: Backpressure

    /// Pauses `sender` until `destination` drains; returns false for `handle`.
    func block(_ sender: Helper, on destination: Helper) -> Bool {
        sender.paused = true
        destination.blockedSenders.insert(sender.slot)
        updateInterest(sender)
        scheduleStallCheck(destination)
        return false
    }

    func resumeBlockedSenders(of helper: Helper) {
        guard !helper.blockedSenders.isEmpty else { return }
        let senders = helper.blockedSenders.sorted()
        helper.blockedSenders = []
        for slot in senders {
            let sender = helpers[slot]
            guard sender.paused, sender.connection != nil else { continue }
            sender.paused = false
            updateInterest(sender)
            processHeld(sender)
        }
    }

    /// A full queue that makes no progress for `stallTimeoutMs` means the helper stopped
    /// reading; it is killed, which answers its requests and unblocks its senders.
    func scheduleStallCheck(_ helper: Helper) {
        guard !helper.stallCheckScheduled else { return }
        helper.stallCheckScheduled = true
        deadlines.schedule(
            at: monotonicNanoseconds() + helper.config.limits.stallTimeoutMs * 1_000_000,
            .stallCheck(slot: helper.slot, generation: helper.generation, flushedBytes: helper.flushedBytes))
    }

    func stallCheck(slot: Int, generation: UInt16, flushedBytes: Int) {
        let helper = helpers[slot]
        guard helper.generation == generation, helper.connection != nil else { return }
        helper.stallCheckScheduled = false
        if helper.isFull && helper.flushedBytes == flushedBytes {
            kill(helper, reason: "stopped reading: its queue stayed full for \(helper.config.limits.stallTimeoutMs) ms")
        } else if helper.isFull || !helper.blockedSenders.isEmpty {
            scheduleStallCheck(helper)
        }
    }

    // MARK: Violations

    /// Counts a refused message; past the configured number the helper is killed.
    func noteViolation(_ helper: Helper, _ what: String) {
        helper.violations += 1
        logger.notice("refused: \(what)", metadata: ["helper": "\(helper.name)", "violations": "\(helper.violations)"])
        if helper.violations >= helper.config.limits.maxViolations {
            kill(helper, reason: "\(helper.violations) refused messages")
        }
    }

    /// A protocol error: the stream can no longer be trusted. The connection is closed and the
    /// process killed; its restart policy decides what follows.
    func protocolFailure(_ helper: Helper, _ error: WireError) {
        logger.warning("protocol error: \(error.message)", metadata: [
            "helper": "\(helper.name)", "code": "\(error.code)", "reason": "\(error.reason)",
        ])
        count(error: error.code)
        kill(helper, reason: "protocol error (\(error.reason))")
    }
}
