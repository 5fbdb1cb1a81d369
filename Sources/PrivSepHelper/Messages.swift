// The values a helper sees: errors, replies, incoming requests and events, the hello reply.

import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage

/// A failure reported by the broker (or another helper) as an error reply, or raised locally by
/// the client when the connection or a limit makes the operation impossible.
public struct PrivSepError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the error came from.
    public enum Source: Sendable, Equatable {
        /// An error reply received from the peer.
        case reply
        /// Raised by this client: closed connection, protocol failure, local limit.
        case local
    }

    /// The machine-readable code, e.g. `privsep.denied`.
    public var code: ErrorCode
    /// A human-readable explanation.
    public var message: String
    /// Structured detail, when the peer sent any (for privsep.invalid: the failing locations).
    public var data: JSONValue?
    /// Whether the peer sent this or the client raised it.
    public var source: Source

    public init(code: ErrorCode, message: String, data: JSONValue? = nil, source: Source = .reply) {
        self.code = code
        self.message = message
        self.data = data
        self.source = source
    }

    public var description: String {
        let origin = source == .local ? " (local)" : ""
        guard let data else { return "\(code)\(origin): \(message)" }
        return "\(code)\(origin): \(message) \(data.jsonText)"
    }

    /// A locally raised error.
    static func local(_ code: ErrorCode, _ message: String) -> PrivSepError {
        PrivSepError(code: code, message: message, source: .local)
    }

    /// A wire-layer failure seen by this client.
    init(_ wire: WireError) {
        self.init(code: wire.code, message: wire.message, source: .local)
    }
}

/// Descriptors that arrived with a message.
///
/// They belong to the message: they are closed when the last copy of the message (or reply) is
/// gone, unless the application took them with `takeFDs()`, after which it closes them itself.
final class ReceivedFDs: Sendable {
    // Messages may be copied to several tasks; whichever takes first gets them.
    private let owned: Locked<[OwnedFD]>

    init(_ owned: [OwnedFD]) { self.owned = Locked(owned) }

    var borrowed: [FileDescriptor] { owned.withLock { $0.filter(\.isOpen).map(\.descriptor) } }

    func take() -> [FileDescriptor] {
        owned.withLock { owned in
            let taken = owned.compactMap { $0.take() }
            owned = []
            return taken
        }
    }

    deinit { owned.withLock { for fd in $0 { fd.close() } } }
}

/// One successful reply to a request (for streaming requests: one part of it).
public struct Reply: Sendable {
    /// The id of the request this answers.
    public let re: Int64
    /// The reply body.
    public let body: JSONObject
    /// True when more replies for the same request follow (streaming); false on the final one.
    public let more: Bool
    /// Who sent it, as the broker stamped it (`from`); nil on a connection without a broker.
    public let from: String?
    let received: ReceivedFDs

    init(envelope: Envelope, fds: [OwnedFD]) {
        re = envelope.re ?? 0
        body = envelope.body
        more = envelope.more
        from = envelope.from
        received = ReceivedFDs(fds)
    }

    /// The descriptors that came with the reply, borrowed: they stay open while any copy of the
    /// reply exists and are closed after that. Use `takeFDs()` to keep them longer.
    public var fds: [FileDescriptor] { received.borrowed }

    /// Takes ownership of the attached descriptors: the caller must close them. Later calls
    /// (on this reply or any copy of it) return an empty array.
    public func takeFDs() -> [FileDescriptor] { received.take() }

    /// Decodes the body as `T`.
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONValueDecoder = JSONValueDecoder()) throws -> T {
        try decoder.decode(type, from: body)
    }
}

/// A request or event delivered to this helper.
public struct IncomingMessage: Sendable {
    /// The message type, e.g. `demo.upper` or `privsep.shutdown`.
    public let type: String
    /// The request id; nil for an event. Answer requests with `reply(to:)` or `replyError(to:)`.
    public let id: Int64?
    /// The body.
    public let body: JSONObject
    /// The sender as the broker stamped it (a helper's name or `broker`).
    public let from: String?
    let received: ReceivedFDs

    init(envelope: Envelope, fds: [OwnedFD]) {
        type = envelope.type ?? ""
        id = envelope.id
        body = envelope.body
        from = envelope.from
        received = ReceivedFDs(fds)
    }

    /// Whether the sender waits for a reply.
    public var isRequest: Bool { id != nil }

    /// The descriptors that came with the message, borrowed: open while any copy of the message
    /// exists, closed after that. Use `takeFDs()` to keep them longer.
    public var fds: [FileDescriptor] { received.borrowed }

    /// Takes ownership of the attached descriptors: the caller must close them. Later calls
    /// (on this message or any copy of it) return an empty array.
    public func takeFDs() -> [FileDescriptor] { received.take() }

    /// Decodes the body as `T`.
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONValueDecoder = JSONValueDecoder()) throws -> T {
        try decoder.decode(type, from: body)
    }
}

/// The broker's answer to `privsep.hello`: who this helper is and what it may do.
public struct HelloReply: Sendable, Codable, Equatable {
    /// The helper's name from the broker's configuration.
    public var helper: String
    /// The wire protocol version (1).
    public var `protocol`: Int
    /// The largest frame body either side may send, in bytes.
    public var maxFrame: Int
    /// Message types this helper may send.
    public var maySend: [String]
    /// Request types this helper serves.
    public var serves: [String]
    /// Event types this helper receives.
    public var receives: [String]

    public init(helper: String, protocol: Int = 1, maxFrame: Int = WireLimits.defaultMaxFrame,
                maySend: [String] = [], serves: [String] = [], receives: [String] = [])
    {
        self.helper = helper
        self.protocol = `protocol`
        self.maxFrame = maxFrame
        self.maySend = maySend
        self.serves = serves
        self.receives = receives
    }

    enum CodingKeys: String, CodingKey {
        case helper, `protocol`, serves, receives
        case maxFrame = "max_frame"
        case maySend = "may_send"
    }
}

/// The permissions in force after `restrict(maySend:serves:receives:)`.
public struct Permissions: Sendable, Codable, Equatable {
    /// Message types this helper may send.
    public var maySend: [String]
    /// Request types this helper serves.
    public var serves: [String]
    /// Event types this helper receives.
    public var receives: [String]

    public init(maySend: [String], serves: [String], receives: [String]) {
        self.maySend = maySend
        self.serves = serves
        self.receives = receives
    }

    enum CodingKeys: String, CodingKey {
        case serves, receives
        case maySend = "may_send"
    }
}

/// The levels of `privsep.log`, lowest first.
public enum LogLevel: String, Sendable, Codable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// Bounds for one client. Every buffer the client keeps is capped by one of these.
public struct ClientOptions: Sendable {
    /// Incoming requests and events buffered until the application takes them from `incoming`.
    /// Past it, a request is answered `privsep.unavailable` and an event is dropped (counted in
    /// `droppedEvents`).
    public var maxBufferedMessages: Int
    /// Parts of one streaming reply buffered until the application takes them; past it the
    /// stream ends with a local `privsep.too_large` error and the rest of that reply is dropped.
    public var maxBufferedReplies: Int
    /// Requests this helper may have in flight at once; past it `request` throws at once.
    public var maxPendingRequests: Int
    /// Bytes of outgoing frames queued while the broker is not reading; past it a send throws
    /// (`privsep.unavailable`, nothing of that message written). An empty queue takes any frame.
    public var maxQueuedBytes: Int
    /// How long `close()` keeps flushing queued output before it closes regardless, in ms.
    public var closeLingerMilliseconds: Int32

    public init(maxBufferedMessages: Int = 64, maxBufferedReplies: Int = 64, maxPendingRequests: Int = 1024,
                maxQueuedBytes: Int = 8 << 20, closeLingerMilliseconds: Int32 = 2000)
    {
        self.maxBufferedMessages = max(1, maxBufferedMessages)
        self.maxBufferedReplies = max(1, maxBufferedReplies)
        self.maxPendingRequests = max(1, maxPendingRequests)
        self.maxQueuedBytes = max(64 << 10, maxQueuedBytes)
        self.closeLingerMilliseconds = max(0, closeLingerMilliseconds)
    }

    /// The defaults: 64 buffered messages and reply parts, 1024 requests in flight, 8 MiB queued.
    public static let `default` = ClientOptions()
}
