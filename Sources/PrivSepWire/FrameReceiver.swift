// From reads (bytes plus the descriptors that came with them) to validated messages.
//
// fd attribution: a sender puts a frame's descriptors on the one sendmsg whose data starts at
// that frame's length prefix, and Linux delivers them with the read that returns that first
// byte and ends the read within that sendmsg's data. So the descriptors of a read belong to the
// last frame whose prefix starts inside that read, and must number exactly its `fds`. A frame that
// declares descriptors without such a batch, a batch of the wrong size, and a batch no frame
// claims are protocol errors. At most one batch waits at a time (the current frame's), so the
// FIFO is bounded by construction.

import PrivSepJSON

/// A message that passed validation, with the descriptors it carried (owned; `take()` to keep).
public struct ReceivedMessage: Sendable {
    /// The validated envelope.
    public var envelope: Envelope
    /// Exactly `envelope.fds` descriptors, in the order sent.
    public var fds: [OwnedFD]
    /// The receiver's `bodyChecks` found the body valid for its type (a reply's, with the check
    /// `expectReply` gave, for its request's type): it was not parsed (the envelope parses it if
    /// asked), and need not be checked against that schema again.
    public var bodyChecked = false
    // Made by the receiver alone, with the implicit memberwise initializer: it builds the
    // message in place, where a declared one copied it whole (see `Envelope`'s initializer).
}

/// Checks one type's bodies from the frame's bytes, without building a tree: where the body
/// (starting at `start`, with `{`) ends and how many values it holds, when it is certainly valid
/// for the type and reads as JSON within `limits`; nil when it is not or the check cannot tell
/// (the body is then parsed and checked as usual).
public typealias BodyBytesCheck = @Sendable (_ frame: UnsafeRawBufferPointer, _ start: Int, _ limits: JSONLimits)
    -> (end: Int, nodes: Int)?

/// The `BodyBytesCheck` of a request or event type, or nil (its bodies are always parsed).
public typealias BodyBytesChecks = @Sendable (_ type: String) -> BodyBytesCheck?

/// A message refused by envelope validation; the connection stays usable.
public struct RefusedMessage: Sendable {
    /// The privsep.invalid error naming the member and the cause.
    public var error: WireError
    /// The request id to send the error reply to, when the message had a valid `id` and no `re`.
    public var replyTo: Int64?
}

/// One outcome per complete frame.
public enum Incoming: Sendable {
    /// A valid message.
    case message(ReceivedMessage)
    /// A frame that parsed but failed envelope validation (its descriptors were closed).
    case refused(RefusedMessage)
}

/// Turns reads into messages; pure (no system calls), so conformance vectors drive it directly.
public struct FrameReceiver: Sendable {
    private struct Batch: Sendable {
        var fds: [OwnedFD]
        /// Stream offsets [start, end) of the read that delivered the batch.
        var start: Int
        var end: Int
    }

    /// Who wrote the bytes (`.helper` at the broker, `.broker` at a helper).
    public let sender: Sender
    /// The limits in force.
    public let limits: WireLimits
    /// The broker's checks of bodies by type (nil: every body is parsed).
    public var bodyChecks: BodyBytesChecks?
    /// The last type looked up in `bodyChecks`, and its check: a helper mostly sends one type.
    /// Two properties, not an optional tuple: reading them copies nothing.
    private var lastCheckedType: String?
    private var lastBodyCheck: BodyBytesCheck?
    /// The reply this peer is expected to send (to the request it was sent last) and the check
    /// of its body: a server mostly answers one request at a time.
    private var expectedReply: Int64 = 0
    private var expectedReplyCheck: BodyBytesCheck?
    private var decoder: FrameDecoder
    private var batches: [Batch] = []
    private var failure: WireError?
    private var frames: [RawFrame] = []

    public init(sender: Sender, limits: WireLimits = .default) {
        self.sender = sender
        self.limits = limits
        self.decoder = FrameDecoder(maxFrame: limits.maxFrame)
    }

    /// The protocol error that ended the stream, if any.
    public var error: WireError? { failure }

    /// Descriptors received and not yet claimed by a complete frame.
    public var pendingFdCount: Int { batches.reduce(0) { $0 + $1.fds.count } }

    /// Processes one read: `bytes` and the descriptors recvmsg returned with them (now owned by
    /// the receiver). Appends the outcome of every frame the read completed to `outcomes`. A
    /// protocol error closes every descriptor held and poisons the receiver; when whole frames
    /// preceded it in the same read, those are appended and the error is thrown by the next call
    /// (it is also readable as `error`).
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, fds: [OwnedFD], into outcomes: inout [Incoming])
        throws(WireError)
    {
        if let failure { throw failure }
        let before = outcomes.count
        do {
            try process(bytes, fds: fds, into: &outcomes)
        } catch {
            fail(error)
            if outcomes.count == before { throw error }
        }
    }

    /// `receive(_:fds:into:)`, returning the outcomes.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, fds: [OwnedFD]) throws(WireError) -> [Incoming] {
        var outcomes: [Incoming] = []
        try receive(bytes, fds: fds, into: &outcomes)
        return outcomes
    }

    /// Array convenience for `receive(_:fds:)`.
    public mutating func receive(_ bytes: [UInt8], fds: [OwnedFD] = []) throws(WireError) -> [Incoming] {
        var result: Result<[Incoming], WireError> = .success([])
        bytes.withUnsafeBytes { raw in
            do throws(WireError) { result = .success(try receive(raw, fds: fds)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// The peer reported control-message truncation: a protocol error; closes `fds`.
    public mutating func controlTruncated(closing fds: [OwnedFD]) -> WireError {
        for fd in fds { fd.close() }
        let error = failure ?? WireError.protocolViolation(
            .controlTruncated, "recvmsg reported MSG_CTRUNC: more descriptors than a frame may carry, or a foreign control message")
        fail(error)
        return error
    }

    /// The stream ended: a protocol error if it ended inside a frame. Closes unclaimed fds.
    public mutating func finish() throws(WireError) {
        if let failure { throw failure }
        closeAll()
        do {
            try decoder.finish()
        } catch {
            fail(error)
            throw error
        }
    }

    /// Closes every descriptor held (the receiver stays usable only if no error occurred).
    public mutating func closeAll() {
        for batch in batches { for fd in batch.fds { fd.close() } }
        batches = []
    }

    private mutating func fail(_ error: WireError) {
        failure = error
        closeAll()
    }

    private mutating func process(_ bytes: UnsafeRawBufferPointer, fds: [OwnedFD], into outcomes: inout [Incoming]) throws(WireError) {
        let readStart = decoder.offset
        let readEnd = readStart + bytes.count
        if !fds.isEmpty {
            // Own them first, so every exit below closes them.
            batches.append(Batch(fds: fds, start: readStart, end: readEnd))
            guard !bytes.isEmpty else {
                throw .protocolViolation(.fdsUnclaimed, "\(fds.count) descriptors arrived without data")
            }
            guard fds.count <= WireLimits.maxFdsPerFrame else {
                throw .protocolViolation(.fdsMismatch, "\(fds.count) descriptors arrived in one read; a frame carries at most 8")
            }
        }
        // The scratch list is kept between reads: one allocation per connection, not per read.
        defer { frames.removeAll(keepingCapacity: true) }
        try decoder.feed(bytes, into: &frames)
        for frame in frames {
            outcomes.append(try deliver(frame))
        }
        if let error = decoder.error { throw error }
        // What is left must belong to the frame now being assembled: only its batch may wait,
        // so at most one batch (8 fds) is ever held between reads.
        let start = decoder.currentFrameStart
        for batch in batches where !(batch.start <= start && start < batch.end) {
            throw .protocolViolation(.fdsUnclaimed, "\(batch.fds.count) descriptors arrived in a read where no frame starts")
        }
    }

    private mutating func bodyCheck(for type: String) -> BodyBytesCheck? {
        guard let bodyChecks else { return nil }
        if lastCheckedType == type { return lastBodyCheck }
        lastBodyCheck = bodyChecks(type)
        lastCheckedType = type
        return lastBodyCheck
    }

    /// Checks the body of a reply to `re` with `check` (the reply schema of the request's type),
    /// until the next call: the broker's request ids are not reused, so a reply that names `re`
    /// answers that request. A reply to any other request is parsed.
    public mutating func expectReply(to re: Int64, check: BodyBytesCheck?) {
        expectedReply = re
        expectedReplyCheck = check
    }

    private mutating func deliver(_ frame: RawFrame) throws(WireError) -> Incoming {
        if let found = EnvelopeScanner.scan(frame.body, sender: sender, limits: limits.json, lastType: lastCheckedType,
                                            bodyCheck: { type, re in
                                                if let type { return bodyCheck(for: type) }
                                                return re == expectedReply ? expectedReplyCheck : nil
                                            })
        {
            return .message(found.message(of: frame.body, fds: try claimFds(of: frame, declared: found.declaredFds)))
        }
        let (object, bodySpan) = try Envelope.parseFrame(frame.body, limits: limits.json)
        let found = Envelope.Members(object)
        let declared = try Envelope.preflight(found, sender: sender)
        let claimed = try claimFds(of: frame, declared: declared)
        do {
            var envelope = try Envelope(validating: found, declaredFds: declared)
            if let bodySpan { envelope.setReceivedBody(frame.body[bodySpan], parsed: true) }
            return .message(ReceivedMessage(envelope: envelope, fds: claimed))
        } catch {
            if error.isFatal { throw error }
            for fd in claimed { fd.close() }
            return .refused(RefusedMessage(error: error, replyTo: Envelope.replyTarget(object)))
        }
    }
}

extension FrameReceiver {
    /// The descriptors `frame` brought: the waiting batch when the frame is the last to start in
    /// the read that delivered it, which must number exactly `declared`.
    fileprivate mutating func claimFds(of frame: RawFrame, declared: Int) throws(WireError) -> [OwnedFD] {
        let end = frame.start + 4 + frame.body.count
        if let batch = batches.first, batch.start <= frame.start, frame.start < batch.end, end >= batch.end {
            // The last frame starting in the read that brought the batch: the batch is its.
            guard declared == batch.fds.count else {
                throw declared == 0
                    ? .protocolViolation(.fdsUnclaimed, "frame at offset \(frame.start) declares no fds but \(batch.fds.count) arrived with it")
                    : .protocolViolation(.fdsMismatch, "frame at offset \(frame.start) declares \(declared) fds but \(batch.fds.count) arrived with it")
            }
            batches.removeFirst()
            return batch.fds
        }
        if declared > 0 {
            throw .protocolViolation(.fdsMissing, "frame at offset \(frame.start) declares \(declared) fds but none arrived with its first byte")
        }
        return []
    }
}

extension Envelope {
    /// Where an error reply for a refused message goes: its `id`, if valid and it has no `re`.
    static func replyTarget(_ object: JSONObject) -> Int64? {
        guard object["re"] == nil, case .number(let number)? = object["id"], number.isIntegral,
              let id = number.int64Value, id >= 1, id <= WireLimits.maxId
        else { return nil }
        return id
    }
}
