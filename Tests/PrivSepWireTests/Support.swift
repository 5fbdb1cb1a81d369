// Helpers shared by the wire tests: files, hex, descriptors, process spawning. No Foundation.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage

/// A test failure outside #expect (setup that cannot continue).
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The whole content of a file, or nil.
func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { return result }
        result += chunk[0 ..< count]
    }
}

/// Names in a directory, sorted.
func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted()
}

/// Decodes lower- or upper-case hex; nil on a bad digit or odd length.
func fromHex(_ text: String) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30 ... 0x39: return digit - 0x30
        case 0x61 ... 0x66: return digit - 0x61 + 10
        case 0x41 ... 0x46: return digit - 0x41 + 10
        default: return nil
        }
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    var index = 0
    while index < digits.count {
        guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
        index += 2
    }
    return bytes
}

/// A pipe whose ends are owned.
func makePipe() throws -> (read: OwnedFD, write: OwnedFD) {
    var ends: [Int32] = [-1, -1]
    guard cps_wire_pipe_cloexec(&ends) == 0 else { throw TestFailure("pipe2: errno \(errno)") }
    return (OwnedFD(adopting: ends[0]), OwnedFD(adopting: ends[1]))
}

/// A counter for unique temporary names.
final class Counter: @unchecked Sendable {
    private var count = 0
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    func add(_ amount: Int) { pthread_mutex_lock(&lock); count += amount; pthread_mutex_unlock(&lock) }
    var value: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return count }
}
let tempCounter = Counter()

/// A descriptor of an unlinked temporary file holding `content`, offset 0.
func makeTempFile(_ content: String) throws -> OwnedFD {
    // O_CLOEXEC at open: tests spawn processes in parallel and must not leak into them.
    tempCounter.add(1)
    let path = "/tmp/privsep-wire-test.\(getpid()).\(tempCounter.value).\(UInt64.random(in: 0 ... .max))"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
    unlink(path)
    let owned = OwnedFD(adopting: fd)
    let bytes = Array(content.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count, lseek(fd, 0, SEEK_SET) == 0 else {
        throw TestFailure("writing the temp file failed")
    }
    return owned
}

/// Reads until end of file (blocking), bounded.
func readToEnd(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while result.count < limit {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        result += chunk[0 ..< count]
    }
    return result
}

/// Whether the pipe behind `readEnd` reports end of file right now, i.e. every write end in
/// every process is closed. Non-blocking; data in the pipe counts as "not at EOF".
func pipeAtEOF(_ readEnd: OwnedFD) -> Bool {
    var entry = pollfd(fd: readEnd.rawValue, events: Int16(POLLIN), revents: 0)
    guard poll(&entry, 1, 0) == 1, entry.revents & Int16(POLLHUP) != 0 else { return false }
    var byte: UInt8 = 0
    return read(readEnd.rawValue, &byte, 1) == 0
}

/// posix_spawnp `argv` with `fds` mapped onto child descriptors (child number -> parent fd)
/// and `environment`; returns the pid.
func spawn(_ argv: [String], environment: [String] = [], fdMap: [(child: Int32, parent: Int32)] = []) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var temporaries: [Int32] = []
    defer { for fd in temporaries { close(fd) } }
    for (child, parent) in fdMap {
        var source = parent
        if source == child {
            // dup2 onto itself would keep close-on-exec; go through a copy.
            source = fcntl(parent, F_DUPFD_CLOEXEC, 64)
            guard source >= 0 else { throw TestFailure("fcntl dup failed") }
            temporaries.append(source)
        }
        posix_spawn_file_actions_adddup2(&actions, source, child)
    }
    var env = environment
    if let path = getenv("PATH") { env.append("PATH=" + String(cString: path)) }
    let cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    let cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
    defer { for pointer in cArgv + cEnv { free(pointer) } }
    var pid: pid_t = 0
    let status = posix_spawnp(&pid, argv[0], &actions, nil, cArgv, cEnv)
    guard status == 0 else { throw TestFailure("posix_spawnp \(argv[0]): \(String(cString: strerror(status)))") }
    return pid
}

/// Waits for `pid`; returns its exit status (128 + signal when killed).
func waitExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
}

/// A fresh temporary directory.
func makeTempDirectory() throws -> String {
    var template = Array("/tmp/privsep-wire-test.XXXXXX".utf8CString)
    guard let result = mkdtemp(&template) else { throw TestFailure("mkdtemp: errno \(errno)") }
    return String(cString: result)
}

/// The repository's Tests directory, from this file's location.
func testsDirectory(_ file: String = #filePath) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(2)  // PrivSepWireTests/Support.swift
    return parts.joined(separator: "/")
}
