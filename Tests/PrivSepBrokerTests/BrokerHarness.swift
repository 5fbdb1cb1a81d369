// Runs the real broker (`privsep run`) with real sandboxed helper processes.
//
// Most helpers in these tests are `relay` (helpers/relay.c): the broker spawns and sandboxes it
// like any helper, and it hands its broker connection (fd 3) to the test over a unix socket. The
// test then speaks the protocol itself, so each case controls exactly what a helper sends,
// while the broker, the launcher, the sandbox and the sockets are all real. Every wait is
// bounded; nothing sleeps to synchronise.

import Foundation
import PrivSepJSON
import PrivSepWire
import SystemPackage
import Testing

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Build products and test programs, found or built once per test process.
enum TestPrograms {
    /// The directory holding the `privsep` and `privsep-sandbox` binaries of this build.
    static let buildDirectory: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The XCTest bundle lives in .../debug/privsepPackageTests.xctest on Linux.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("privsep").path),
            directory.path != "/"
        {
            directory.deleteLastPathComponent()
        }
        return directory.path
    }()

    static var privsep: String { buildDirectory + "/privsep" }

    static let helperSources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("helpers").path

    /// Compiled test helpers live here (outside the build tree so the sandbox can bind it alone),
    /// shared by every test run: binaries are named by their source's content, so runs reuse them
    /// and nothing piles up.
    static let binDirectory: String = {
        let directory = "/tmp/privsep-test-bin"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }()

    private static let compileLock = NSLock()

    /// Compiles helpers/NAME.c statically (once per content) and returns the binary's path.
    static func compiled(_ name: String) throws -> String {
        compileLock.lock()
        defer { compileLock.unlock() }
        let source = helperSources + "/\(name).c"
        guard let text = FileManager.default.contents(atPath: source) else { throw HarnessError("cannot read \(source)") }
        // FNV-1a: stable across processes, unlike Hasher.
        let digest = text.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
        let output = binDirectory + "/\(name)-" + String(digest, radix: 16)
        if FileManager.default.fileExists(atPath: output) { return output }
        // Built aside and renamed into place, so a concurrent run never sees half a binary.
        let partial = output + ".\(getpid())"
        let cc = try Spawned.run(["/usr/bin/cc", "-static", "-O2", "-Wall", "-Werror", "-o", partial, source], timeout: 120)
        guard cc.status == 0 else { throw HarnessError("cc \(name).c failed with status \(cc.status):\n\(cc.errors)") }
        guard rename(partial, output) == 0 else { throw HarnessError("rename \(partial): \(String(cString: strerror(errno)))") }
        return output
    }
}

/// A broker connection handed over by a relay: the test plays the helper.
final class TestHelper: @unchecked Sendable {
    let name: String
    /// The relay's pid inside the helper's pid namespace (for the record only).
    let relayPID: Int
    let connection: Connection
    /// The socket the relay came in on: one byte on it is the relay's exit status.
    private let control: OwnedFD
    private var buffered: [Incoming] = []
    private var nextID: Int64 = 1

    init(name: String, relayPID: Int, connection: Connection, control: OwnedFD) {
        self.name = name
        self.relayPID = relayPID
        self.connection = connection
        self.control = control
    }

    /// Tells the relay process to exit with `status` (0 = clean).
    func exitProcess(status: UInt8) {
        var byte = status
        // A relay that is already gone must not SIGPIPE the test process.
        _ = Glibc.send(control.rawValue, &byte, 1, Int32(MSG_NOSIGNAL))
        control.close()
    }

    func send(_ envelope: Envelope, fds: [Int32] = []) throws {
        try connection.sendAll(envelope, fds: fds.map { FileDescriptor(rawValue: $0) })
    }

    /// Sends raw bytes (for malformed frames).
    func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(connection.socket.rawValue, $0.baseAddress, $0.count) }
            guard written > 0 else { throw HarnessError("write failed: errno \(errno)") }
            offset += written
        }
    }

    /// A fresh request id.
    func newID() -> Int64 {
        defer { nextID += 1 }
        return nextID
    }

    /// The next message from the broker; nil at end of stream. Throws after `timeout` seconds.
    func next(timeout: Double = 10) throws -> Incoming? {
        let deadline = Date().addingTimeInterval(timeout)
        while buffered.isEmpty {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("\(name): no message within \(timeout) s") }
            var entry = pollfd(fd: connection.socket.rawValue, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(remaining * 1000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            switch try connection.read(into: &buffered) {
            case .frames: continue
            case .endOfStream: return nil
            case .wouldBlock: continue
            }
        }
        return buffered.removeFirst()
    }

    /// The next valid message (refused ones fail the test).
    func nextMessage(timeout: Double = 10) throws -> ReceivedMessage {
        guard let incoming = try next(timeout: timeout) else { throw HarnessError("\(name): connection closed") }
        guard case .message(let message) = incoming else { throw HarnessError("\(name): broker sent a refused frame: \(incoming)") }
        return message
    }

    /// Sends a request and returns its final reply (skipping nothing: the next message must be it).
    func request(_ type: String, _ body: JSONObject = [:], fds: [Int32] = []) throws -> ReceivedMessage {
        let id = newID()
        try send(Envelope.request(type, id: id, body: body), fds: fds)
        let reply = try nextMessage()
        guard reply.envelope.re == id else { throw HarnessError("\(name): expected the reply to \(id), got \(reply.envelope)") }
        return reply
    }

    /// Performs the handshake; returns the hello reply body.
    @discardableResult
    func hello() throws -> JSONObject {
        let reply = try request("privsep.hello", ["protocol": 1, "client": "test-harness/1"])
        guard reply.envelope.error == nil else { throw HarnessError("hello refused: \(reply.envelope)") }
        return reply.envelope.body
    }

    /// True when the broker has closed this connection (EOF or reset) within `timeout`.
    func waitForClose(timeout: Double = 10) throws -> Bool {
        while true {
            do {
                guard try next(timeout: timeout) != nil else { return true }
            } catch let error as WireError where error.isFatal {
                return true
            }
        }
    }
}

/// One run of the broker with a config the test writes.
final class BrokerRun: @unchecked Sendable {
    let directory: String
    let socketPath: String
    let configPath: String
    private let listener: Int32
    private var process: Spawned?
    private var log: LineCollector?

    /// `helpers` maps helper names to their config objects; relay helpers get `RELAY_SOCKET`
    /// and a bind of the test directory added by `relayHelper`.
    init(helpers: [(String, JSONValue)], extra: JSONObject = [:], directory: String? = nil) throws {
        self.directory = try directory ?? makeTemporaryDirectory()
        socketPath = self.directory + "/relay.sock"
        configPath = self.directory + "/config.json"
        listener = try listenUnix(socketPath)
        var config = extra
        config["shutdown_grace_ms"] = config["shutdown_grace_ms"] ?? 2000
        var helperObject = JSONObject()
        for (name, helper) in helpers { helperObject[name] = helper }
        config["helpers"] = .object(helperObject)
        try JSONValue.object(config).jsonText.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// A relay helper's config: the relay binary, the test directory bound, `RELAY_SOCKET` set.
    static func relayHelper(_ object: JSONObject = [:], directory: String) throws -> JSONValue {
        let relay = try TestPrograms.compiled("relay")
        var helper = object
        helper["command"] = helper["command"] ?? [.string(relay)]
        var sandbox = helper["sandbox"]?.objectValue ?? [:]
        sandbox["bind"] = [.string(directory)]
        sandbox["ro_bind"] = [.string(TestPrograms.binDirectory)]
        sandbox["setenv"] = ["RELAY_SOCKET": .string(directory + "/relay.sock")]
        helper["sandbox"] = .object(sandbox)
        return .object(helper)
    }

    func start(arguments: [String] = ["--log-format", "json", "--log-level", "debug"]) throws {
        guard process == nil else { throw HarnessError("the broker was already started") }
        let broker = try Spawned([TestPrograms.privsep, "run", configPath] + arguments, stderr: .pipe)
        process = broker
        log = broker.errors.map(LineCollector.init)
    }

    /// The broker's pid (0 before `start`): valid until `stop` or `waitForExit` reaps it.
    var pid: Int32 { process?.pid ?? 0 }

    /// Accepts the next relay and returns the connection it handed over.
    func accept(timeout: Double = 15) throws -> TestHelper {
        var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("no relay connected within \(timeout) s; log:\n\(logText)") }
            // Short polls so a broker that exited early fails the test at once.
            let ready = poll(&entry, 1, Int32(min(remaining, 0.2) * 1000) + 1)
            if ready > 0 { break }
            if log?.hasEnded != false { throw HarnessError("the broker exited (or never started); log:\n\(logText)") }
        }
        let client = Glibc.accept(listener, nil, nil)
        guard client >= 0 else { throw HarnessError("accept failed: errno \(errno)") }
        let control = OwnedFD(adopting: client)
        // The relay greets as soon as it connects; a relay that does not must not block the test.
        var greeting = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        guard poll(&greeting, 1, 10_000) == 1 else { throw HarnessError("a relay connected but sent no greeting within 10 s") }
        let (line, fd) = try receiveLineAndFD(client)
        let parts = line.split(separator: " ")
        guard parts.count == 2, let pid = Int(parts[1]), fd >= 0 else { throw HarnessError("bad relay greeting \(line)") }
        let connection = Connection(socket: OwnedFD(adopting: fd), peer: .broker)
        try connection.setNonBlocking(true)
        return TestHelper(name: String(parts[0]), relayPID: pid, connection: connection, control: control)
    }

    /// Accepts relays until every name in `names` has connected; returns them by name.
    func acceptAll(_ names: [String]) throws -> [String: TestHelper] {
        var helpers: [String: TestHelper] = [:]
        while helpers.count < names.count {
            let helper = try accept()
            helpers[helper.name] = helper
        }
        return helpers
    }

    /// Sends `signal` and waits (bounded) for the broker to exit; returns its exit status.
    func stop(signal: Int32 = SIGTERM, timeout: Double = 20) throws -> Int32 {
        process?.signal(signal)
        return try waitForExit(timeout: timeout)
    }

    /// Waits (bounded) for the broker to exit and its log to end; returns its exit code (128 + n
    /// when signal n ended it). When the time runs out the broker is killed and this throws.
    func waitForExit(timeout: Double = 20) throws -> Int32 {
        guard let process, let log else { throw HarnessError("the broker was never started") }
        let deadline = Deadline(seconds: timeout)
        let status: Int32
        do {
            status = try process.wait(timeout: timeout)
        } catch {
            throw HarnessError("\(error); log:\n\(log.text)")
        }
        // Every line the broker wrote is in `logEntries` once this returns.
        guard log.waitForEnd(timeout: max(deadline.remainingSeconds, 0)) else {
            throw HarnessError("the broker exited with \(status) but its stderr stayed open for \(timeout) s; log:\n\(log.text)")
        }
        return status
    }

    /// The broker's log lines so far, parsed.
    var logEntries: [JSONObject] { (log?.lines ?? []).compactMap { try? JSONParser.parse($0).objectValue ?? nil } }

    var logText: String { log?.text ?? "" }

    /// Waits until a log line satisfies `predicate`.
    func waitForLog(timeout: Double = 15, _ predicate: @escaping (JSONObject) -> Bool) throws -> JSONObject {
        let isMatch = { (line: String) in (try? JSONParser.parse(line).objectValue).flatMap { $0 }.map(predicate) ?? false }
        if let found = log?.waitFor(timeout: timeout, isMatch) {
            return try JSONParser.parse(found).objectValue ?? [:]
        }
        throw HarnessError("no matching log line within \(timeout) s; log:\n\(logText)")
    }

    deinit {
        process?.kill()
        close(listener)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/privsep-test-XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
    let path = String(cString: result)
    // The helpers run as unprivileged uids and must reach the relay socket.
    chmod(path, 0o755)
    return path
}

func listenUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket failed") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (index, byte) in bytes.enumerated() where index < raw.count - 1 { raw[index] = byte }
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard bound == 0, listen(fd, 64) == 0 else { throw HarnessError("bind/listen \(path) failed: errno \(errno)") }
    // Any helper uid may connect.
    chmod(path, 0o777)
    return fd
}

/// Reads the relay's greeting line and the fd that came with it.
func receiveLineAndFD(_ socket: Int32) throws -> (String, Int32) {
    var buffer = [UInt8](repeating: 0, count: 128)
    var control = [UInt8](repeating: 0, count: 64)
    var received: Int = -1
    var fd: Int32 = -1
    buffer.withUnsafeMutableBytes { data in
        control.withUnsafeMutableBytes { controlBytes in
            var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
            withUnsafeMutablePointer(to: &iov) { iovPointer in
                var message = msghdr()
                message.msg_iov = iovPointer
                message.msg_iovlen = 1
                message.msg_control = controlBytes.baseAddress
                message.msg_controllen = controlBytes.count
                received = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                // cmsghdr: len (8), level (4), type (4), then the fd.
                if received > 0, message.msg_controllen >= 20 {
                    fd = controlBytes.load(fromByteOffset: 16, as: Int32.self)
                }
            }
        }
    }
    guard received > 0 else { throw HarnessError("relay greeting: recvmsg failed") }
    let line = String(decoding: buffer[0..<received], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return (line, fd)
}
