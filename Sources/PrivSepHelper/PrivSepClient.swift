// The public face of the Swift helper client.

import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage

/// A helper's connection to the privsep broker: requests and replies with async/await, Codable
/// bodies, descriptors as `FileDescriptor`.
///
/// ```swift
/// let client = try await PrivSepClient.connect()
/// for await message in client.incoming { ... }
/// ```
///
/// One dedicated POSIX thread reads the socket; every method may be called from any task. A
/// method that sends writes its frame at once, in call order under a lock, and returns when the
/// kernel has it or, if the socket is full, once it is queued (bounded; the thread flushes the
/// queue when the socket drains). `send`, `reply` and `log` never wait for the broker. Every wait is cancellable:
/// cancelling a task that awaits a reply throws `CancellationError` (the reply, if it still comes,
/// is dropped and its descriptors closed).
///
/// Descriptors passed to the client (`fds:` arguments) are borrowed: the client duplicates them,
/// so the caller may close its own as soon as the call returns. Descriptors received are owned by
/// the `Reply` or `IncomingMessage` that carries them and closed with it, unless the application
/// takes them with `takeFDs()`.
public final class PrivSepClient: Sendable {
    /// The broker's answer to the handshake: this helper's name, max_frame and permissions.
    public let hello: HelloReply
    /// Requests and events sent to this helper, in arrival order, until the connection ends
    /// (for instance after `privsep.shutdown`, when the broker closes it). Iterate it once.
    public let incoming: AsyncStream<IncomingMessage>
    /// The bounds in force.
    public let options: ClientOptions
    let core: ClientCore

    private init(core: ClientCore, hello: HelloReply) {
        self.core = core
        self.hello = hello
        self.incoming = core.incoming
        self.options = core.options
    }

    deinit { core.stopSoon() }

    /// Connects with what the broker put in the environment (PRIVSEP_FD=3, PRIVSEP_HELPER,
    /// PRIVSEP_PROTOCOL=1) and performs the `privsep.hello` handshake.
    ///
    /// - Parameter client: names this library to the broker, `name/version`.
    /// - Throws: `PrivSepError` (local) when the environment is wrong or the handshake fails.
    public static func connect(client: String = "privsep-swift/1.0", options: ClientOptions = .default) async throws -> PrivSepClient {
        guard let helper = getenv("PRIVSEP_HELPER").map({ String(cString: $0) }), !helper.isEmpty else {
            throw PrivSepError.local(.protocol, "PRIVSEP_HELPER is not set: this program must be started by privsep")
        }
        let connection: Connection
        do {
            connection = try Connection.helperEnd(limits: receiveLimits)
        } catch {
            throw PrivSepError(error)
        }
        return try await handshake(connection, client: client, expectedHelper: helper, options: options)
    }

    /// Connects over `socket` (ownership moves to the client), e.g. one end of a socketpair in a
    /// test, and performs the handshake. `expectedHelper`, when given, must match the name the
    /// broker answers with.
    public static func connect(socket: FileDescriptor, client: String = "privsep-swift/1.0", expectedHelper: String? = nil,
                               options: ClientOptions = .default) async throws -> PrivSepClient
    {
        let connection = Connection(socket: OwnedFD(adopting: socket), peer: .broker, limits: receiveLimits)
        return try await handshake(connection, client: client, expectedHelper: expectedHelper, options: options)
    }

    /// Frames from the broker may be as large as any max_frame it could announce; what this
    /// helper sends is held to the announced one.
    private static let receiveLimits = WireLimits(maxFrame: WireLimits.maxFrameCeiling)

    private static func handshake(_ connection: Connection, client: String, expectedHelper: String?,
                                  options: ClientOptions) async throws -> PrivSepClient
    {
        let core = try ClientCore(connection: connection, options: options)
        do {
            let body: JSONObject = ["protocol": 1, "client": .string(client)]
            let reply = try await core.request(.request("privsep.hello", id: 1, body: body), fds: [])
            let hello: HelloReply
            do {
                hello = try reply.decode(HelloReply.self)
            } catch {
                throw PrivSepError.local(.protocol, "the hello reply does not match schema/privsep/hello.json: \(error)")
            }
            guard hello.protocol == 1 else {
                throw PrivSepError.local(.protocol, "the broker speaks protocol \(hello.protocol); this client speaks 1")
            }
            if let expectedHelper, expectedHelper != hello.helper {
                throw PrivSepError.local(.protocol, "the broker calls this helper '\(hello.helper)' but PRIVSEP_HELPER is '\(expectedHelper)'")
            }
            try core.setSendLimit(hello.maxFrame)
            return PrivSepClient(core: core, hello: hello)
        } catch {
            await core.close()
            throw error
        }
    }

    /// Incoming events dropped because `incoming` was full or no longer iterated.
    public var droppedEvents: Int { core.state.withLock { $0.droppedEvents } }

    /// Why the client can no longer send, once it cannot: closed, or the connection ended.
    public var closedReason: PrivSepError? { core.state.withLock { $0.failure } }

    // MARK: Requests

    /// Sends request `type` and waits for its final reply.
    ///
    /// Partial (`more`) replies are dropped; use `streamingRequest` for streaming types. An
    /// error reply is thrown as `PrivSepError` with `source == .reply`.
    public func request(_ type: String, body: some Encodable = JSONObject(), fds: [FileDescriptor] = []) async throws -> Reply {
        let envelope = Envelope.request(try checked(type), id: 1, body: try JSONValueEncoder().encodeObject(body))
        return try await core.request(envelope, fds: fds)
    }

    /// Sends request `type` and decodes its final reply's body as `Response`. Descriptors that
    /// come with the reply are closed; use the untyped `request` to keep them.
    public func request<Response: Decodable>(_ type: String, body: some Encodable = JSONObject(), fds: [FileDescriptor] = [],
                                             as responseType: Response.Type = Response.self) async throws -> Response
    {
        let reply: Reply = try await request(type, body: body, fds: fds)
        return try reply.decode(responseType)
    }

    /// Sends request `type` and returns its replies as they come: every `more` part, then the
    /// final one, after which the stream ends. An error reply ends the stream by throwing
    /// `PrivSepError`. Ending the iteration early forgets the request (later parts are dropped);
    /// cancelling the iterating task makes the iteration throw `CancellationError`.
    public func streamingRequest(_ type: String, body: some Encodable = JSONObject(),
                                 fds: [FileDescriptor] = []) async throws -> AsyncThrowingStream<Reply, any Error>
    {
        let envelope = Envelope.request(try checked(type), id: 1, body: try JSONValueEncoder().encodeObject(body))
        return try core.streamingRequest(envelope, fds: fds)
    }

    // MARK: Events and replies

    /// Sends the one-way event `type`.
    public func send(event type: String, body: some Encodable = JSONObject(), fds: [FileDescriptor] = []) async throws {
        let envelope = Envelope.event(try checked(type), body: try JSONValueEncoder().encodeObject(body))
        try core.send(envelope, fds: fds)
    }

    /// Answers `request` with `body`. Pass `more: true` for each part of a streaming reply but
    /// the last; every request gets exactly one final reply (this, or `replyError`).
    public func reply(to request: IncomingMessage, body: some Encodable = JSONObject(), fds: [FileDescriptor] = [],
                      more: Bool = false) async throws
    {
        let id = try requestId(request)
        let envelope = Envelope.reply(to: id, body: try JSONValueEncoder().encodeObject(body), more: more)
        try core.send(envelope, fds: fds)
    }

    /// Answers `request` with an error (always final).
    public func replyError(to request: IncomingMessage, code: ErrorCode, message: String, data: JSONValue? = nil) async throws {
        guard code.isWellFormed else {
            throw PrivSepError.local(.invalid, "error code '\(code)' must match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$")
        }
        let envelope = Envelope.errorReply(to: try requestId(request), code: code, message: message, data: data)
        try core.send(envelope, fds: [])
    }

    // MARK: Broker services

    /// Writes a line into the broker's log, tagged with this helper's name (`privsep.log`).
    ///
    /// `fields` keys match `^[A-Za-z_][A-Za-z0-9_.-]{0,63}$` (at most 64 of them); values are
    /// scalars (string, number, boolean, null). Both are checked here before sending.
    public func log(level: LogLevel = .info, message: String, fields: KeyValuePairs<String, JSONValue> = [:]) async throws {
        var body: JSONObject = ["level": .string(level.rawValue), "message": .string(message)]
        guard message.unicodeScalars.count <= 65536 else {
            throw PrivSepError.local(.invalid, "log message of \(message.unicodeScalars.count) characters; at most 65536")
        }
        if !fields.isEmpty {
            guard fields.count <= 64 else { throw PrivSepError.local(.invalid, "\(fields.count) log fields; at most 64") }
            var object = JSONObject()
            for (key, value) in fields {
                guard isFieldName(key) else {
                    throw PrivSepError.local(.invalid, "log field name '\(key)' must match ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
                }
                switch value {
                case .array, .object: throw PrivSepError.local(.invalid, "log field '\(key)' must be a scalar, got \(value.typeName)")
                default: object[key] = value
                }
            }
            body["fields"] = .object(object)
        }
        try core.send(.event("privsep.log", body: body), fds: [])
    }

    /// Drops permissions this helper no longer needs (`privsep.restrict`, like pledge(2)): each
    /// list given is intersected with the current one; a list left nil is unchanged.
    /// Returns the permissions now in force.
    public func restrict(maySend: [String]? = nil, serves: [String]? = nil, receives: [String]? = nil) async throws -> Permissions {
        var body = JSONObject()
        if let maySend { body["may_send"] = .array(maySend.map { .string($0) }) }
        if let serves { body["serves"] = .array(serves.map { .string($0) }) }
        if let receives { body["receives"] = .array(receives.map { .string($0) }) }
        return try await request("privsep.restrict", body: body, as: Permissions.self)
    }

    // MARK: Closing

    /// Stops accepting messages, writes what is queued (for at most
    /// `options.closeLingerMilliseconds`), closes the socket, fails requests still waiting and
    /// ends `incoming`. Idempotent; returns once the I/O thread has finished.
    public func close() async { await core.close() }

    // MARK: Checks

    private func checked(_ type: String) throws(PrivSepError) -> String {
        guard MessageType.isValid(type) else {
            throw .local(.invalid, "message type '\(type)' must match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$")
        }
        return type
    }

    private func requestId(_ message: IncomingMessage) throws(PrivSepError) -> Int64 {
        guard let id = message.id else {
            throw .local(.invalid, "'\(message.type)' is an event: there is nothing to reply to")
        }
        return id
    }
}

/// `^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`
private func isFieldName(_ name: String) -> Bool {
    let bytes = Array(name.utf8)
    guard let first = bytes.first, bytes.count <= 64 else { return false }
    func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
    guard letter(first) else { return false }
    return bytes.dropFirst().allSatisfy { letter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D }
}
