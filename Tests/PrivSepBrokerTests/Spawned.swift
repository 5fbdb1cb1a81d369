// Child processes of the broker tests (the broker, `privsep` CLI runs, the C compiler), started
// without Foundation's Process.
//
// swift-corelibs-foundation's Process learns of every child's exit on one shared run-loop
// thread, from end of file on a socket (made without close-on-exec) that the child inherits,
// and `waitUntilExit` has no deadline. A child that exits before `run()` has marked it running
// leaves that thread waiting for a signal nobody sends, and a copy of the socket in any other
// process (a child another test spawns at that moment) delays the notice until it exits too;
// either parks the waiting test for good. Here each child is posix_spawned with fds 0-2 set up
// and everything else closed, tracked by a pidfd of its own, and every wait has a deadline; a
// wait that runs out kills the child and fails the test with the command in the message.

import CPrivSep
import Foundation
import Glibc
import PrivSepWire
import Synchronization

/// A child started with posix_spawn and tracked by a pidfd.
///
/// stdin is /dev/null; stdout and stderr are /dev/null or a pipe whose read end the caller
/// takes from `output` / `errors`. The child is killed and reaped when the object goes away.
final class Spawned: @unchecked Sendable {
    /// Where the child's stdout or stderr goes.
    enum Stream { case null, pipe }

    /// The child's pid: valid until it is reaped (by `wait`, `kill` or deinit).
    let pid: pid_t
    /// The command line, for messages.
    let command: String
    /// Read end of the child's stdout, when piped.
    let output: OwnedFD?
    /// Read end of the child's stderr, when piped.
    let errors: OwnedFD?
    private let pidfd: OwnedFD
    /// The wait status once reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Spawns `argv` (argv[0] is an absolute path) with the test process's environment.
    init(_ argv: [String], stdout: Stream = .null, stderr: Stream = .null) throws(HarnessError) {
        command = argv.joined(separator: " ")
        var parentEnds: [OwnedFD] = []
        var childEnds: [Int32: OwnedFD] = [:]
        for (stream, target) in [(stdout, Int32(1)), (stderr, Int32(2))] where stream == .pipe {
            var fds: [Int32] = [-1, -1]
            // Both ends close-on-exec at once: a child another test spawns meanwhile never
            // inherits them, so EOF on the read end means this child (and its heirs) closed it.
            guard cprivsep_pipe_cloexec(&fds) == 0 else { throw HarnessError("\(command): pipe2: \(errnoText())") }
            parentEnds.append(OwnedFD(adopting: fds[0]))
            childEnds[target] = OwnedFD(adopting: fds[1])
        }
        pid = try Self.spawn(argv, stdout: childEnds[1]?.rawValue, stderr: childEnds[2]?.rawValue, command: command)
        for end in childEnds.values { end.close() }
        let fd = cprivsep_pidfd_open(pid, 0)
        guard fd >= 0 else {
            let cause = errnoText()
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw HarnessError("\(command): pidfd_open: \(cause)")
        }
        pidfd = OwnedFD(adopting: fd)
        output = stdout == .pipe ? parentEnds.removeFirst() : nil
        errors = stderr == .pipe ? parentEnds.removeFirst() : nil
    }

    deinit { kill() }

    /// Sends `signal`. Through the pidfd, so a reaped child's recycled pid is never hit.
    func signal(_ signal: Int32) {
        _ = cprivsep_pidfd_send_signal(pidfd.rawValue, signal)
    }

    /// Waits up to `timeout` seconds for the child to exit; returns its exit code, or 128 +
    /// the signal that ended it. When the time runs out the child is killed and this throws.
    func wait(timeout: Double) throws(HarnessError) -> Int32 {
        let deadline = Deadline(seconds: timeout)
        guard readable(pidfd.rawValue, until: deadline) else {
            kill()
            throw HarnessError("\(command): did not exit within \(timeout) s (killed)")
        }
        return try reap()
    }

    /// Kills the child (SIGKILL) and reaps it, waiting at most 10 s for the kernel to tear it down.
    func kill() {
        guard reaped.withLock({ $0 }) == nil else { return }
        signal(SIGKILL)
        if readable(pidfd.rawValue, until: Deadline(seconds: 10)) { _ = try? reap() }
    }

    /// Runs `argv` to completion within `timeout` seconds; returns its status and what it wrote
    /// to stdout and stderr, at most `limit` bytes each (more fails the run).
    static func run(_ argv: [String], timeout: Double, limit: Int = 1 << 20) throws(HarnessError)
        -> (status: Int32, output: String, errors: String)
    {
        let child = try Spawned(argv, stdout: .pipe, stderr: .pipe)
        let deadline = Deadline(seconds: timeout)
        var collected: [[UInt8]] = [[], []]
        var open = [child.output, child.errors].map { $0?.rawValue ?? -1 }
        // Both pipes are drained together: a child blocked writing one never waits on the other.
        while open.contains(where: { $0 >= 0 }) {
            var entries = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&entries, nfds_t(entries.count), deadline.pollMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else {
                child.kill()
                throw HarnessError("\(child.command): its output did not end within \(timeout) s (killed)")
            }
            for index in entries.indices where entries[index].revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 16384)
                let count = chunk.withUnsafeMutableBytes { read(open[index], $0.baseAddress, $0.count) }
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if count <= 0 {
                    open[index] = -1
                    continue
                }
                guard collected[index].count + count <= limit else {
                    child.kill()
                    throw HarnessError("\(child.command): wrote more than \(limit) bytes to \(index == 0 ? "stdout" : "stderr") (killed)")
                }
                collected[index] += chunk[0..<count]
            }
        }
        let status = try child.wait(timeout: max(deadline.remainingSeconds, 0))
        return (status, String(decoding: collected[0], as: UTF8.self), String(decoding: collected[1], as: UTF8.self))
    }

    /// Collects the exit status of a child whose pidfd is readable (so waitpid does not block).
    private func reap() throws(HarnessError) -> Int32 {
        let result: Result<Int32, HarnessError> = reaped.withLock { reaped in
            if let reaped { return .success(reaped) }
            var status: Int32 = 0
            var got: pid_t
            repeat { got = waitpid(pid, &status, WNOHANG) } while got < 0 && errno == EINTR
            guard got == pid else {
                return .failure(HarnessError("\(command): waitpid returned \(got): \(errnoText())"))
            }
            reaped = status
            return .success(status)
        }
        let status = try result.get()
        // Exited: the code is bits 8-15. Killed: the signal is bits 0-6 (the shell's 128 + n).
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private static func spawn(_ argv: [String], stdout: Int32?, stderr: Int32?, command: String) throws(HarnessError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (source, target) in [(stdout, Int32(1)), (stderr, Int32(2))] {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        // Whatever else the test process holds without close-on-exec (other tests' sockets and
        // pipes) stays out of the child.
        if let addCloseFrom = Self.addCloseFrom {
            guard addCloseFrom(&actions, 3) == 0 else { throw HarnessError("\(command): addclosefrom: \(errnoText())") }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The test runner's blocked and ignored signals are not the child's.
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, environ)
        guard status == 0 else { throw HarnessError("\(command): posix_spawn: \(String(cString: strerror(status)))") }
        return pid
    }

    /// glibc's posix_spawn_file_actions_addclosefrom_np (glibc 2.34+; Linux has no
    /// POSIX_SPAWN_CLOEXEC_DEFAULT). Swift's Glibc module hides it (it is _GNU_SOURCE only).
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
    }()
}

/// A point in time on the monotonic clock, for bounded waits.
struct Deadline {
    let instant: ContinuousClock.Instant

    init(seconds: Double) { instant = .now + .milliseconds(Int64(seconds * 1000)) }

    var remainingSeconds: Double {
        let (seconds, attoseconds) = ContinuousClock.now.duration(to: instant).components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The remaining time as a poll(2) timeout: rounded up, never negative.
    var pollMilliseconds: Int32 { Int32(max(0, min(remainingSeconds * 1000 + 1, Double(Int32.max)))) }
}

/// Polls `fd` for readability until `deadline`; false when the time ran out.
private func readable(_ fd: Int32, until deadline: Deadline) -> Bool {
    while true {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, deadline.pollMilliseconds)
        if ready > 0 { return true }
        if ready < 0 && errno == EINTR { continue }
        if ready < 0 || deadline.remainingSeconds <= 0 { return false }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Collects a pipe's lines on a thread of its own until end of file; waiters block on a
/// condition with a deadline, never sleep. At most `maxBytes` are kept (the pipe is still
/// drained past that, so the writer never blocks) and a longer line is cut at `maxLine`.
final class LineCollector: @unchecked Sendable {
    static let maxBytes = 32 << 20
    static let maxLine = 1 << 20
    private let condition = NSCondition()
    private var collected: [String] = []
    private var keptBytes = 0
    private var ended = false

    /// Takes over `pipe` (the read end) and starts reading it.
    init(_ pipe: OwnedFD) {
        Thread { [self] in
            defer { pipe.close() }
            var partial: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(pipe.rawValue, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                partial += chunk[0..<count]
                while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                    append(partial[..<newline])
                    partial.removeSubrange(...newline)
                }
                if partial.count >= Self.maxLine {
                    append(partial[...])
                    partial.removeAll()
                }
            }
            if !partial.isEmpty { append(partial[...]) }
            condition.lock()
            ended = true
            condition.broadcast()
            condition.unlock()
        }.start()
    }

    private func append(_ line: ArraySlice<UInt8>) {
        condition.lock()
        defer { condition.unlock() }
        guard keptBytes + line.count <= Self.maxBytes else { return }
        keptBytes += line.count
        collected.append(String(decoding: line, as: UTF8.self))
        condition.broadcast()
    }

    var lines: [String] {
        condition.lock()
        defer { condition.unlock() }
        return collected
    }

    var text: String { lines.joined(separator: "\n") }

    var hasEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return ended
    }

    /// The first line, from the start, that satisfies `predicate`; nil if none came in `timeout`.
    func waitFor(timeout: Double, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        var checked = 0
        while true {
            while checked < collected.count {
                if predicate(collected[checked]) { return collected[checked] }
                checked += 1
            }
            if ended || !condition.wait(until: deadline) { return nil }
        }
    }

    /// True once the pipe has reached end of file, within `timeout`.
    func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended {
            if !condition.wait(until: deadline) { return ended }
        }
        return true
    }
}
