// A broker stand-in for the client tests: the other end of a real socketpair, driven by a
// script on its own POSIX thread with a blocking PrivSepWire.Connection. No Foundation.

import Glibc
@testable import PrivSepHelper
import PrivSepJSON
// For Locked: the package's lock, which (unlike Synchronization.Mutex) the thread sanitizer
// sees, so the sanitized test run reports no race that is not one.
import PrivSepWire
import SystemPackage

/// A setup or peer failure outside #expect.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A one-shot flag a thread raises and tasks await.
final class Signal: Sendable {
    private let state = Locked<(raised: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func raise() {
        let waiters = state.withLock { state in
            state.raised = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let raised = state.withLock { state in
                if !state.raised { state.waiters.append(continuation) }
                return state.raised
            }
            if raised { continuation.resume() }
        }
    }
}

/// A thread-safe count.
final class Counter: Sendable {
    private let count = Locked(0)
    func add(_ amount: Int) { count.withLock { $0 += amount } }
    var value: Int { count.withLock { $0 } }
}

/// The broker's side of the socketpair.
final class Peer: @unchecked Sendable {
    let connection: Connection
    private let failures = Locked<[String]>([])
    private let done = Signal()

    /// The client's end, to pass to `PrivSepClient.connect(socket:)`.
    let clientEnd: FileDescriptor

    init() throws {
        let (brokerEnd, helperEnd) = try Connection.socketPair()
        guard let clientEnd = helperEnd.take() else { throw TestFailure("socketpair") }
        self.clientEnd = clientEnd
        connection = Connection(socket: brokerEnd, peer: .helper)
    }

    /// Runs `script` on a new thread; an error it throws is recorded as a failure. The socket is
    /// closed when the script ends, so a client waiting on it sees end of stream.
    func start(_ script: @escaping @Sendable (Peer) throws -> Void) {
        let body: @Sendable () -> Void = { [self] in
            do { try script(self) } catch { fail("peer: \(error)") }
            connection.close()
            done.raise()
        }
        final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        precondition(result == 0, "pthread_create")
        pthread_detach(thread)
    }

    /// Waits for the script to end and returns what it found wrong.
    func finish() async -> [String] {
        await done.wait()
        return failures.withLock { $0 }
    }

    func fail(_ message: String) { failures.withLock { $0.append(message) } }

    func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }

    /// The next valid message; end of stream or a refused frame is an error.
    func next() throws -> ReceivedMessage {
        switch try connection.receive() {
        case .message(let message)?: return message
        case .refused(let refused)?: throw TestFailure("client sent an invalid message: \(refused.error)")
        case nil: throw TestFailure("client closed the connection")
        }
    }

    /// The next message, which must be a request of `type`.
    func nextRequest(_ type: String) throws -> ReceivedMessage {
        let message = try next()
        guard message.envelope.kind == .request, message.envelope.type == type else {
            throw TestFailure("expected request \(type), got \(message.envelope.jsonValue.jsonText)")
        }
        return message
    }

    /// Answers the handshake, checking the hello body.
    func answerHello(helper: String = "tester", maxFrame: Int = 1 << 20, serves: [String] = ["demo.upper"]) throws {
        let hello = try nextRequest("privsep.hello")
        check(hello.envelope.body == ["protocol": 1, "client": "privsep-swift/1.0"],
              "hello body \(JSONValue.object(hello.envelope.body).jsonText)")
        let reply: JSONObject = [
            "helper": .string(helper), "protocol": 1, "max_frame": .number(JSONNumber(maxFrame)),
            "may_send": ["privsep.ping", "privsep.log"], "serves": .array(serves.map { .string($0) }),
            "receives": ["privsep.shutdown"],
        ]
        try send(.reply(to: hello.envelope.id!, body: reply))
    }

    func send(_ envelope: Envelope, fds: [FileDescriptor] = []) throws {
        var message = envelope
        if message.from == nil { message.from = "broker" }
        try connection.sendAll(message, fds: fds)
    }

    /// Writes raw bytes as one frame (for malformed messages the Envelope type cannot express).
    func sendRawFrame(_ body: [UInt8]) throws {
        let length = UInt32(body.count)
        let bytes = [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
        try writeAll(connection.socket.rawValue, bytes)
    }
}

/// Connects a client to a fresh peer running `script`.
func connectedPair(options: ClientOptions = .default, maxFrame: Int = 1 << 20,
                   _ script: @escaping @Sendable (Peer) throws -> Void) async throws -> (PrivSepClient, Peer)
{
    let peer = try Peer()
    peer.start { peer in
        try peer.answerHello(maxFrame: maxFrame)
        try script(peer)
    }
    let client = try await PrivSepClient.connect(socket: peer.clientEnd, expectedHelper: "tester", options: options)
    return (client, peer)
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let count = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { throw TestFailure("write: errno \(errno)") }
        offset += count
    }
}

/// Reads until end of file.
func readAll(_ fd: Int32) throws -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = Glibc.read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { throw TestFailure("read: errno \(errno)") }
        if count == 0 { return result }
        result += chunk[0 ..< count]
    }
}

/// A close-on-exec pipe.
func makePipe() throws -> (read: FileDescriptor, write: FileDescriptor) {
    var ends: [Int32] = [-1, -1]
    guard pipe(&ends) == 0 else { throw TestFailure("pipe: errno \(errno)") }
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    return (FileDescriptor(rawValue: ends[0]), FileDescriptor(rawValue: ends[1]))
}

/// Whether `fd` is an open descriptor in this process.
func isOpen(_ fd: FileDescriptor) -> Bool { fcntl(fd.rawValue, F_GETFD) >= 0 }
