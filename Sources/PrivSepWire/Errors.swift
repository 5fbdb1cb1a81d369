// Error codes and the wire error value.
//
// Two families share one type: protocol errors, after which the byte stream cannot be trusted
// and the connection must be closed, and per-message errors, after which the stream is still
// in step and only the one message is refused.

import Glibc

/// An `error.code` on the wire: a dotted lower-case name such as `privsep.denied`.
///
/// The standard codes are static members; services add their own (`privsep.not_found`,
/// `files.busy`) with `ErrorCode("...")`. Any code must match the message-type pattern.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The code as sent on the wire.
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// The peer broke the protocol; the connection is closed after this.
    public static let `protocol`: ErrorCode = "privsep.protocol"
    /// The message failed validation (envelope or schema); `data` names the locations.
    public static let invalid: ErrorCode = "privsep.invalid"
    /// Policy refused the message.
    public static let denied: ErrorCode = "privsep.denied"
    /// No such message type is known.
    public static let unknownType: ErrorCode = "privsep.unknown_type"
    /// No helper serves the type, or the one that did died.
    public static let unavailable: ErrorCode = "privsep.unavailable"
    /// The request was not answered in time.
    public static let timeout: ErrorCode = "privsep.timeout"
    /// A frame or value exceeded a size limit.
    public static let tooLarge: ErrorCode = "privsep.too_large"
    /// The broker is stopping and accepts no new work.
    public static let shuttingDown: ErrorCode = "privsep.shutting_down"
    /// A fault inside privsep itself.
    public static let `internal`: ErrorCode = "privsep.internal"

    /// The nine codes defined by wire protocol v1.
    public static let standard: [ErrorCode] = [
        .protocol, .invalid, .denied, .unknownType, .unavailable, .timeout, .tooLarge,
        .shuttingDown, .internal,
    ]

    /// Whether the code is well formed (the message-type pattern).
    public var isWellFormed: Bool { MessageType.isValid(rawValue) }
}

/// Why a frame, a message or a system call failed: a stable tag, the wire code it maps to, and
/// whether the connection must be closed.
///
/// The tag is what conformance vectors name (`expect.error.reason`); the message is for people.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable cause.
    public struct Reason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Protocol errors (the connection is closed).
        /// Length prefix below 2.
        public static let frameTooShort = Reason(rawValue: "frame_too_short")
        /// Length prefix above max_frame (code privsep.too_large).
        public static let frameTooLarge = Reason(rawValue: "frame_too_large")
        /// The stream ended inside a length prefix or a frame body.
        public static let truncatedFrame = Reason(rawValue: "truncated_frame")
        /// The frame is not I-JSON within the limits (syntax, UTF-8, duplicate key, depth...).
        public static let invalidJSON = Reason(rawValue: "invalid_json")
        /// The frame is JSON but not an object.
        public static let notObject = Reason(rawValue: "not_object")
        /// A helper sent `from`.
        public static let fromForbidden = Reason(rawValue: "from_forbidden")
        /// `fds` is present but not an integer in 1...8.
        public static let badFds = Reason(rawValue: "bad_fds")
        /// A frame declares fds but none arrived with its first byte.
        public static let fdsMissing = Reason(rawValue: "fds_missing")
        /// The fds that arrived with a frame's first byte are not exactly the declared number.
        public static let fdsMismatch = Reason(rawValue: "fds_mismatch")
        /// fds arrived that no frame starting in the same read claimed.
        public static let fdsUnclaimed = Reason(rawValue: "fds_unclaimed")
        /// recvmsg reported MSG_CTRUNC (more fds than the receiver accepts) or a foreign cmsg.
        public static let controlTruncated = Reason(rawValue: "control_truncated")
        /// A request reused the id of one of the sender's requests still in flight (the broker
        /// cannot tell their replies apart).
        public static let duplicateId = Reason(rawValue: "duplicate_id")

        // Per-message errors (code privsep.invalid; the connection stays open).
        /// A top-level member outside the envelope.
        public static let unknownMember = Reason(rawValue: "unknown_member")
        /// `type` is not a string matching the pattern.
        public static let badType = Reason(rawValue: "bad_type")
        /// `id` is not an integer in 1...2^53-1.
        public static let badId = Reason(rawValue: "bad_id")
        /// `re` is not an integer in 1...2^53-1.
        public static let badRe = Reason(rawValue: "bad_re")
        /// `body` is not an object.
        public static let badBody = Reason(rawValue: "bad_body")
        /// `error` is not `{"code", "message", "data"?}` with a well-formed code.
        public static let badError = Reason(rawValue: "bad_error")
        /// `more` is not `true`, or is on something other than a successful reply.
        public static let badMore = Reason(rawValue: "bad_more")
        /// `from` (sent by the broker) is not a non-empty string.
        public static let badFrom = Reason(rawValue: "bad_from")
        /// The members do not form a request, an event or a reply.
        public static let badKind = Reason(rawValue: "bad_kind")

        // Handshake and environment.
        /// The first message was not a valid privsep.hello, or its reply was not a valid welcome.
        public static let badHandshake = Reason(rawValue: "bad_handshake")
        /// PRIVSEP_FD / PRIVSEP_PROTOCOL are missing or wrong.
        public static let badEnvironment = Reason(rawValue: "bad_environment")

        // Local conditions.
        /// The peer closed the connection.
        public static let connectionClosed = Reason(rawValue: "connection_closed")
        /// The outgoing queue would pass its byte or fd bound.
        public static let sendQueueFull = Reason(rawValue: "send_queue_full")
        /// An outgoing message cannot be sent as given (too many fds, over max_frame).
        public static let unsendable = Reason(rawValue: "unsendable")
        /// A system call failed; `errno` holds the cause.
        public static let system = Reason(rawValue: "system")
    }

    /// The wire code this error is reported as.
    public let code: ErrorCode
    /// The stable cause.
    public let reason: Reason
    /// A human-readable account naming the field and the cause.
    public let message: String
    /// Whether the connection must be closed (protocol errors and broken transports).
    public let isFatal: Bool
    /// The errno of a failed system call, else 0.
    public let errno: Int32

    public init(code: ErrorCode, reason: Reason, message: String, isFatal: Bool, errno: Int32 = 0) {
        self.code = code
        self.reason = reason
        self.message = message
        self.isFatal = isFatal
        self.errno = errno
    }

    /// A protocol error: the stream is no longer trusted.
    public static func protocolViolation(_ reason: Reason, _ message: String) -> WireError {
        WireError(code: reason == .frameTooLarge ? .tooLarge : .protocol, reason: reason,
                  message: message, isFatal: true)
    }

    /// A per-message envelope error: the message is refused, the stream stays usable.
    public static func invalidMessage(_ reason: Reason, _ message: String) -> WireError {
        WireError(code: .invalid, reason: reason, message: message, isFatal: false)
    }

    /// A failed system call; fatal for the connection.
    public static func system(_ operation: String, errno: Int32) -> WireError {
        WireError(code: .internal, reason: .system, message: "\(operation): \(describeErrno(errno))",
                  isFatal: true, errno: errno)
    }

    public var description: String { "\(code) (\(reason)): \(message)" }
}

/// The text of an errno value, without Foundation.
func describeErrno(_ value: Int32) -> String {
    guard let text = strerror(value) else { return "errno \(value)" }
    return String(cString: text) + " (errno \(value))"
}
