// examples/swift-helper as a real child process, started the way the broker starts a helper:
// its end of a socketpair on fd 3 and PRIVSEP_FD / PRIVSEP_HELPER / PRIVSEP_PROTOCOL set.

import Glibc
import PrivSepHelper
import PrivSepJSON
import PrivSepWire
import SystemPackage
import Testing

/// The swift-helper executable, built beside the test bundle.
private func exampleBinary() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    let exe = String(decoding: buffer[0 ..< count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var parts = exe.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast()
    let path = parts.joined(separator: "/") + "/swift-helper"
    return access(path, X_OK) == 0 ? path : nil
}

/// A running swift-helper: its pid, the broker's side of its socket, its stderr.
private struct Child {
    let pid: pid_t
    let peer: Peer
    let stderr: FileDescriptor

    init() throws {
        guard let binary = exampleBinary() else { throw TestFailure("swift-helper is not built beside the test bundle") }
        peer = try Peer()
        let (errRead, errWrite) = try makePipe()
        stderr = errRead
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Through a copy: dup2 of a descriptor onto itself would keep close-on-exec.
        let socketCopy = fcntl(peer.clientEnd.rawValue, F_DUPFD_CLOEXEC, 10)
        guard socketCopy >= 0 else { throw TestFailure("fcntl: errno \(errno)") }
        defer { close(socketCopy) }
        posix_spawn_file_actions_adddup2(&actions, socketCopy, 3)
        posix_spawn_file_actions_adddup2(&actions, errWrite.rawValue, 2)
        // Sanitizer settings pass through, so that a sanitized helper reports where the run
        // collects reports (Tests/Fuzz/sanitize.sh).
        let sanitizerVariables: [String] = ["ASAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"]
        let sanitizers = sanitizerVariables.compactMap { (name: String) -> String? in
            guard let value = getenv(name) else { return nil }
            return name + "=" + String(cString: value)
        }
        let environment: [String] = ["PRIVSEP_FD=3", "PRIVSEP_HELPER=swift-helper", "PRIVSEP_PROTOCOL=1"] + sanitizers
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(binary), nil]
        let env: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for pointer in argv + env { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, binary, &actions, nil, argv, env)
        try errWrite.close()
        try peer.clientEnd.close()
        guard status == 0 else { throw TestFailure("posix_spawn: \(status)") }
        self.pid = pid
    }

    /// Waits for the exit status and returns it with the child's stderr.
    func finish() throws -> (status: Int32, stderr: String) {
        let output = String(decoding: try readAll(stderr.rawValue), as: UTF8.self)
        try stderr.close()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return ((status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F), output)
    }
}

@Suite("examples/swift-helper")
struct ExampleTests {
    @Test func servesUpperAndStopsOnShutdown() async throws {
        let child = try Child()
        child.peer.start { peer in
            let hello = try peer.nextRequest("privsep.hello")
            peer.check(hello.envelope.body == ["protocol": 1, "client": "swift-helper/1.0"], "hello \(hello.envelope.jsonValue.jsonText)")
            try peer.send(.reply(to: hello.envelope.id!, body: [
                "helper": "swift-helper", "protocol": 1, "max_frame": 1048576,
                "may_send": ["privsep.log"], "serves": ["demo.upper"], "receives": ["privsep.shutdown"],
            ]))
            let log = try peer.next()
            peer.check(log.envelope.type == "privsep.log" && log.envelope.body["message"] == "swift-helper ready",
                       "log \(log.envelope.jsonValue.jsonText)")
            try peer.send(.request("demo.upper", id: 1, body: ["text": "privsep ß"]))
            let upper = try peer.next()
            peer.check(upper.envelope == .reply(to: 1, body: ["text": "PRIVSEP SS"]), "upper \(upper.envelope.jsonValue.jsonText)")
            try peer.send(.request("demo.upper", id: 2, body: ["text": 3]))
            let invalid = try peer.next()
            peer.check(invalid.envelope.re == 2 && invalid.envelope.error?.code == .invalid, "invalid \(invalid.envelope.jsonValue.jsonText)")
            try peer.send(.request("demo.other", id: 3))
            let unknown = try peer.next()
            peer.check(unknown.envelope.re == 3 && unknown.envelope.error?.code == .unknownType, "unknown \(unknown.envelope.jsonValue.jsonText)")
            try peer.send(.event("privsep.shutdown", body: ["grace_ms": 1000]))
            // The helper closes its end on the way out.
            peer.check(try peer.connection.receive() == nil, "expected end of stream")
        }
        #expect(await child.peer.finish() == [])
        let (status, stderr) = try child.finish()
        #expect(status == 0, "stderr: \(stderr)")
        let summary = try JSONParser.parse(String(stderr.split(separator: "\n").first ?? ""))
        for key in ["uid", "gid", "no_new_privs", "seccomp", "root_read_only"] {
            #expect(summary[key] != nil, "summary lacks \(key): \(stderr)")
        }
        #expect(summary["uid"] == .number(JSONNumber(Int64(getuid()))))
    }

    @Test func exitsCleanlyWhenTheBrokerHangsUp() async throws {
        let child = try Child()
        child.peer.start { peer in
            let hello = try peer.nextRequest("privsep.hello")
            try peer.send(.reply(to: hello.envelope.id!, body: [
                "helper": "swift-helper", "protocol": 1, "max_frame": 65536,
                "may_send": [], "serves": [], "receives": [],
            ]))
            _ = try peer.next()  // the log line; then hang up
        }
        #expect(await child.peer.finish() == [])
        let (status, stderr) = try child.finish()
        #expect(status == 0, "stderr: \(stderr)")
    }
}
