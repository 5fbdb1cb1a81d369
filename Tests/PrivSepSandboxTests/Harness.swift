// Runs the real launcher (built beside this test bundle) with the static C probe and collects
// what it printed. No sleeps: every wait is on a pipe or pidfd, with a bounded timeout.
#if canImport(Glibc)
import Glibc
#endif
import PrivSepJSON
import PrivSepSandbox
import CPrivSep

/// What one sandboxed run produced.
struct Outcome {
    /// Raw wait status of the launcher.
    let status: Int32
    let stdout: [UInt8]
    let stderr: String
    let launch: SandboxLaunchResult
    /// The probe's JSON, when it printed one.
    let json: JSONValue?

    var exitCode: Int32? { status & 0x7F == 0 ? (status >> 8) & 0xFF : nil }
    var escapes: JSONValue? { json?["escapes"] }
    /// errno of an escape attempt (0: it worked), nil when absent.
    func escape(_ name: String) -> Int64? { escapes?[name]?.int64Value }
    func field(_ name: String) -> String? { json?[name]?.stringValue }
    func strings(_ name: String) -> [String] { json?[name]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    func ints(_ name: String) -> [Int64] { json?[name]?.arrayValue?.compactMap(\.int64Value) ?? [] }
    var failure: SandboxFailure? {
        if case .failed(let f) = launch { return f }
        return nil
    }
    var summary: String { "status=\(status) launch=\(launch) stderr=\(stderr) stdout=\(String(decoding: stdout.prefix(400), as: UTF8.self))" }
}

enum Harness {
    /// Why the acceptance tests cannot run here, or nil.
    static let skipReason: String? = {
        if geteuid() != 0 { return "not root: the sandbox acceptance tests need root (they create namespaces and change uid)" }
        if launcher == nil { return "privsep-sandbox is not built beside the test bundle" }
        if case .failure(let why) = probe { return "cannot build the probe: \(why)" }
        return nil
    }()

    static let launcher: String? = SandboxSpawner.launcherBesideSelf()

    /// The repository root, from this file's path (Tests/PrivSepSandboxTests/Harness.swift).
    static let packageRoot: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// A private directory for this test run, removed when the test process exits.
    static let workDir: String = {
        var template = Array("/tmp/privsep-sandbox-tests-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { return "/tmp/privsep-sandbox-tests-unavailable" }
        chmod(dir, 0o755)
        atexit { Harness.runTool(["/bin/rm", "-rf", Harness.workDir]) }
        return String(cString: dir)
    }()

    struct BuildError: Error, CustomStringConvertible { let description: String }

    /// The probe, compiled once: static when glibc's static libc works (it does on Debian 12).
    static let probe: Result<String, BuildError> = {
        let out = workDir + "/probe"
        let source = packageRoot + "/Tests/probe/probe.c"
        let status = runTool(["/usr/bin/cc", "-static", "-O2", "-o", out, source])
        if status == 0 { return .success(out) }
        let dynamic = runTool(["/usr/bin/cc", "-O2", "-o", out, source])
        return dynamic == 0 ? .success(out) : .failure(BuildError(description: "cc exited \(status)/\(dynamic) for \(source)"))
    }()

    static var probePath: String { (try? probe.get()) ?? "/nonexistent-probe" }

    /// Runs a tool to completion (used to build the probe and set up files).
    @discardableResult
    static func runTool(_ argv: [String]) -> Int32 {
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        guard posix_spawn(&pid, argv[0], nil, nil, cArgs, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Parses launcher options (test switches allowed) for the probe bound at /probe.
    static func spec(_ options: [String], program: [String]) throws -> SandboxSpec {
        try SandboxSpec.parse(options + ["--"] + program, allowTestSwitches: true)
    }

    /// Runs the probe in a sandbox built from `options` (plus the probe's bind).
    static func runProbe(_ options: [String], probeArgs: [String] = [], socket: Int32? = nil,
                         extraEnvironment: [String] = []) throws -> Outcome {
        try run(["--ro-bind", probePath + ":/probe"] + options, program: ["/probe"] + probeArgs,
                socket: socket, extraEnvironment: extraEnvironment)
    }

    /// Spawns the launcher through the broker-facing API and collects everything.
    static func run(_ options: [String], program: [String], socket: Int32? = nil,
                    extraEnvironment: [String] = [], timeoutMs: Int32 = 30_000) throws -> Outcome {
        let spec = try spec(options, program: program)
        let out = try Pipe(), err = try Pipe()
        let testSwitch = options.contains { $0.hasPrefix("--test-") } ? ["PRIVSEP_TEST_LAYER_SWITCH=1"] : []
        let env = SandboxSpawner.currentEnvironment() + testSwitch + extraEnvironment
        let process = try SandboxSpawner.spawn(launcher: launcher ?? "/nonexistent", spec: spec, socket: socket,
                                               stdout: out.write, stderr: err.write, environment: env)
        out.closeWrite()
        err.closeWrite()
        let launch = process.waitForExec()
        let (stdout, stderr) = drain(out.read, err.read, pid: process.pid, timeoutMs: timeoutMs)
        out.closeRead()
        err.closeRead()
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
        let json: JSONValue? = stdout.isEmpty ? nil : try? JSONParser.parse(stdout)
        return Outcome(status: status, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self), launch: launch, json: json)
    }

    /// Spawns a parsed spec (optionally with a precompiled seccomp program) and collects everything.
    static func spawnOutcome(spec: SandboxSpec, seccompProgram: SeccompProgram?) throws -> Outcome {
        let out = try Pipe(), err = try Pipe()
        let process = try SandboxSpawner.spawn(launcher: launcher ?? "/nonexistent", spec: spec, socket: nil,
                                               stdout: out.write, stderr: err.write, environment: [],
                                               seccompProgram: seccompProgram)
        out.closeWrite()
        err.closeWrite()
        let launch = process.waitForExec()
        let (stdout, stderr) = drain(out.read, err.read, pid: process.pid, timeoutMs: 30_000)
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
        let json: JSONValue? = stdout.isEmpty ? nil : try? JSONParser.parse(stdout)
        return Outcome(status: status, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self), launch: launch, json: json)
    }

    /// Reads both pipes to EOF; past the deadline the launcher is killed (and with it the helper).
    static func drain(_ a: Int32, _ b: Int32, pid: pid_t, timeoutMs: Int32) -> ([UInt8], [UInt8]) {
        var outputs: [[UInt8]] = [[], []]
        var open = [true, true]
        let fds = [a, b]
        var remaining = timeoutMs
        var buffer = [UInt8](repeating: 0, count: 65536)
        while open[0] || open[1] {
            var pfds = (0..<2).map { pollfd(fd: open[$0] ? fds[$0] : -1, events: Int16(POLLIN), revents: 0) }
            var before = timespec()
            clock_gettime(CLOCK_MONOTONIC, &before)
            let n = poll(&pfds, 2, remaining)
            if n == 0 {
                kill(pid, SIGKILL)
                break
            }
            if n < 0 { if errno == EINTR { continue }; break }
            for i in 0..<2 where open[i] && pfds[i].revents != 0 {
                let got = buffer.withUnsafeMutableBytes { read(fds[i], $0.baseAddress, $0.count) }
                if got > 0 {
                    if outputs[i].count < 4 << 20 { outputs[i] += buffer[0..<got] }
                } else if got == 0 || errno != EINTR {
                    open[i] = false
                }
            }
            var after = timespec()
            clock_gettime(CLOCK_MONOTONIC, &after)
            remaining -= Int32((after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1_000_000)
            if remaining <= 0 { kill(pid, SIGKILL); remaining = 1000 }
        }
        return (outputs[0], outputs[1])
    }

    /// Pids of processes running as `uid` (found through /proc).
    static func pids(ofUID uid: UInt32) -> [pid_t] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var out: [pid_t] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let pid = pid_t(name) else { continue }
            var st = stat()
            if lstat("/proc/\(name)", &st) == 0 && st.st_uid == uid { out.append(pid) }
        }
        return out
    }

    /// Waits (bounded) until `pid` has exited, using a pidfd. True when it did.
    static func waitGone(_ pid: pid_t, timeoutMs: Int32) -> Bool {
        let fd = cps_pidfd_open(pid)
        if fd < 0 { return errno == ESRCH }
        defer { close(fd) }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let n = poll(&pfd, 1, timeoutMs)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }

    /// Writes a file (mode `mode`) under the work dir and returns its path.
    static func writeFile(_ relative: String, _ text: String, mode: mode_t = 0o644) -> String {
        let path = workDir + "/" + relative
        var parent = path
        while let slash = parent.lastIndex(of: "/"), slash != parent.startIndex {
            parent = String(parent[..<slash])
            if access(parent, F_OK) == 0 { break }
        }
        mkdirs(String(path[..<path.lastIndex(of: "/")!]))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd >= 0 {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            chmod(path, mode)
        }
        return path
    }

    static func mkdirs(_ path: String) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
    }
}

/// A pipe whose ends the test closes explicitly.
final class Pipe {
    private(set) var read: Int32
    private(set) var write: Int32
    init() throws {
        var fds: [Int32] = [-1, -1]
        guard cps_pipe_cloexec(&fds) == 0 else { throw Harness.BuildError(description: "pipe2: \(errno)") }
        read = fds[0]
        write = fds[1]
    }
    func closeWrite() { if write >= 0 { close(write); write = -1 } }
    func closeRead() { if read >= 0 { close(read); read = -1 } }
    deinit {
        closeWrite()
        closeRead()
    }
}

/// A connected AF_UNIX socket pair (CLOEXEC); `helper` goes to fd 3 of the sandboxed program.
final class SocketPair {
    private(set) var mine: Int32
    private(set) var helper: Int32
    init() throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw Harness.BuildError(description: "socketpair: \(errno)")
        }
        mine = fds[0]
        helper = fds[1]
    }
    func closeHelper() { if helper >= 0 { close(helper); helper = -1 } }
    func closeMine() { if mine >= 0 { close(mine); mine = -1 } }
    deinit {
        closeHelper()
        closeMine()
    }
}
