// The launcher's sequence: everything between spawn and exec, in one place and in this order.
// It runs in the single-threaded launcher process (never in the broker), so fork() is safe here.
// Any failing step reports itself on the error pipe and the program is never executed.
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep

/// Runs `privsep-sandbox`: parses its argv, applies the sandbox, executes the program.
public enum SandboxLauncher {
    /// Exit status of the launcher when a step fails (the program was not executed).
    public static let failureStatus: Int32 = 126

    /// Entry point of the launcher executable (and of `privsep sandbox`, which execs it).
    public static func main(_ argv: [String]) -> Never {
        let args = Array(argv.dropFirst())
        let errorFD = scanErrorFD(args)
        let allowTest = getenv("PRIVSEP_TEST_LAYER_SWITCH").map { String(cString: $0) == "1" } ?? false
        let spec: SandboxSpec
        do {
            spec = try SandboxSpec.parse(args, allowTestSwitches: allowTest)
        } catch {
            report(SandboxFailure(step: .options, errno: EINVAL, path: error.option, detail: error.reason), errorFD: errorFD)
        }
        if spec.profile == .none {
            writeAll(2, Array("privsep-sandbox: WARNING: --profile none: the program is NOT ISOLATED (no namespaces; no uid change, Landlock or seccomp unless asked for). Development only.\n".utf8))
        }
        var sequence = SandboxSequence(spec: spec)
        do {
            try sequence.run()
        } catch {
            report(error, errorFD: spec.errorFD)
        }
        // run() ends in execve or throws.
        report(SandboxFailure(step: .exec, errno: EINVAL, detail: "sequence returned"), errorFD: spec.errorFD)
    }

    /// The --error-fd value, found before full parsing so option errors reach the pipe too.
    private static func scanErrorFD(_ args: [String]) -> Int32? {
        for (i, arg) in args.enumerated() {
            if arg == "--" { break }
            var text: String? = nil
            if arg.hasPrefix("--error-fd=") { text = String(arg.dropFirst("--error-fd=".count)) }
            else if arg == "--error-fd", i + 1 < args.count { text = args[i + 1] }
            if let text, let fd = Int32(text), fd > 3 { return fd }
        }
        return nil
    }

    /// Writes the failure line to the error pipe (or stderr when standalone) and exits.
    static func report(_ failure: SandboxFailure, errorFD: Int32?) -> Never {
        if let errorFD, fcntl(errorFD, F_GETFD) >= 0 {
            writeAll(errorFD, failure.encoded())
        } else {
            writeAll(2, Array("privsep-sandbox: \(failure)\n".utf8))
        }
        _exit(failureStatus)
    }
}

/// Writes every byte (retrying short writes and EINTR); errors are ignored: nothing else to do.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return write(fd, base + offset, raw.count - offset)
        }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

/// The sandbox, applied step by step to the calling process.
struct SandboxSequence {
    let spec: SandboxSpec
    /// Who we were started as: read once, before anything changes it.
    let originalUID: uid_t = getuid()
    let originalGID: gid_t = getgid()
    /// Our parent right now: the broker, or the launcher half we forked from (steps 4 and 5).
    private var currentParent: pid_t
    /// The compiled seccomp program from --seccomp-bpf-fd, read in step 3 (its fd is closed there).
    private var seccompProgram: [UInt8]?
    /// The mount namespace we started in (device and inode of /proc/self/ns/mnt).
    private let hostMountNamespace: [UInt64]? = SandboxSequence.mountNamespace()

    static func mountNamespace() -> [UInt64]? {
        var st = stat()
        guard stat("/proc/self/ns/mnt", &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    init(spec: SandboxSpec) {
        self.spec = spec
        currentParent = spec.expectParent ?? getppid()
    }

    /// Steps 1-15. Returns only by throwing; success ends in execve.
    mutating func run() throws(SandboxFailure) {
        // 1. Die with the parent. Without this a helper outlives a crashed broker and keeps its
        //    socket and privileges. The check closes the race where the broker died before prctl.
        try stepDeathSignal()
        // 2. Signal mask and handlers are inherited across exec; a blocked SIGTERM or an ignored
        //    SIGPIPE from the broker would silently change how the helper behaves.
        stepResetSignals()
        // 3. fd hygiene: exactly 0-3 survive. Any other inherited fd (a directory fd to the host's
        //    /, another helper's socket) would walk around every later layer.
        try stepDescriptors()
        // 4. A new session: no controlling terminal (TIOCSTI injection into the broker's tty) and
        //    no signals aimed at the broker's process group.
        try stepSession()
        // 5. Namespaces: the mount, network, ipc, uts, cgroup and pid views of the host go away.
        //    With a pid namespace we fork: pid 1 is a minimal reaping init (the launcher itself).
        try stepNamespaces()
        // 6. The new root: private mounts first, so nothing we do propagates back to the host.
        //    Never without a mount namespace of our own: checked, not assumed.
        if spec.isEnabled(.mountns) {
            guard let now = SandboxSequence.mountNamespace(), let before = hostMountNamespace, now != before else {
                throw SandboxFailure(step: .mounts, errno: EPERM, path: "/proc/self/ns/mnt", detail: "not in a new mount namespace")
            }
            try RootBuilder(spec: spec, withProc: spec.isEnabled(.pidns)).build()
        }
        // 7. Capabilities: the bounding set and ambient set go before the uid change, so no later
        //    execve (not even of a setuid-root file) can bring any capability back.
        try stepCapabilities()
        // 8. Groups, gid, uid, in that order (setgroups and setresgid need the privilege that
        //    setresuid gives up); then prove uid/gid 0 cannot be regained, or abort.
        try stepIdentity()
        // 9. The kernel clears PDEATHSIG on a credential change: arm it again. chdir last, after
        //    pivot_root, so the cwd is inside the new root.
        try stepRearm()
        // 10. Resource limits after the uid change: RLIMIT_NPROC counts the new uid's processes.
        try stepLimits()
        // 11. No new privileges: setuid bits and file caps stop working; Landlock and seccomp
        //     require it of an unprivileged process.
        try stepNoNewPrivs()
        // 12. Landlock: path rules even inside the new root (defence in depth when a bind is
        //     wider than needed), TCP ports, abstract-socket and signal scoping.
        if spec.isEnabled(.landlock) {
            try Landlock.apply(spec: spec, root: effectiveRoot)
        }
        // 13. Environment: only what was allowed; secrets in the broker's environment stay there.
        let environment = buildEnvironment()
        // 14. seccomp last: every earlier step uses system calls the filter forbids.
        if spec.isEnabled(.seccomp) {
            if let seccompProgram {
                try SeccompFilter.load(program: seccompProgram)  // compiled by the broker from this spec
            } else {
                try SeccompFilter(spec: spec).load()
            }
        } else if spec.disabledLayers.contains(.seccomp) {
            // Test-only: a filter that allows everything. The layer is off, yet the probe's
            // safety interlock (Seccomp 2) still lets it try its escapes (acceptance 12).
            try SeccompFilter.loadAllowAll()
        }
        // 15. execve by absolute path (no PATH search in an environment we do not trust).
        try stepExec(environment: environment)
    }

    /// The root the program ends up with, after test switches.
    var effectiveRoot: SandboxSpec.Root { spec.isEnabled(.mountns) ? spec.root : .host }

    // MARK: Steps

    private func stepDeathSignal() throws(SandboxFailure) {
        guard cps_set_pdeathsig(SIGKILL) == 0 else {
            throw SandboxFailure(step: .pdeathsig, errno: errno, detail: "prctl(PR_SET_PDEATHSIG)")
        }
        guard getppid() == currentParent else {
            throw SandboxFailure(step: .pdeathsig, errno: ESRCH, detail: "parent \(currentParent) is gone")
        }
    }

    private func stepResetSignals() {
        var empty = sigset_t()
        sigemptyset(&empty)
        sigprocmask(SIG_SETMASK, &empty, nil)
        for sig: Int32 in 1..<65 where sig != SIGKILL && sig != SIGSTOP {
            signal(sig, SIG_DFL)  // EINVAL for the two signals glibc reserves; nothing to reset there
        }
    }

    private mutating func stepDescriptors() throws(SandboxFailure) {
        if let programFD = spec.seccompProgramFD {
            seccompProgram = try readProgram(programFD)
            close(programFD)
        }
        if let socketFD = spec.socketFD, socketFD != 3 {
            guard dup2(socketFD, 3) == 3 else {
                throw SandboxFailure(step: .fds, errno: errno, detail: "dup2(\(socketFD), 3)")
            }
        } else if fcntl(3, F_GETFD) >= 0 {
            // The broker passes the socket at fd 3; it must survive exec.
            guard fcntl(3, F_SETFD, 0) == 0 else { throw SandboxFailure(step: .fds, errno: errno, detail: "clear FD_CLOEXEC on 3") }
        }
        if let errorFD = spec.errorFD {
            guard fcntl(errorFD, F_SETFD, FD_CLOEXEC) == 0 else {
                throw SandboxFailure(step: .fds, errno: errno, detail: "--error-fd \(errorFD) is not open")
            }
            try closeRange(4, UInt32(errorFD) - 1)
            try closeRange(UInt32(errorFD) + 1, UInt32.max)
        } else {
            try closeRange(4, UInt32.max)
        }
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) < 0 {
            let opened = open("/dev/null", O_RDWR)
            guard opened == fd else { throw SandboxFailure(step: .fds, errno: errno, path: "/dev/null", detail: "open for fd \(fd)") }
        }
    }

    /// The compiled filter, bounded: at most BPF_MAXINSNS instructions.
    private func readProgram(_ fd: Int32) throws(SandboxFailure) -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SandboxFailure(step: .fds, errno: errno, path: "--seccomp-bpf-fd", detail: "read the seccomp program") }
            if n == 0 { return out }
            guard out.count + n <= SeccompProgram.maxBytes else {
                throw SandboxFailure(step: .fds, errno: E2BIG, path: "--seccomp-bpf-fd", detail: "seccomp program over \(SeccompProgram.maxBytes) bytes")
            }
            out += chunk[0..<n]
        }
    }

    private func closeRange(_ first: UInt32, _ last: UInt32) throws(SandboxFailure) {
        guard first <= last else { return }
        if cps_close_range(first, last, 0) == 0 { return }
        guard errno == ENOSYS else { throw SandboxFailure(step: .fds, errno: errno, detail: "close_range(\(first), \(last))") }
        // Kernels before 5.9: close one by one up to the descriptor limit.
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let top = UInt32(min(UInt64(limit.rlim_cur), UInt64(last) + 1, 1 << 20))
        var fd = first
        while fd < top { close(Int32(fd)); fd += 1 }
    }

    private mutating func stepSession() throws(SandboxFailure) {
        if setsid() >= 0 { return }
        guard errno == EPERM else { throw SandboxFailure(step: .setsid, errno: errno) }
        // Already a process-group leader (started from a shell): only a child can start a new
        // session. Fork once; the parent waits and forwards signals, the child goes on.
        let child = try forkChild(.setsid)
        if child > 0 { Supervisor.run(child: child, isInit: false) }
        guard setsid() >= 0 else { throw SandboxFailure(step: .setsid, errno: errno) }
    }

    private mutating func stepNamespaces() throws(SandboxFailure) {
        let asRoot = originalUID == 0 && geteuid() == 0
        var flags: Int32 = 0
        if spec.profile != .none { flags |= Clone.newIPC | Clone.newUTS | Clone.newCgroup }
        if spec.isEnabled(.mountns) { flags |= Clone.newNS }
        if spec.isEnabled(.netns) { flags |= Clone.newNet }
        if spec.isEnabled(.pidns) { flags |= Clone.newPID }
        guard flags != 0 else { return }
        // Unprivileged: a user namespace first, in which the rest may be created.
        if !asRoot { flags |= Clone.newUser }
        guard cps_unshare(flags) == 0 else {
            throw SandboxFailure(step: .namespaces, errno: errno, detail: "unshare(0x\(String(flags, radix: 16)))")
        }
        if !asRoot { try mapIdentity() }
        if flags & Clone.newUTS != 0 {
            _ = "privsep".withCString { sethostname($0, 7) }
        }
        if flags & Clone.newNet != 0 {
            // A new network namespace has lo down; helpers may still want to talk to themselves.
            guard cps_loopback_up() == 0 else { throw SandboxFailure(step: .namespaces, errno: errno, detail: "bring up lo") }
        }
        if flags & Clone.newPID != 0 {
            try enterPIDNamespace()
        }
    }

    /// Maps only our own uid and gid: a user namespace grants no other identity.
    private func mapIdentity() throws(SandboxFailure) {
        try writeProcFile("/proc/self/setgroups", "deny")
        try writeProcFile("/proc/self/uid_map", "\(originalUID) \(originalUID) 1\n")
        try writeProcFile("/proc/self/gid_map", "\(originalGID) \(originalGID) 1\n")
    }

    private func writeProcFile(_ path: String, _ text: String) throws(SandboxFailure) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SandboxFailure(step: .namespaces, errno: errno, path: path) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw SandboxFailure(step: .namespaces, errno: errno, path: path)
        }
    }

    /// After cps_unshare(CLONE_NEWPID) our next child is pid 1 of the new namespace. That child is
    /// the init: it forks the process that continues the sequence and reaps everything. When the
    /// init dies the kernel kills the whole namespace, so nothing a helper forks can linger.
    private mutating func enterPIDNamespace() throws(SandboxFailure) {
        var status: [Int32] = [-1, -1]
        guard cps_pipe_cloexec(&status) == 0 else { throw SandboxFailure(step: .namespaces, errno: errno, detail: "status pipe") }
        let initPID = try forkChild(.namespaces)
        if initPID > 0 {
            close(status[1])
            Supervisor.run(child: initPID, isInit: false, statusPipe: status[0])
        }
        close(status[0])
        let worker = try forkChild(.namespaces)
        if worker > 0 { Supervisor.run(child: worker, isInit: true, statusPipe: status[1]) }
        close(status[1])
    }

    /// fork(); in the child, PDEATHSIG (cleared by fork) is armed again against the parent.
    private mutating func forkChild(_ step: SandboxStep) throws(SandboxFailure) -> pid_t {
        let parent = getpid()
        let pid = cps_fork()
        guard pid >= 0 else { throw SandboxFailure(step: step, errno: errno, detail: "fork") }
        if pid > 0 { return pid }
        // In a new pid namespace the parent is outside it and shows as pid 0.
        currentParent = getppid() == 0 ? 0 : parent
        guard cps_set_pdeathsig(SIGKILL) == 0, getppid() == currentParent else {
            throw SandboxFailure(step: .pdeathsig, errno: ESRCH, detail: "parent \(parent) is gone")
        }
        return 0
    }

    private func stepCapabilities() throws(SandboxFailure) {
        guard spec.isEnabled(.caps) else { return }
        let last = cps_cap_last_cap()
        for cap in 0...last {
            guard cps_capbset_drop(cap) == 0 || errno == EINVAL else {
                throw SandboxFailure(step: .caps, errno: errno, detail: "PR_CAPBSET_DROP \(cap)")
            }
        }
        guard cps_ambient_clear_all() == 0 || errno == EINVAL else {
            throw SandboxFailure(step: .caps, errno: errno, detail: "PR_CAP_AMBIENT_CLEAR_ALL")
        }
    }

    /// The uid/gid the program runs as.
    private func targetIdentity() throws(SandboxFailure) -> (uid_t, gid_t) {
        if originalUID != 0 {
            // In our user namespace only our own ids exist.
            if let uid = spec.uid, uid != originalUID {
                throw SandboxFailure(step: .uid, errno: EPERM, path: "--uid",
                                     detail: "--uid \(uid) cannot be honoured without root (only uid \(originalUID) is mapped)")
            }
            if let gid = spec.gid, gid != originalGID {
                throw SandboxFailure(step: .uid, errno: EPERM, path: "--gid",
                                     detail: "--gid \(gid) cannot be honoured without root (only gid \(originalGID) is mapped)")
            }
            return (originalUID, originalGID)
        }
        let uid = spec.uid ?? 65534
        let gid = spec.gid ?? 65534
        guard uid != 0, gid != 0 else {
            throw SandboxFailure(step: .uid, errno: EPERM, path: uid == 0 ? "--uid" : "--gid", detail: "a helper never runs with id 0")
        }
        return (uid, gid)
    }

    private func stepIdentity() throws(SandboxFailure) {
        if spec.isEnabled(.uid) {
            let (uid, gid) = try targetIdentity()
            if originalUID == 0 {
                guard setgroups(0, nil) == 0 else { throw SandboxFailure(step: .uid, errno: errno, detail: "setgroups(0)") }
            }
            guard cps_setresgid(gid, gid, gid) == 0 else { throw SandboxFailure(step: .uid, errno: errno, detail: "setresgid(\(gid))") }
            guard cps_setresuid(uid, uid, uid) == 0 else { throw SandboxFailure(step: .uid, errno: errno, detail: "setresuid(\(uid))") }
        }
        if spec.isEnabled(.caps) {
            // Permitted, effective and inheritable sets: empty (a uid change from 0 clears them,
            // but in a user namespace we never were uid 0).
            guard cps_capset_clear() == 0 else { throw SandboxFailure(step: .caps, errno: errno, detail: "capset(0)") }
        }
        if spec.isEnabled(.uid) { try verifyIdentity() }
    }

    /// Like OpenSSH's permanently_set_uid: try to get root back; success means the drop did not
    /// hold, and the program must not run.
    private func verifyIdentity() throws(SandboxFailure) {
        var r: uid_t = 0, e: uid_t = 0, s: uid_t = 0
        var rg: gid_t = 0, eg: gid_t = 0, sg: gid_t = 0
        cps_getresuid(&r, &e, &s)
        cps_getresgid(&rg, &eg, &sg)
        let (uid, gid) = try targetIdentity()
        guard r == uid, e == uid, s == uid, rg == gid, eg == gid, sg == gid else {
            throw SandboxFailure(step: .uid, errno: EPERM, detail: "ids are not the target in all fields")
        }
        if uid != 0 && (setuid(0) == 0 || cps_setresuid(0, 0, 0) == 0) {
            throw SandboxFailure(step: .uid, errno: EPERM, detail: "uid 0 could be regained")
        }
        var zero: gid_t = 0
        if gid != 0 && (setgid(0) == 0 || setgroups(1, &zero) == 0) {
            throw SandboxFailure(step: .uid, errno: EPERM, detail: "gid 0 could be regained")
        }
    }

    private func stepRearm() throws(SandboxFailure) {
        guard cps_set_pdeathsig(SIGKILL) == 0 else { throw SandboxFailure(step: .rearm, errno: errno, detail: "prctl(PR_SET_PDEATHSIG)") }
        guard getppid() == currentParent else { throw SandboxFailure(step: .rearm, errno: ESRCH, detail: "parent is gone") }
        guard chdir(spec.chdir) == 0 else { throw SandboxFailure(step: .rearm, errno: errno, path: spec.chdir, detail: "chdir") }
    }

    private func stepLimits() throws(SandboxFailure) {
        guard spec.isEnabled(.rlimits) else { return }
        for limit in spec.rlimits {
            let value = limit.value.map { rlim_t($0) } ?? rlim_t.max  // RLIM_INFINITY
            var rl = rlimit(rlim_cur: value, rlim_max: value)
            guard setrlimit(limit.resource.kernelResource, &rl) == 0 else {
                throw SandboxFailure(step: .rlimits, errno: errno, path: "--rlimit",
                                     detail: "\(limit.resource.rawValue)=\(limit.value.map { String($0) } ?? "unlimited")")
            }
        }
    }

    private func stepNoNewPrivs() throws(SandboxFailure) {
        guard spec.isEnabled(.nnp) else { return }
        guard cps_set_no_new_privs() == 0 else { throw SandboxFailure(step: .noNewPrivs, errno: errno) }
    }

    /// PATH (fixed unless set), variables named by --keep-env, PRIVSEP_*, then --setenv.
    private func buildEnvironment() -> [String] {
        var env: [(String, String)] = [("PATH", "/usr/local/bin:/usr/bin:/bin")]
        func put(_ name: String, _ value: String) {
            if let i = env.firstIndex(where: { $0.0 == name }) { env[i].1 = value } else { env.append((name, value)) }
        }
        var entry = environ
        while let cstr = entry.pointee {
            let text = String(cString: cstr)
            if let eq = text.firstIndex(of: "=") {
                let name = String(text[..<eq])
                if name.hasPrefix("PRIVSEP_") || spec.keepEnv.contains(name) {
                    put(name, String(text[text.index(after: eq)...]))
                }
            }
            entry += 1
        }
        for v in spec.setenv { put(v.name, v.value) }
        return env.map { "\($0.0)=\($0.1)" }
    }

    private func stepExec(environment: [String]) throws(SandboxFailure) {
        let path = spec.command[0]
        let argv = spec.command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        execve(path, argv, envp)
        throw SandboxFailure(step: .exec, errno: errno, path: path, detail: "execve")
    }
}

/// clone(2) namespace flags (fixed by the kernel ABI).
enum Clone {
    static let newNS: Int32 = 0x0002_0000
    static let newCgroup: Int32 = 0x0200_0000
    static let newUTS: Int32 = 0x0400_0000
    static let newIPC: Int32 = 0x0800_0000
    static let newUser: Int32 = 0x1000_0000
    static let newPID: Int32 = 0x2000_0000
    static let newNet: Int32 = 0x4000_0000
}

extension SandboxSpec.Rlimit {
    var kernelResource: __rlimit_resource_t {
        switch self {
        case .nofile: return __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        case .nproc: return __rlimit_resource_t(__RLIMIT_NPROC.rawValue)
        case .core: return __rlimit_resource_t(RLIMIT_CORE.rawValue)
        case .fsize: return __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        case .as: return __rlimit_resource_t(RLIMIT_AS.rawValue)
        case .cpu: return __rlimit_resource_t(RLIMIT_CPU.rawValue)
        }
    }
}

// MARK: - The waiting parents

/// The pid every forwarded signal goes to; set once, before the handlers are installed.
nonisolated(unsafe) private var forwardTarget: pid_t = 0

/// The launcher's parent halves after a fork: forward signals, reap, exit with the child's status.
enum Supervisor {
    static let forwarded: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM]

    /// `isInit`: pid 1 of the new pid namespace, which reaps every orphan as well.
    /// `statusPipe`: the outer launcher reads the helper's raw wait status from it (pid 1
    /// cannot die by the helper's signal, so its own exit status would lose it); the init
    /// writes it there. Kept open across the fd sweep below.
    static func run(child: pid_t, isInit: Bool, statusPipe: Int32 = -1) -> Never {
        // Only the sandboxed program may hold the socket and the error pipe: their EOF must
        // mean the program is gone or executed.
        closeAbove2(except: statusPipe)
        // These halves stay root only to wait: keep no capability but CAP_KILL (the init
        // signals a helper of another uid), and no way to gain any back.
        _ = cps_capset_keep(isInit ? 1 << 5 : 0)
        _ = cps_set_no_new_privs()
        forwardTarget = child
        for sig in forwarded {
            signal(sig) { _ = kill(forwardTarget, $0) }
        }
        var status: Int32 = 0
        while true {
            let pid = waitpid(isInit ? -1 : child, &status, 0)
            if pid == child { break }
            if pid < 0 && errno != EINTR { _exit(SandboxLauncher.failureStatus) }
        }
        if statusPipe >= 0 {
            var raw = status
            if isInit {
                _ = withUnsafeBytes(of: &raw) { write(statusPipe, $0.baseAddress, 4) }
            } else if withUnsafeMutableBytes(of: &raw, { read(statusPipe, $0.baseAddress, 4) }) == 4 {
                status = raw  // the helper's own status, reported by the init
            }
        }
        let termsig = status & 0x7F
        if termsig == 0 { _exit((status >> 8) & 0xFF) }
        if !isInit {
            // Die the same way, so the broker sees the helper's real signal.
            signal(termsig, SIG_DFL)
            var set = sigset_t()
            sigemptyset(&set)
            sigprocmask(SIG_SETMASK, &set, nil)
            kill(getpid(), termsig)
        }
        _exit(128 + termsig)
    }

    private static func closeAbove2(except keep: Int32) {
        func sweep(_ first: UInt32, _ last: UInt32) {
            guard first <= last else { return }
            if cps_close_range(first, last, 0) != 0 {
                var fd = first
                while fd <= min(last, 1023) { close(Int32(fd)); fd += 1 }
            }
        }
        if keep >= 3 {
            sweep(3, UInt32(keep) - 1)
            sweep(UInt32(keep) + 1, UInt32.max)
        } else {
            sweep(3, UInt32.max)
        }
    }
}
