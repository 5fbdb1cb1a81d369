// wire-demo: the first `make demo` scenario of wire protocol v1.
//
// The parent makes a socketpair, posix_spawns this same binary as the helper with its end at
// fd 3 (PRIVSEP_FD=3, PRIVSEP_HELPER=demo, PRIVSEP_PROTOCOL=1), and the two exchange framed JSON
// both ways: the hello handshake, a ping, a file descriptor sent to the helper (which reads the
// file through it) and a pipe sent back (which the parent reads). Exits 0 when all of it worked.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage

let demoText = "privsep passes descriptors, not paths.\n"

/// Writes a line straight to fd 1 (unbuffered), so parent and helper lines interleave in order.
func say(_ line: String) {
    writeLine(1, line)
}

func fail(_ message: String) -> Never {
    writeLine(2, "wire-demo: " + message)
    exit(1)
}

func writeLine(_ fd: Int32, _ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = try? FileDescriptor(rawValue: fd).writeAll(bytes)
}

func hex(_ bytes: [UInt8], limit: Int = 48) -> String {
    let digits = Array("0123456789abcdef")
    var text = ""
    for (index, byte) in bytes.prefix(limit).enumerated() {
        if index > 0 && index % 4 == 0 { text += " " }
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 15)])
    }
    return bytes.count > limit ? text + " ..." : text
}

/// Reads everything from `fd` (bounded), from its current offset.
func readAll(_ fd: FileDescriptor, limit: Int = 1 << 16) throws -> String {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while result.count < limit {
        let count = try chunk.withUnsafeMutableBytes { try fd.read(into: $0) }
        if count == 0 { break }
        result += chunk[0 ..< count]
    }
    return String(decoding: result, as: UTF8.self)
}

/// The next valid message, or exit: the demo has no use for refused ones.
func expectMessage(_ connection: Connection, _ who: String) -> ReceivedMessage {
    do {
        switch try connection.receive() {
        case .message(let message)?: return message
        case .refused(let refused)?: fail("\(who): refused message: \(refused.error)")
        case nil: fail("\(who): connection closed early")
        }
    } catch {
        fail("\(who): \(error)")
    }
}

func show(_ arrow: String, _ envelope: Envelope) {
    let attached = envelope.fds > 0 ? "   [+\(envelope.fds) fd via SCM_RIGHTS]" : ""
    say("  \(arrow) \(envelope.jsonValue.jsonText)\(attached)")
}

// MARK: helper side

func runHelper() -> Never {
    do {
        let connection = try Connection.helperEnd()
        let openAtStart = cps_wire_count_open_fds()
        let helperName = getenv("PRIVSEP_HELPER").map { String(cString: $0) } ?? "?"
        try connection.sendAll(Hello(client: "wire-demo/0.1").request(id: 1))
        let answer = expectMessage(connection, "helper")
        guard answer.envelope.re == 1 else { fail("helper: the hello reply names re \(answer.envelope.re ?? 0)") }
        let welcome = try Welcome(validatingReply: answer.envelope)
        say("  [helper \(helperName)] handshake done: I am \(welcome.helper), max_frame \(welcome.maxFrame), serving \(welcome.serves)")
        while let incoming = try connection.receive() {
            guard case .message(let message) = incoming else { continue }
            let envelope = message.envelope
            guard let id = envelope.id else { continue }
            switch envelope.type {
            case "demo.ping":
                try connection.sendAll(.reply(to: id, body: ["seq": envelope.body["seq"] ?? 0, "pong": true]))
            case "demo.read_file":
                guard let file = message.fds.first?.take() else { fail("helper: no descriptor arrived") }
                defer { try? file.close() }
                let content = try readAll(file)
                say("  [helper \(helperName)] read \(content.utf8.count) bytes through the received fd")
                // Answer with a pipe whose read end carries the text back in upper case.
                let pipeEnds = try FileDescriptor.pipe()
                let upper = String(decoding: content.utf8.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 32 : $0 }, as: UTF8.self)
                _ = try pipeEnds.writeEnd.writeAll(upper.utf8)
                try pipeEnds.writeEnd.close()
                try connection.sendAll(.reply(to: id, body: ["bytes": .number(JSONNumber(content.utf8.count)), "content": .string(content)]),
                                       fds: [pipeEnds.readEnd])
                try pipeEnds.readEnd.close()
            default:
                try connection.sendAll(.errorReply(to: id, code: .unknownType, message: "demo helper does not serve \(envelope.type ?? "?")"))
            }
        }
        connection.close()
        // Every received descriptor was taken and closed, or closed by the wire layer: the
        // count is back to where it started, less the connection itself.
        let openAtEnd = cps_wire_count_open_fds()
        say("  [helper \(helperName)] parent closed the connection; open descriptors: \(openAtStart) at start, \(openAtEnd) after closing fd 3")
        guard openAtEnd == openAtStart - 1 else { fail("helper: descriptors leaked") }
        exit(0)
    } catch {
        fail("helper: \(error)")
    }
}

// MARK: parent side

/// posix_spawns this binary as the helper with `childEnd` at fd 3.
func spawnHelper(childEnd: OwnedFD) -> pid_t {
    var exe = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &exe, exe.count - 1)
    guard length > 0 else { fail("readlink /proc/self/exe failed") }
    let path = String(decoding: exe[0 ..< length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    // dup2 onto 3 clears close-on-exec; if the end already is 3, move it away first.
    var source = childEnd.rawValue
    if source == 3 {
        source = fcntl(3, F_DUPFD_CLOEXEC, 10)
        guard source >= 0 else { fail("fcntl(F_DUPFD_CLOEXEC) failed") }
    }
    posix_spawn_file_actions_adddup2(&actions, source, 3)
    var environment = ["PRIVSEP_FD=3", "PRIVSEP_HELPER=demo", "PRIVSEP_PROTOCOL=1"]
    if let pathVariable = getenv("PATH") { environment.append("PATH=" + String(cString: pathVariable)) }
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
    defer { for pointer in argv + envp { free(pointer) } }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, path, &actions, nil, argv, envp)
    if source != childEnd.rawValue { close(source) }
    guard status == 0 else { fail("posix_spawn: \(String(cString: strerror(status)))") }
    return pid
}

func runParent() -> Never {
    do {
        say("wire-demo: wire protocol v1 over an AF_UNIX socketpair")
        let (parentEnd, childEnd) = try Connection.socketPair()
        let pid = spawnHelper(childEnd: childEnd)
        childEnd.close()
        say("  spawned helper pid \(pid) with its end at fd 3 (PRIVSEP_FD=3 PRIVSEP_HELPER=demo PRIVSEP_PROTOCOL=1)")
        let connection = Connection(socket: parentEnd, peer: .helper)

        say("1. handshake")
        let hello = expectMessage(connection, "parent")
        show("helper -> parent:", hello.envelope)
        do {
            let offer = try Hello(validatingFirst: hello.envelope)
            say("     helper speaks protocol \(offer.protocolVersion) with client \(offer.client)")
        } catch {
            if let id = hello.envelope.id {
                try connection.sendAll(.errorReply(to: id, code: .protocol, message: error.message))
            }
            fail("bad first message: \(error)")
        }
        let welcome = Welcome(helper: "demo", maySend: [], serves: ["demo.ping", "demo.read_file"]).reply(to: hello.envelope.id ?? 1)
        try connection.sendAll(welcome)
        show("parent -> helper:", welcome)

        say("2. ping")
        let ping = Envelope.request("demo.ping", id: 1, body: ["seq": 1])
        say("     frame bytes: \(hex(try ping.encodeFrame()))")
        try connection.sendAll(ping)
        show("parent -> helper:", ping)
        let pong = expectMessage(connection, "parent")
        show("helper -> parent:", pong.envelope)
        guard pong.envelope.re == 1, pong.envelope.body["pong"] == true else { fail("bad pong") }

        say("3. a file descriptor each way")
        var template = Array("/tmp/wire-demo.XXXXXX".utf8CString)
        let tempFd = mkstemp(&template)
        guard tempFd >= 0 else { fail("mkstemp failed") }
        unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
        let file = FileDescriptor(rawValue: tempFd)
        defer { try? file.close() }
        _ = try file.writeAll(demoText.utf8)
        _ = try file.seek(offset: 0, from: .start)
        let request = Envelope.request("demo.read_file", id: 2)
        try connection.sendAll(request, fds: [file])
        var shown = request
        shown.fds = 1
        say("     frame bytes (one sendmsg, SCM_RIGHTS [fd \(tempFd)]): \(hex(try shown.encodeFrame()))")
        show("parent -> helper:", shown)
        let answer = expectMessage(connection, "parent")
        show("helper -> parent:", answer.envelope)
        guard answer.envelope.body["content"]?.stringValue == demoText else { fail("helper read the wrong content") }
        guard answer.fds.count == 1, let pipe = answer.fds.first?.take() else { fail("no pipe came back") }
        defer { try? pipe.close() }
        let upper = try readAll(pipe)
        say("     read through the returned pipe fd: \(upper.debugDescription)")
        guard upper == demoText.uppercased() else { fail("pipe content mismatch") }

        say("4. close")
        connection.close()
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitCode = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        guard exitCode == 0 else { fail("helper exited with status \(exitCode)") }
        say("wire-demo: ok (helper exited 0)")
        exit(0)
    } catch {
        fail("parent: \(error)")
    }
}

if getenv("PRIVSEP_HELPER") != nil { runHelper() } else { runParent() }
