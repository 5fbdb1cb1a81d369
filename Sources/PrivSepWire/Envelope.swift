// The message envelope of wire protocol v1 and its validation.
//
// Validation order is fixed so every implementation reports the same reason for the same
// frame: from (by sender role), fds, unknown members, then type, id, re, body, error, more,
// from's shape, and last the combination (kind). docs/protocol.md states the same order.

import PrivSepJSON

/// Who wrote the bytes being decoded. `from` is legal only from the broker.
public enum Sender: String, Sendable {
    /// A helper (the broker decodes with this).
    case helper
    /// The broker (a helper decodes with this).
    case broker
}

/// The `error` member of a failed reply.
public struct ErrorBody: Sendable, Equatable {
    /// The machine-readable code.
    public var code: ErrorCode
    /// A human-readable explanation.
    public var message: String
    /// Optional structured detail (for privsep.invalid: the failing locations).
    public var data: JSONValue?

    public init(code: ErrorCode, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }
}

/// One message: a request, an event or a reply.
public struct Envelope: Sendable, Equatable {
    /// The three kinds a valid envelope can be.
    public enum Kind: String, Sendable {
        /// `type` + `id`: expects exactly one final reply.
        case request
        /// `type` without `id`: one-way.
        case event
        /// `re` + (`body` | `error`).
        case reply
    }

    /// The message type (requests and events), e.g. `privsep.hello`.
    public var type: String?
    /// The request id, 1...2^53-1 (requests only).
    public var id: Int64? {
        get { idStorage == .min ? nil : idStorage }
        set { idStorage = newValue ?? .min }
    }
    /// The id of the request answered (replies only).
    public var re: Int64? {
        get { reStorage == .min ? nil : reStorage }
        set { reStorage = newValue ?? .min }
    }
    // Int64.min for none, outside every id's range: an optional took two words of the envelope's
    // width, and each copy of it more work (docs/performance.md, fourteenth round).
    private var idStorage: Int64 = .min
    private var reStorage: Int64 = .min
    /// The payload; `{}` when absent. Ignored on failed replies. A body the receiver checked
    /// from its bytes (`ReceivedMessage.bodyChecked`) is parsed only when this is read.
    public var body: JSONObject {
        get {
            switch storedBody {
            case .parsed(let object, _): return object
            case .unparsed(let bytes): return Envelope.parseChecked(bytes)
            }
        }
        set { storedBody = .parsed(newValue, received: nil) }
    }
    private var storedBody: StoredBody

    /// The body as parsed (with the bytes it was read from, while it is unchanged), or the bytes
    /// of one checked and not parsed.
    private enum StoredBody: Sendable {
        case parsed(JSONObject, received: ArraySlice<UInt8>?)
        case unparsed(ArraySlice<UInt8>)
    }

    /// The body's bytes as they arrived, while the body is unchanged (nil for a body built here):
    /// `serialize` writes them instead of encoding the body again, so a body passed on keeps
    /// its bytes.
    public var receivedBody: ArraySlice<UInt8>? {
        switch storedBody {
        case .parsed(_, let received): return received
        case .unparsed(let bytes): return bytes
        }
    }
    /// The failure of a failed reply.
    public var error: ErrorBody? {
        get { failure?.body }
        set { failure = newValue.map(Failure.init) }
    }
    /// `error`, held out of line: few envelopes have one, and every envelope would otherwise be
    /// wider by its three members, and each copy slower (docs/performance.md, fourteenth round).
    private var failure: Failure?

    private final class Failure: Sendable {
        let body: ErrorBody
        init(_ body: ErrorBody) { self.body = body }
    }
    /// On a successful reply: more replies for the same `re` follow.
    public var more: Bool
    /// The number of descriptors attached (0 = none). Writers set it from the fds they send.
    public var fds: Int
    /// The sending helper's name or `broker`, set by the broker on delivery.
    public var from: String?

    /// Keeps the bytes `body` was read from (`parsed`), or holds them in its place, a body the
    /// receiver found valid without parsing it.
    mutating func setReceivedBody(_ bytes: ArraySlice<UInt8>, parsed: Bool) {
        if case .parsed(let object, _) = storedBody, parsed {
            storedBody = .parsed(object, received: bytes)
        } else {
            storedBody = .unparsed(bytes)
        }
    }

    /// Takes `other`'s body as it is held: its bytes as received go with it, and an unparsed
    /// body stays unparsed.
    public mutating func setBody(from other: Envelope) {
        storedBody = other.storedBody
    }

    /// Parses bytes the receiver already read as a valid object within the frame's limits. The
    /// limits here are the ceilings, so bytes that passed any limits parse; empty if they did not
    /// (which would be a receiver bug: the bytes were read to their end as a plain object).
    private static func parseChecked(_ bytes: ArraySlice<UInt8>) -> JSONObject {
        let ceilings = JSONLimits(maxDepth: JSONLimits.depthCeiling, maxStringBytes: .max, maxContainerCount: .max,
                                  maxNodes: .max, maxNumberLength: .max)
        let parsed = bytes.withUnsafeBytes { try? JSONParser.parse($0, limits: ceilings) }
        guard case .object(let object)? = parsed else { return JSONObject() }
        return object
    }

    public static func == (lhs: Envelope, rhs: Envelope) -> Bool {
        lhs.type == rhs.type && lhs.id == rhs.id && lhs.re == rhs.re && lhs.error == rhs.error && lhs.more == rhs.more
            && lhs.fds == rhs.fds && lhs.from == rhs.from && lhs.body == rhs.body
    }

    /// A request expecting one final reply.
    public static func request(_ type: String, id: Int64, body: JSONObject = JSONObject()) -> Envelope {
        Envelope(type: type, id: id, body: body)
    }

    /// A one-way event.
    public static func event(_ type: String, body: JSONObject = JSONObject()) -> Envelope {
        Envelope(type: type, body: body)
    }

    /// A successful reply; `more: true` announces further replies for the same request.
    public static func reply(to id: Int64, body: JSONObject = JSONObject(), more: Bool = false) -> Envelope {
        Envelope(re: id, body: body, more: more)
    }

    /// A failed (always final) reply.
    public static func errorReply(to id: Int64, code: ErrorCode, message: String, data: JSONValue? = nil) -> Envelope {
        Envelope(re: id, error: ErrorBody(code: code, message: message, data: data))
    }

    /// The kind, by the members present (valid envelopes only).
    public var kind: Kind {
        if re != nil { return .reply }
        return id != nil ? .request : .event
    }

    /// Whether this is a failed reply.
    public var isError: Bool { error != nil }

    /// The envelope as a JSON object, members in a fixed order.
    public var jsonValue: JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        if let type { members.append(("type", .string(type))) }
        if let id { members.append(("id", .number(JSONNumber(id)))) }
        if let re { members.append(("re", .number(JSONNumber(re)))) }
        if let error {
            var detail: [(key: String, value: JSONValue)] = [
                ("code", .string(error.code.rawValue)), ("message", .string(error.message)),
            ]
            if let data = error.data { detail.append(("data", data)) }
            members.append(("error", .object(JSONObject(uniqueMembers: detail))))
        } else {
            members.append(("body", .object(body)))
        }
        if more { members.append(("more", .bool(true))) }
        if fds > 0 { members.append(("fds", .number(JSONNumber(fds)))) }
        if let from { members.append(("from", .string(from))) }
        return .object(JSONObject(uniqueMembers: members))
    }

    /// Appends the envelope's compact JSON to `output`: the bytes of `jsonValue.serialized()`,
    /// without building the tree first. A body with its bytes as received (`receivedBody`,
    /// strictly read, so valid JSON) is written as those bytes. `fds`, when given, stands in for
    /// the member (the count of descriptors sent with it).
    public func serialize(into output: inout [UInt8], fds: Int? = nil) {
        write(into: &output, fds: fds, framed: false)
    }

    /// Appends the frame: a 4-byte big-endian length, then the compact JSON (as `serialize`).
    /// Returns the JSON's length, for the caller to hold against its max_frame; the prefix holds
    /// its low 32 bits.
    public func appendFrame(to output: inout [UInt8], fds: Int? = nil) -> Int {
        let start = output.count
        write(into: &output, fds: fds, framed: true)
        let length = output.count - start - 4
        output[start] = UInt8(truncatingIfNeeded: length >> 24)
        output[start + 1] = UInt8(truncatingIfNeeded: length >> 16)
        output[start + 2] = UInt8(truncatingIfNeeded: length >> 8)
        output[start + 3] = UInt8(truncatingIfNeeded: length)
        return length
    }

    /// `serialize`, after room for the length prefix when `framed`.
    private func write(into output: inout [UInt8], fds: Int?, framed: Bool) {
        // The closures below see the members, not `self`: capturing the envelope copied it whole.
        let head = Head(framed: framed, type: type, id: id, re: re, isError: error != nil)
        let tail = Tail(more: more, fds: fds ?? self.fds, from: from)
        let received = error == nil ? receivedBody : nil
        let headLength = head.maxLength, tailLength = tail.maxLength
        if let received, headLength + received.count + tailLength <= Envelope.oneRunLimit {
            // A small message in one run.
            received.withUnsafeBufferPointer { bytes in
                output.appendJSON(maxLength: headLength + bytes.count + tailLength) { writer in
                    head.write(&writer)
                    writer.write(bytes)
                    tail.write(&writer)
                }
            }
            return
        }
        output.appendJSON(maxLength: headLength) { head.write(&$0) }
        if let received {
            output.append(contentsOf: received)
        } else if let error {
            var detail: [(key: String, value: JSONValue)] = [
                ("code", .string(error.code.rawValue)), ("message", .string(error.message)),
            ]
            if let data = error.data { detail.append(("data", data)) }
            JSONValue.object(JSONObject(uniqueMembers: detail)).serialize(into: &output)
        } else {
            JSONValue.object(body).serialize(into: &output)
        }
        output.appendJSON(maxLength: tailLength) { tail.write(&$0) }
    }

    /// The most bytes written in one run, body included: a longer message has its body appended
    /// between two runs, so it is not copied twice (and its room is not on the heap).
    static let oneRunLimit = 1024

    // The members before the body each end in a comma and those after it begin with one: every
    // envelope has a body or an error, so no separator depends on another member.

    /// What comes before the body: room for the length prefix when `framed`, `{`, then
    /// `"type":`, `"id":` and `"re":` with their values and commas, then the key of the body or
    /// the error. At most 4 + 1 + 8 + 6 + 6 + 8 = 33 bytes besides the values.
    private struct Head {
        let framed: Bool
        let type: String?
        let id: Int64?
        let re: Int64?
        let isError: Bool

        var maxLength: Int { 33 + 2 * JSONWriter.maxIntegerLength + (type.map(JSONWriter.maxLength(string:)) ?? 0) }

        func write(_ writer: inout JSONWriter) {
            if framed { writer.write("\0\0\0\0") }
            writer.write("{")
            if let type { writer.write("\"type\":"); writer.write(string: type); writer.write(",") }
            if let id { writer.write("\"id\":"); writer.write(integer: id); writer.write(",") }
            if let re { writer.write("\"re\":"); writer.write(integer: re); writer.write(",") }
            writer.write(isError ? "\"error\":" : "\"body\":")
        }
    }

    /// The members after the body: `,"more":true`, `,"fds":` and `,"from":` with their values,
    /// then `}`. At most 12 + 7 + 8 + 1 = 28 bytes besides the values.
    private struct Tail {
        let more: Bool
        let fds: Int
        let from: String?

        var maxLength: Int { 28 + JSONWriter.maxIntegerLength + (from.map(JSONWriter.maxLength(string:)) ?? 0) }

        func write(_ writer: inout JSONWriter) {
            if more { writer.write(",\"more\":true") }
            if fds > 0 { writer.write(",\"fds\":"); writer.write(integer: Int64(fds)) }
            if let from { writer.write(",\"from\":"); writer.write(string: from) }
            writer.write("}")
        }
    }

    /// Encodes the frame: 4-byte big-endian length, then the compact JSON.
    /// Fails with privsep.too_large when the body exceeds `maxFrame`.
    public func encodeFrame(maxFrame: Int = WireLimits.defaultMaxFrame) throws(WireError) -> [UInt8] {
        var bytes: [UInt8] = []
        let length = appendFrame(to: &bytes)
        guard length <= maxFrame, length <= Int(UInt32.max) else {
            throw WireError(code: .tooLarge, reason: .unsendable,
                            message: "message of \(length) bytes exceeds max_frame \(maxFrame)", isFatal: false)
        }
        return bytes
    }
}

// The public initializer lives in an extension so that the compiler still makes the implicit
// memberwise one, which it builds in place. An initializer declared in the struct itself was
// built on the stack and then copied and destroyed whole (Swift 6.3, structs wider than about
// seven words): some 270 instructions for every envelope made (docs/performance.md, fourteenth
// round).
extension Envelope {
    /// Member-wise initializer; prefer the `request`, `event` and `reply` builders.
    public init(type: String? = nil, id: Int64? = nil, re: Int64? = nil, body: JSONObject = JSONObject(),
                error: ErrorBody? = nil, more: Bool = false, fds: Int = 0, from: String? = nil)
    {
        self.init(type: type, idStorage: id ?? .min, reStorage: re ?? .min, storedBody: .parsed(body, received: nil),
                  failure: error.map(Failure.init), more: more, fds: fds, from: from)
    }

    /// A received envelope without an error, its body read from `bodyBytes` (nil: no body
    /// member): parsed into `body`, or held unparsed when the receiver's check vouched for it
    /// (`checked`).
    init(type: String?, id: Int64?, re: Int64?, body: JSONObject, bodyBytes: ArraySlice<UInt8>?, checked: Bool,
         more: Bool, fds: Int, from: String?)
    {
        let stored: StoredBody = if let bodyBytes, checked { .unparsed(bodyBytes) } else { .parsed(body, received: bodyBytes) }
        self.init(type: type, idStorage: id ?? .min, reStorage: re ?? .min, storedBody: stored, failure: nil, more: more,
                  fds: fds, from: from)
    }
}

extension Envelope {
    /// The descriptors a frame declares, read before full validation because the fd FIFO must
    /// stay in step even when the message is refused: 0 when absent; a protocol error when
    /// `from` comes from a helper or `fds` is not an integer in 1...8.
    static func preflight(_ found: Members, sender: Sender) throws(WireError) -> Int {
        if sender == .helper, found.hasFrom {
            throw .protocolViolation(.fromForbidden, "member 'from' sent by a helper: identity comes from the socket")
        }
        guard let value = found.fds else { return 0 }
        guard case .number(let number) = value, let count = number.int64Value, number.isIntegral,
              count >= 1, count <= Int64(WireLimits.maxFdsPerFrame)
        else {
            throw .protocolViolation(.badFds, "member 'fds' must be an integer in 1...8, got \(value.jsonText)")
        }
        return Int(count)
    }

    /// The envelope's members, found in a frame's object in one pass: where each one is, so a
    /// value is copied out of the object only when it is read.
    struct Members {
        private let members: [(key: String, value: JSONValue)]
        private var typeAt = -1, idAt = -1, reAt = -1, bodyAt = -1, errorAt = -1, moreAt = -1, fdsAt = -1, fromAt = -1
        /// The first member that is not an envelope member.
        private(set) var unknown: String?

        init(_ object: JSONObject) {
            members = object.members
            for index in members.indices {
                let key = members[index].key
                // Matched by UTF-8 length first: a string canonically equal to an ASCII name but
                // spelled differently (U+212A for K) has more bytes, so with equal lengths `==` is
                // byte equality, which is what I-JSON keys need.
                switch key.utf8.count {
                case 2 where key == "id": idAt = index
                case 2 where key == "re": reAt = index
                case 3 where key == "fds": fdsAt = index
                case 4 where key == "type": typeAt = index
                case 4 where key == "body": bodyAt = index
                case 4 where key == "more": moreAt = index
                case 4 where key == "from": fromAt = index
                case 5 where key == "error": errorAt = index
                default: if unknown == nil { unknown = key }
                }
            }
        }

        private func value(_ index: Int) -> JSONValue? {
            // Not a conditional expression: its `nil` would be JSONValue's null literal.
            guard index >= 0 else { return nil }
            return members[index].value
        }
        var type: JSONValue? { value(typeAt) }
        var id: JSONValue? { value(idAt) }
        var re: JSONValue? { value(reAt) }
        var body: JSONValue? { value(bodyAt) }
        var error: JSONValue? { value(errorAt) }
        var more: JSONValue? { value(moreAt) }
        var fds: JSONValue? { value(fdsAt) }
        var from: JSONValue? { value(fromAt) }
        var hasBody: Bool { bodyAt >= 0 }
        var hasFrom: Bool { fromAt >= 0 }
    }

    /// Validates a frame's object as an envelope sent by `sender`.
    ///
    /// Throws a fatal (protocol) error for `from` from a helper and a malformed `fds`, and a
    /// per-message privsep.invalid error for everything else.
    public init(validating object: JSONObject, sender: Sender) throws(WireError) {
        let found = Members(object)
        try self.init(validating: found, declaredFds: try Envelope.preflight(found, sender: sender))
    }

    /// `init(validating:sender:)` of members already picked out and preflighted (`declaredFds`
    /// is what `preflight` returned).
    init(validating found: Members, declaredFds fdCount: Int) throws(WireError) {
        if let key = found.unknown {
            throw .invalidMessage(.unknownMember, "unknown top-level member '\(key)'")
        }
        self.init(fds: fdCount)
        if let value = found.type {
            guard case .string(let name) = value, MessageType.isValid(name) else {
                throw .invalidMessage(.badType, "member 'type' must match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$, got \(value.jsonText)")
            }
            type = name
        }
        if let value = found.id {
            guard let number = Envelope.messageId(value) else {
                throw .invalidMessage(.badId, "member 'id' must be an integer in 1...2^53-1, got \(value.jsonText)")
            }
            id = number
        }
        if let value = found.re {
            guard let number = Envelope.messageId(value) else {
                throw .invalidMessage(.badRe, "member 're' must be an integer in 1...2^53-1, got \(value.jsonText)")
            }
            re = number
        }
        if let value = found.body {
            guard case .object(let payload) = value else {
                throw .invalidMessage(.badBody, "member 'body' must be an object, got \(value.typeName)")
            }
            body = payload
        }
        if let value = found.error { error = try Envelope.errorBody(value) }
        if let value = found.more {
            guard case .bool(true) = value else {
                throw .invalidMessage(.badMore, "member 'more' must be true when present, got \(value.jsonText)")
            }
            more = true
        }
        if let value = found.from {
            guard case .string(let name) = value, !name.isEmpty else {
                throw .invalidMessage(.badFrom, "member 'from' must be a non-empty string, got \(value.jsonText)")
            }
            from = name
        }
        try checkKind(hasBody: found.hasBody)
    }

    /// Decodes and validates one frame body: protocol errors for bad JSON or a non-object.
    public static func decode(frame body: [UInt8], sender: Sender, limits: JSONLimits = .default) throws(WireError) -> Envelope {
        try Envelope(validating: try parseObject(body, limits: limits), sender: sender)
    }

    /// Parses a frame body into an object; any failure is a protocol error.
    public static func parseObject(_ body: [UInt8], limits: JSONLimits = .default) throws(WireError) -> JSONObject {
        try parseFrame(body, limits: limits).object
    }

    /// `parseObject`, and where the value of member `body` lies in `frame`, for forwarding it as is.
    static func parseFrame(_ frame: [UInt8], limits: JSONLimits) throws(WireError) -> (object: JSONObject, bodySpan: Range<Int>?) {
        let parsed = frame.withUnsafeBytes { bytes in
            Result { () throws(JSONParseError) in try JSONParser.parse(bytes, limits: limits, locating: "body") }
        }
        let value: JSONValue
        let span: Range<Int>?
        do {
            (value, span) = try parsed.get()
        } catch {
            throw .protocolViolation(.invalidJSON, "frame is not valid I-JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw .protocolViolation(.notObject, "frame holds a JSON \(value.typeName), not an object")
        }
        return (object, span)
    }

    private static func messageId(_ value: JSONValue) -> Int64? {
        guard case .number(let number) = value, number.isIntegral, let exact = number.int64Value,
              exact >= 1, exact <= WireLimits.maxId
        else { return nil }
        return exact
    }

    private static func errorBody(_ value: JSONValue) throws(WireError) -> ErrorBody {
        guard case .object(let detail) = value else {
            throw .invalidMessage(.badError, "member 'error' must be an object, got \(value.typeName)")
        }
        for (key, _) in detail.members where key != "code" && key != "message" && key != "data" {
            throw .invalidMessage(.badError, "member 'error' has unknown member '\(key)'")
        }
        guard case .string(let code)? = detail["code"], MessageType.isValid(code) else {
            throw .invalidMessage(.badError, "member 'error.code' must be a dotted lower-case name")
        }
        guard case .string(let message)? = detail["message"] else {
            throw .invalidMessage(.badError, "member 'error.message' must be a string")
        }
        return ErrorBody(code: ErrorCode(code), message: message, data: detail["data"])
    }

    /// The rules on which members make a request, an event or a reply.
    func checkKind(hasBody: Bool) throws(WireError) {
        try Envelope.checkKind(hasType: type != nil, hasID: id != nil, hasRe: re != nil, hasError: error != nil,
                               hasBody: hasBody, more: more)
    }

    /// `checkKind` on the members present, before an envelope is built (the scanner's case).
    static func checkKind(hasType: Bool, hasID: Bool, hasRe: Bool, hasError: Bool, hasBody: Bool, more: Bool)
        throws(WireError)
    {
        if hasRe {
            guard !hasType else { throw .invalidMessage(.badKind, "a reply ('re') has no 'type'") }
            guard !hasID else { throw .invalidMessage(.badKind, "a reply ('re') has no 'id'") }
            if hasError {
                guard !hasBody else { throw .invalidMessage(.badKind, "a reply has 'body' or 'error', not both") }
                guard !more else { throw .invalidMessage(.badMore, "a failed reply is final: 'more' is not allowed") }
            }
            return
        }
        guard hasType else {
            throw .invalidMessage(.badKind, "neither 'type' (request, event) nor 're' (reply) is present")
        }
        guard !hasError else { throw .invalidMessage(.badKind, "'error' is only allowed on a reply") }
        guard !more else { throw .invalidMessage(.badMore, "'more' is only allowed on a reply") }
    }
}

extension Envelope: CustomStringConvertible {
    /// The envelope's compact JSON, for logs.
    public var description: String { jsonValue.jsonText }
}
