// The privsep.hello handshake (docs/protocol.md section 7), as values both sides build and check.

import PrivSepJSON

/// The helper's opening request: `{"protocol":1,"client":"<lib>/<version>"}`.
public struct Hello: Sendable, Equatable {
    /// The message type of the handshake.
    public static let type = "privsep.hello"
    /// The protocol version this module speaks.
    public static let protocolVersion: Int64 = 1

    /// The protocol version the helper speaks.
    public var protocolVersion: Int64
    /// The client library and version, e.g. `privsep-swift/0.1`.
    public var client: String

    public init(client: String, protocolVersion: Int64 = Hello.protocolVersion) {
        self.client = client
        self.protocolVersion = protocolVersion
    }

    /// The request envelope a helper sends first.
    public func request(id: Int64 = 1) -> Envelope {
        .request(Hello.type, id: id, body: [
            "protocol": .number(JSONNumber(protocolVersion)), "client": .string(client),
        ])
    }

    /// Checks a helper's first message. Anything but a `privsep.hello` request for protocol 1
    /// with a string `client` is a `privsep.protocol` error (the broker answers it, when it has
    /// an id, and closes the connection).
    public init(validatingFirst envelope: Envelope) throws(WireError) {
        guard envelope.kind == .request, envelope.type == Hello.type else {
            throw WireError(code: .protocol, reason: .badHandshake,
                            message: "the first message must be the request \(Hello.type), got \(envelope.type ?? envelope.kind.rawValue)",
                            isFatal: true)
        }
        guard envelope.fds == 0 else {
            throw WireError(code: .protocol, reason: .badHandshake, message: "\(Hello.type) carries no descriptors", isFatal: true)
        }
        // Read once: a body the receiver checked from its bytes is parsed at each read.
        let body = envelope.body
        guard let version = body["protocol"]?.int64Value, version == Hello.protocolVersion else {
            throw WireError(code: .protocol, reason: .badHandshake,
                            message: "body.protocol must be 1, got \(body["protocol"]?.jsonText ?? "nothing")", isFatal: true)
        }
        guard case .string(let client)? = body["client"] else {
            throw WireError(code: .protocol, reason: .badHandshake, message: "body.client must be a string", isFatal: true)
        }
        self.init(client: client, protocolVersion: version)
    }
}

/// The broker's answer to `privsep.hello`.
public struct Welcome: Sendable, Equatable {
    /// The helper's name.
    public var helper: String
    /// The protocol version (1).
    public var protocolVersion: Int64
    /// max_frame for this connection, in bytes.
    public var maxFrame: Int
    /// Message types the helper may send.
    public var maySend: [String]
    /// Request types the helper serves.
    public var serves: [String]
    /// Event types delivered to the helper.
    public var receives: [String]

    public init(helper: String, maxFrame: Int = WireLimits.defaultMaxFrame, maySend: [String], serves: [String],
                receives: [String] = [], protocolVersion: Int64 = Hello.protocolVersion)
    {
        self.helper = helper
        self.protocolVersion = protocolVersion
        self.maxFrame = maxFrame
        self.maySend = maySend
        self.serves = serves
        self.receives = receives
    }

    /// The reply body.
    public var body: JSONObject {
        [
            "helper": .string(helper), "protocol": .number(JSONNumber(protocolVersion)),
            "max_frame": .number(JSONNumber(maxFrame)),
            "may_send": .array(maySend.map { .string($0) }), "serves": .array(serves.map { .string($0) }),
            "receives": .array(receives.map { .string($0) }),
        ]
    }

    /// The reply envelope answering the hello request `id`.
    public func reply(to id: Int64) -> Envelope { .reply(to: id, body: body) }

    /// Reads the broker's reply on the helper side: a failed reply or a malformed body is a
    /// fatal `privsep.protocol` error naming the member.
    public init(validatingReply envelope: Envelope) throws(WireError) {
        if let error = envelope.error {
            throw WireError(code: error.code, reason: .badHandshake,
                            message: "the broker refused the handshake: \(error.message)", isFatal: true)
        }
        let body = envelope.body
        func fail(_ member: String) -> WireError {
            WireError(code: .protocol, reason: .badHandshake, message: "hello reply: bad or missing body.\(member)", isFatal: true)
        }
        guard case .string(let helper)? = body["helper"] else { throw fail("helper") }
        guard let version = body["protocol"]?.int64Value, version == Hello.protocolVersion else { throw fail("protocol") }
        guard let frame = body["max_frame"]?.int64Value, frame >= Int64(WireLimits.minFrame),
              frame <= Int64(WireLimits.maxFrameCeiling)
        else { throw fail("max_frame") }
        func names(_ member: String) throws(WireError) -> [String] {
            guard case .array(let items)? = body[member] else { throw fail(member) }
            var result: [String] = []
            for item in items {
                guard case .string(let name) = item, MessageType.isValid(name) else { throw fail(member) }
                result.append(name)
            }
            return result
        }
        self.init(helper: helper, maxFrame: Int(frame), maySend: try names("may_send"), serves: try names("serves"),
                  receives: try names("receives"), protocolVersion: version)
    }
}
