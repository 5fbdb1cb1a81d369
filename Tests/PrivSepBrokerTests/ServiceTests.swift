// The privileged services with the real broker and real sandboxed helpers (relays): files
// opened beneath a rule's directory and handed back as descriptors, a symlink swapped by a
// racing thread, listening and connected sockets on 127.0.0.1, names and users, and the audit
// line every decision leaves. Load-time policy errors are checked without running anything.

import Foundation
import PrivSepBroker
import PrivSepJSON
import PrivSepWire
import Synchronization
import Testing

/// A relay helper `app` with the given service members; the broker runs with the test directory.
private func serviceRun(_ members: JSONObject, directory: String) throws -> BrokerRun {
    var helper: JSONObject = [
        "may_send": [
            "privsep.file.open", "privsep.file.read", "privsep.net.listen", "privsep.net.connect",
            "privsep.dns.resolve", "privsep.user.lookup",
        ],
    ]
    for (key, value) in members.members { helper[key] = value }
    return try BrokerRun(helpers: [("app", try BrokerRun.relayHelper(helper, directory: directory))], directory: directory)
}

private func startApp(_ run: BrokerRun) throws -> TestHelper {
    try run.start()
    let app = try run.accept()
    try app.hello()
    return app
}

/// Everything readable from a descriptor (bounded).
private func readAll(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
    var content: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while content.count < limit {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        content += buffer[0..<count]
    }
    return content
}

private func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

/// The reason tag of a privsep.denied reply.
private func deniedReason(_ message: ReceivedMessage) -> String? {
    guard errorCode(message) == "privsep.denied" else { return nil }
    return message.envelope.error?.data?.objectValue?["reason"]?.stringValue
}

/// The audit lines logged so far.
private func auditLines(_ run: BrokerRun) -> [JSONObject] {
    run.logEntries.filter { $0["message"] == "audit" }
}

/// Waits until `count` audit lines are in the log (the broker writes them when its loop is about
/// to sleep, and the log pipe is read by another thread).
private func waitForAudits(_ run: BrokerRun, _ count: Int) throws -> [JSONObject] {
    // The predicate runs under the collector's lock, once per line in order: count there.
    var seen = 0
    _ = try run.waitForLog { line in
        if line["message"] == "audit" { seen += 1 }
        return seen >= count
    }
    return auditLines(run)
}

/// A free TCP port on 127.0.0.1 (bound to 0, read back, closed).
private func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HarnessError("bind 127.0.0.1:0 failed: errno \(errno)") }
    return UInt16(bigEndian: address.sin_port)
}

/// A TCP connection from the test to 127.0.0.1:port.
private func connectLoopback(_ port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        throw HarnessError("connect 127.0.0.1:\(port) failed: errno \(errno)")
    }
    return fd
}

/// A listening socket of the test on 127.0.0.1, on a kernel-chosen port.
private func listenLoopback() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && listen(fd, 8) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard ok else { throw HarnessError("listen on 127.0.0.1 failed: errno \(errno)") }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// Waits (bounded) until fd is readable.
private func waitReadable(_ fd: Int32, timeoutMs: Int32 = 5000) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, timeoutMs) == 1
}

/// Shared between the test and its racing threads.
private final class RaceState: Sendable {
    let stop = Atomic<Bool>(false)
    let swaps = Atomic<Int>(0)
}

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct FileServiceTests {
    @Test func permittedFileIsReadThroughTheReceivedDescriptor() throws {
        let directory = try makeTemporaryDirectory()
        let root = directory + "/www"
        try FileManager.default.createDirectory(atPath: root + "/sub", withIntermediateDirectories: true)
        try write("<h1>hello</h1>\n", to: root + "/index.html")
        try write("deep\n", to: root + "/sub/page.txt")
        let run = try serviceRun(["files": [["path": .string(root), "access": ["read"], "recursive": true]]],
                                 directory: directory)
        let app = try startApp(run)

        let reply = try app.request("privsep.file.open", ["path": .string(root + "/index.html"), "access": ["read"]])
        #expect(reply.envelope.error == nil)
        #expect(reply.envelope.body["path"] == .string(root + "/index.html"))
        try #require(reply.fds.count == 1)
        let fd = reply.fds[0].rawValue
        #expect(String(decoding: readAll(fd), as: UTF8.self) == "<h1>hello</h1>\n")
        // Read-only: a write through it fails.
        #expect(Glibc.write(fd, "x", 1) == -1)
        // Close-on-exec as received, as for every descriptor the client library hands out.
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)

        let deep = try app.request("privsep.file.open", ["path": .string(root + "/sub/page.txt"), "access": ["read"]])
        try #require(deep.fds.count == 1)
        #expect(String(decoding: readAll(deep.fds[0].rawValue), as: UTF8.self) == "deep\n")

        // A body longer than the audit keeps: six names of a hundred two-byte characters, the
        // first shifted by one byte if need be so that byte 1024 is the second byte of one.
        let head = #"{"path":""# + root + "/"
        let shift = (1024 - head.utf8.count) % 2 == 0 ? "x" : ""
        let name = String(repeating: "\u{E9}", count: 100)
        let long = root + "/" + shift + name + String(repeating: "/" + name, count: 5)
        let missing = try app.request("privsep.file.open", ["path": .string(long), "access": ["read"]])
        #expect(errorCode(missing) == "privsep.not_found")

        let audits = try waitForAudits(run, 3)
        #expect(audits.prefix(2).allSatisfy { $0["decision"] == "granted" && $0["rule"] == "/helpers/app/files/0" })
        #expect(audits.first?["type"] == "privsep.file.open")
        #expect(audits.first?["helper"] == "app")
        // The body as the helper's client sent it.
        #expect(audits.first?["arguments"] == .string(#"{"path":"\#(root)/index.html","access":["read"]}"#))
        // Cut at 1024 bytes, back to a character boundary: no character split into U+FFFD.
        let cut = try #require(audits.last?["arguments"]?.stringValue)
        let sent = #"{"path":"\#(long)","access":["read"]}"#
        #expect(cut.hasSuffix("..."))
        #expect(cut.utf8.count == 1023 + 3)
        #expect(sent.hasPrefix(cut.dropLast(3)))
        #expect(!cut.contains("\u{FFFD}"))
        app.exitProcess(status: 0)
        _ = try run.stop()
    }

    @Test func aBurstOfRequestsLeavesEveryAuditLineInOrder() throws {
        let directory = try makeTemporaryDirectory()
        let root = directory + "/data"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let count = 200
        for index in 0..<count { try write("\(index)\n", to: root + "/f\(index)") }
        let run = try serviceRun(["files": [["path": .string(root), "access": ["read"], "recursive": true]]],
                                 directory: directory)
        let app = try startApp(run)
        // All sent before any reply is read: the broker finds them back to back, so its audit
        // lines are queued, then written together.
        var ids: [Int64] = []
        for index in 0..<count {
            let id = app.newID()
            ids.append(id)
            try app.send(Envelope.request("privsep.file.open", id: id, body: ["path": .string(root + "/f\(index)"), "access": ["read"]]))
        }
        for (index, id) in ids.enumerated() {
            let reply = try app.nextMessage()
            #expect(reply.envelope.re == id)
            try #require(reply.fds.count == 1)
            #expect(String(decoding: readAll(reply.fds[0].rawValue), as: UTF8.self) == "\(index)\n")
        }
        let audits = try waitForAudits(run, count)
        #expect(audits.count == count)
        let expected = (0..<count).map { JSONValue.string(#"{"path":"\#(root)/f\#($0)","access":["read"]}"#) }
        #expect(audits.map { $0["arguments"] } == expected.map { Optional($0) })
        app.exitProcess(status: 0)
        _ = try run.stop()
    }

    @Test func escapesRelativePathsAndUnpermittedFilesAreDenied() throws {
        let directory = try makeTemporaryDirectory()
        let root = directory + "/www"
        try FileManager.default.createDirectory(atPath: root + "/dir", withIntermediateDirectories: true)
        try write("public\n", to: root + "/index.html")
        try write("secret\n", to: directory + "/secret")
        try FileManager.default.createSymbolicLink(atPath: root + "/escape", withDestinationPath: directory + "/secret")
        try FileManager.default.createSymbolicLink(atPath: root + "/up", withDestinationPath: "../secret")
        let run = try serviceRun([
            "files": [
                ["path": .string(root), "access": ["read"], "recursive": true],
                ["path": .string(directory + "/single.txt"), "access": ["read", "write", "create"]],
                ["path": .string(directory + "/caf\u{E9}.txt"), "access": ["read"]],
            ],
        ], directory: directory)
        let app = try startApp(run)

        func open(_ path: String, _ access: JSONValue = ["read"]) throws -> ReceivedMessage {
            let reply = try app.request("privsep.file.open", ["path": .string(path), "access": access])
            if reply.envelope.error != nil { #expect(reply.fds.isEmpty) }
            return reply
        }
        // Not absolute or not normalised: refused before any rule is consulted.
        #expect(deniedReason(try open(root + "/../secret")) == "bad_path")
        #expect(deniedReason(try open("index.html")) == "bad_path")
        #expect(deniedReason(try open(root + "/./index.html")) == "bad_path")
        #expect(deniedReason(try open(root + "//index.html")) == "bad_path")
        #expect(deniedReason(try open(root + "/dir/")) == "bad_path")
        // Outside every rule.
        #expect(deniedReason(try open(directory + "/secret")) == "no_rule")
        #expect(deniedReason(try open("/etc/passwd")) == "no_rule")
        #expect(deniedReason(try open(root)) == nil)  // the rule's own directory: a directory, not denied
        // A prefix that is not a path component is not under the rule.
        #expect(deniedReason(try open(root + "x/index.html")) == "no_rule")
        // Covered, but the rule does not grant writing.
        #expect(deniedReason(try open(root + "/index.html", ["write"])) == "access")
        // Symlinks inside the tree: never followed when the rule does not allow them.
        #expect(deniedReason(try open(root + "/escape")) == "symlink")
        #expect(deniedReason(try open(root + "/up")) == "symlink")
        // Errors after the rule allowed it.
        #expect(errorCode(try open(root + "/missing.html")) == "privsep.not_found")
        #expect(errorCode(try open(root + "/dir")) == "privsep.is_directory")
        #expect(errorCode(try open(root + "/index.html/x")) == "privsep.not_directory")
        // The single-file rule: exactly that path, created on demand.
        let created = try open(directory + "/single.txt", ["write", "create"])
        try #require(created.fds.count == 1)
        #expect(Glibc.write(created.fds[0].rawValue, "made", 4) == 4)
        #expect(try String(contentsOfFile: directory + "/single.txt", encoding: .utf8) == "made")
        #expect(deniedReason(try open(directory + "/single.txt2")) == "no_rule")
        #expect(errorCode(try open(directory + "/single.txt", ["create"])) == "privsep.invalid")
        // Paths match as bytes, as the kernel resolves them: the same name in another Unicode
        // normalisation form (e + combining acute) is another file, not under the rule.
        try write("nfc\n", to: directory + "/caf\u{E9}.txt")
        #expect(try open(directory + "/caf\u{E9}.txt").fds.count == 1)
        #expect(deniedReason(try open(directory + "/cafe\u{301}.txt")) == "no_rule")

        let audits = try waitForAudits(run, 20)
        #expect(audits.count == 20)
        #expect(audits.filter { $0["decision"] == "denied" }.count == 13)
        #expect(audits.filter { $0["decision"] == "granted" }.count == 2)
        #expect(audits.filter { $0["decision"] == "failed" }.count == 5)
        #expect(audits.contains { $0["decision"] == "denied" && $0["rule"] == "none" && $0["code"] == "privsep.denied" })
        app.exitProcess(status: 0)
        _ = try run.stop()
    }

    /// A racing thread swaps `link` between a regular file inside the tree and a symlink to a
    /// file outside it (rename is atomic), while the helper side keeps opening `link`. With
    /// symlinks forbidden and with them allowed (RESOLVE_BENEATH alone), the outside file is
    /// never opened.
    @Test func symlinkSwappedByARacingThreadNeverOpensTheOutsideFile() throws {
        let directory = try makeTemporaryDirectory()
        let strict = directory + "/strict", lenient = directory + "/lenient"
        for root in [strict, lenient] { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) }
        try write("SECRET", to: directory + "/secret")
        let run = try serviceRun([
            "files": [
                ["path": .string(strict), "access": ["read"], "recursive": true],
                ["path": .string(lenient), "access": ["read"], "recursive": true, "symlinks": true],
            ],
        ], directory: directory)
        let app = try startApp(run)

        let race = RaceState()
        let racers = [strict, lenient].map { root in
            Thread {
                var index = 0
                while !race.stop.load(ordering: .relaxed) {
                    index += 1
                    let staging = root + "/staging"
                    unlink(staging)
                    if index % 2 == 0 {
                        symlink(directory + "/secret", staging)
                    } else {
                        let fd = open(staging, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
                        _ = Glibc.write(fd, "inside", 6)
                        close(fd)
                    }
                    rename(staging, root + "/link")
                    race.swaps.add(1, ordering: .relaxed)
                }
            }
        }
        racers.forEach { $0.start() }
        defer { race.stop.store(true, ordering: .relaxed) }

        var opened = [strict: 0, lenient: 0], refused = [strict: 0, lenient: 0]
        var codes: [String: Int] = [:]
        // At least 400 opens, and on until each rule has seen both outcomes (bounded).
        for attempt in 0..<5000 {
            if attempt >= 400 && [strict, lenient].allSatisfy({ opened[$0]! > 0 && refused[$0]! > 0 }) { break }
            let root = attempt % 2 == 0 ? strict : lenient
            let reply = try app.request("privsep.file.open", ["path": .string(root + "/link"), "access": ["read"]])
            if let fd = reply.fds.first {
                let content = String(decoding: readAll(fd.rawValue), as: UTF8.self)
                #expect(content != "SECRET", "opened the file outside the rule through \(root)/link")
                opened[root, default: 0] += 1
            } else {
                let code = errorCode(reply)
                #expect(code == "privsep.denied" || code == "privsep.not_found", "unexpected \(code ?? "success")")
                refused[root, default: 0] += 1
                codes["\(root == strict ? "strict" : "lenient") \(deniedReason(reply) ?? code ?? "")", default: 0] += 1
            }
        }
        race.stop.store(true, ordering: .relaxed)
        // The race really happened: both outcomes were seen on both rules.
        #expect(race.swaps.load(ordering: .relaxed) > 1)
        #expect(opened[strict]! > 0 && refused[strict]! > 0, "strict: \(opened[strict]!) opened, \(refused[strict]!) refused; \(codes)")
        #expect(opened[lenient]! > 0 && refused[lenient]! > 0)
        app.exitProcess(status: 0)
        _ = try run.stop()
    }

    @Test func fileReadReturnsTextOrBase64AndRefusesOverMaxBytes() throws {
        let directory = try makeTemporaryDirectory()
        try write("héllo\n", to: directory + "/text.txt")
        try Data([0, 1, 2, 0xff, 0xfe]).write(to: URL(fileURLWithPath: directory + "/blob.bin"))
        try write(String(repeating: "x", count: 5000), to: directory + "/big.txt")
        let run = try serviceRun([
            "files": [
                ["path": .string(directory + "/text.txt"), "access": ["read"]],
                ["path": .string(directory + "/blob.bin"), "access": ["read"]],
                ["path": .string(directory + "/big.txt"), "access": ["read"]],
            ],
        ], directory: directory)
        let app = try startApp(run)

        let text = try app.request("privsep.file.read", ["path": .string(directory + "/text.txt")])
        #expect(text.envelope.body == ["encoding": "utf-8", "content": "héllo\n", "size": 7])
        let blob = try app.request("privsep.file.read", ["path": .string(directory + "/blob.bin")])
        #expect(blob.envelope.body == ["encoding": "base64", "content": "AAEC//4=", "size": 5])
        let big = try app.request("privsep.file.read", ["path": .string(directory + "/big.txt"), "max_bytes": 4096])
        #expect(errorCode(big) == "privsep.too_large")
        let exact = try app.request("privsep.file.read", ["path": .string(directory + "/big.txt"), "max_bytes": 5000])
        #expect(exact.envelope.body["size"] == 5000)
        #expect(deniedReason(try app.request("privsep.file.read", ["path": "/etc/passwd"])) == "no_rule")
        let audits = try waitForAudits(run, 5)
        #expect(audits.map { $0["decision"]?.stringValue ?? "" } == ["granted", "granted", "failed", "granted", "denied"])
        app.exitProcess(status: 0)
        _ = try run.stop()
    }
}

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct NetServiceTests {
    @Test func listenGivesAListeningSocketATCPClientReaches() throws {
        let directory = try makeTemporaryDirectory()
        let port = try freePort()
        let run = try serviceRun(["net": ["listen": [["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port)))]]]],
                                 directory: directory)
        let app = try startApp(run)

        let reply = try app.request("privsep.net.listen", ["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port)))])
        #expect(reply.envelope.error == nil)
        #expect(reply.envelope.body == ["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port)))])
        try #require(reply.fds.count == 1)
        let listener = reply.fds[0].rawValue
        var accepting: Int32 = 0
        var length = socklen_t(4)
        getsockopt(listener, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length)
        #expect(accepting == 1)

        let client = try connectLoopback(port)
        defer { close(client) }
        #expect(waitReadable(listener))
        let served = accept(listener, nil, nil)
        try #require(served >= 0)
        defer { close(served) }
        #expect(Glibc.write(client, "ping", 4) == 4)
        #expect(waitReadable(served))
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(read(served, &buffer, 8) == 4)
        #expect(Array(buffer[0..<4]) == Array("ping".utf8))

        // Another port, another address, udp: no rule.
        for body: JSONObject in [
            ["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port == 65535 ? 1 : port + 1)))],
            ["address": "0.0.0.0", "port": .number(JSONNumber(Int64(port)))],
            ["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port))), "protocol": "udp"],
        ] {
            let denied = try app.request("privsep.net.listen", body)
            #expect(deniedReason(denied) == "no_rule")
            #expect(denied.fds.isEmpty)
        }
        // The same permitted port again while ours listens.
        #expect(errorCode(try app.request("privsep.net.listen", ["address": "127.0.0.1", "port": .number(JSONNumber(Int64(port)))]))
                == "privsep.address_in_use")
        let audits = try waitForAudits(run, 5)
        #expect(audits.first?["decision"] == "granted" && audits.first?["rule"] == "/helpers/app/net/listen/0")
        #expect(audits.filter { $0["decision"] == "denied" }.count == 3)
        app.exitProcess(status: 0)
        _ = try run.stop()
    }

    @Test func connectGivesAConnectedSocketToAPermittedDestination() throws {
        let directory = try makeTemporaryDirectory()
        let server = try listenLoopback()
        defer { close(server.fd) }
        let closedPort = try freePort()
        let run = try serviceRun([
            "net": ["connect": [
                ["host": "127.0.0.1", "port": .number(JSONNumber(Int64(server.port)))],
                ["host": "127.0.0.1", "port": .number(JSONNumber(Int64(closedPort)))],
            ]],
        ], directory: directory)
        let app = try startApp(run)

        let reply = try app.request("privsep.net.connect", ["host": "127.0.0.1", "port": .number(JSONNumber(Int64(server.port)))])
        #expect(reply.envelope.body == ["address": "127.0.0.1"])
        try #require(reply.fds.count == 1)
        #expect(waitReadable(server.fd))
        let accepted = accept(server.fd, nil, nil)
        try #require(accepted >= 0)
        defer { close(accepted) }
        #expect(Glibc.write(reply.fds[0].rawValue, "hi", 2) == 2)
        #expect(waitReadable(accepted))
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(read(accepted, &buffer, 4) == 2)

        #expect(errorCode(try app.request("privsep.net.connect", ["host": "127.0.0.1", "port": .number(JSONNumber(Int64(closedPort)))]))
                == "privsep.refused")
        #expect(deniedReason(try app.request("privsep.net.connect", ["host": "127.0.0.2", "port": .number(JSONNumber(Int64(server.port)))]))
                == "no_rule")
        #expect(deniedReason(try app.request("privsep.net.connect", ["host": "localhost", "port": .number(JSONNumber(Int64(server.port)))]))
                == "no_rule")
        let audits = try waitForAudits(run, 4)
        #expect(audits.map { $0["decision"]?.stringValue ?? "" } == ["granted", "failed", "denied", "denied"])
        app.exitProcess(status: 0)
        _ = try run.stop()
    }
}

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct NameServiceTests {
    @Test func dnsAndUserLookupsFollowTheirNameLists() throws {
        let directory = try makeTemporaryDirectory()
        let run = try serviceRun(["dns": ["localhost", "no-such-host.invalid"], "users": ["root"]], directory: directory)
        let app = try startApp(run)

        let resolved = try app.request("privsep.dns.resolve", ["name": "LocalHost", "family": "ipv4"])
        #expect(resolved.envelope.body["addresses"]?.arrayValue?.contains("127.0.0.1") == true)
        #expect(deniedReason(try app.request("privsep.dns.resolve", ["name": "example.com"])) == "no_rule")
        // Permitted but unresolvable: answered (not found, or the broker's bounded wait ran out).
        let missing = errorCode(try app.request("privsep.dns.resolve", ["name": "no-such-host.invalid"]))
        #expect(["privsep.not_found", "privsep.timeout", "privsep.io_error"].contains(missing ?? "success"))

        let root = try app.request("privsep.user.lookup", ["name": "root"])
        #expect(root.envelope.body["uid"] == 0)
        #expect(root.envelope.body["home"] == "/root")
        #expect(root.envelope.body["groups"]?.arrayValue?.contains(["name": "root", "gid": 0]) == true)
        #expect(try app.request("privsep.user.lookup", ["uid": 0]).envelope.body["name"] == "root")
        // Not in the list: denied whether or not the user exists.
        #expect(deniedReason(try app.request("privsep.user.lookup", ["name": "nobody"])) == "no_rule")
        #expect(deniedReason(try app.request("privsep.user.lookup", ["uid": 65534])) == "no_rule")
        #expect(deniedReason(try app.request("privsep.user.lookup", ["uid": 4_000_000_000])) == "no_rule")
        let audits = try waitForAudits(run, 8)
        #expect(audits.map { $0["decision"]?.stringValue ?? "" }
                == ["granted", "denied", "failed", "granted", "granted", "denied", "denied", "denied"])
        #expect(audits.first?["rule"] == "/helpers/app/dns/0")
        app.exitProcess(status: 0)
        _ = try run.stop()
    }
}

/// Policy mistakes are load errors that name the file and the JSON pointer; nothing runs.
@Suite struct ServicePolicyLoadTests {
    private func loadProblems(_ helper: JSONObject) throws -> String {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var object = helper
        object["command"] = ["/bin/true"]
        let config: JSONValue = ["helpers": ["app": .object(object)]]
        let path = directory + "/config.json"
        try config.jsonText.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try BrokerLoader.load(configPath: path, launcherPath: "/nonexistent")
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test func badRulesAreReportedWithFileAndPointer() throws {
        #expect(try loadProblems(["files": [["path": "/etc/../etc", "access": ["read"], "recursive": true]]])
                .contains("config.json: /helpers/app/files/0/path: contains a .. segment"))
        #expect(try loadProblems(["files": [["path": "/etc/", "access": ["read"]]]]).contains("/helpers/app/files/0/path: ends with /"))
        #expect(try loadProblems(["files": [["path": "/no/such/dir", "access": ["read"], "recursive": true]]])
                .contains("/helpers/app/files/0/path: cannot open the directory /no/such/dir"))
        #expect(try loadProblems(["files": [["path": "/", "access": ["read"]]]]).contains("a rule for / must be recursive"))
        #expect(try loadProblems(["net": ["listen": [["address": "localhost", "port": 80]]]])
                .contains("/helpers/app/net/listen/0/address: \"localhost\" is not an IPv4 or IPv6 address literal"))
        #expect(try loadProblems(["net": ["connect": [["host": "a..b", "port": 80]]]]).contains("/helpers/app/net/connect/0/host"))
        #expect(try loadProblems(["dns": ["bad name"]]).contains("/helpers/app/dns/0"))
        // A broad rule is allowed (privsep check flags it).
        #expect(try loadProblems(["files": [["path": "/", "access": ["read"], "recursive": true]]]) == "")
    }
}
