// What the broker calls: posix_spawn the launcher (never fork: the broker is multi-threaded)
// with the helper's socket at fd 3, its stdout/stderr on the broker's log pipes, and the error
// pipe at fd 4.
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep

/// Why the launcher could not even be started (a step failure arrives later, on the error pipe).
public struct SandboxSpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: Int32
    /// What was being done: "pipe2", "posix_spawn /path/to/privsep-sandbox", ...
    public let operation: String
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }
    public var description: String { "\(operation): \(SandboxFailure.errnoName(errno))" }
}

/// A launcher that was started: its pid and the read end of its error pipe.
public struct SandboxedProcess: Sendable, Equatable {
    /// The launcher's pid; it becomes (or waits for, with a pid namespace) the helper. Its exit
    /// status is the helper's (126: a sandbox step failed; see the error pipe).
    public let pid: pid_t
    /// Read end of the error pipe (CLOEXEC, owned by the caller: close it). EOF with no bytes
    /// means the program was executed; otherwise one failure line (`SandboxFailure.decode`).
    public let errorFD: Int32

    /// Blocks until the program is executed or a step fails, then closes `errorFD`.
    public func waitForExec() -> SandboxLaunchResult {
        let result = SandboxFailure.readPipe(errorFD)
        close(errorFD)
        return result
    }
}

/// Starts helpers through the launcher.
public enum SandboxSpawner {
    /// The fd the launcher's error pipe lands on in the child.
    public static let childErrorFD: Int32 = 4
    /// The fd a precompiled seccomp program is read from, when one is given.
    public static let childSeccompFD: Int32 = 5

    /// `privsep-sandbox` beside the running executable (`/proc/self/exe`), if it is there.
    public static func launcherBesideSelf() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        path = String(path[...slash]) + "privsep-sandbox"
        return access(path, X_OK) == 0 ? path : nil
    }

    /// The launcher's argv (without argv[0]) for `spec`, with the error pipe at fd 4 and the
    /// calling process as the parent the launcher must see.
    public static func launcherArguments(for spec: SandboxSpec, withSeccompProgram: Bool = false) -> [String] {
        var spec = spec
        spec.socketFD = nil
        spec.errorFD = childErrorFD
        spec.seccompProgramFD = withSeccompProgram ? childSeccompFD : nil
        spec.expectParent = getpid()
        return spec.arguments()
    }

    /// Spawns `launcher` for `spec`. `socket` becomes fd 3, `stdout`/`stderr` fds 1 and 2
    /// (/dev/null when nil), stdin is /dev/null. `environment` is the launcher's environment
    /// ("NAME=value"); the launcher passes on only PRIVSEP_* and what the spec allows.
    ///
    /// `seccompProgram`: `spec.compileSeccomp()`, computed once per spec and reused for every
    /// spawn of it, saves the launcher building the filter each time.
    ///
    /// PR_SET_PDEATHSIG fires when the *thread* that spawned exits: call this from a thread that
    /// lives as long as the helper should (the broker's event-loop thread).
    public static func spawn(launcher: String, spec: SandboxSpec, socket: Int32?, stdout: Int32?, stderr: Int32?,
                             environment: [String], seccompProgram: SeccompProgram? = nil) throws(SandboxSpawnError) -> SandboxedProcess {
        var pipeFDs: [Int32] = [-1, -1]
        guard cps_pipe_cloexec(&pipeFDs) == 0 else { throw SandboxSpawnError(errno: errno, operation: "pipe2") }
        defer { close(pipeFDs[1]) }

        // Every source is first copied above 9, so no dup2 below can clobber another source.
        var copies: [Int32] = []
        defer { for fd in copies { close(fd) } }
        func lift(_ fd: Int32?) throws(SandboxSpawnError) -> Int32? {
            guard let fd else { return nil }
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 10)
            guard copy >= 0 else { throw SandboxSpawnError(errno: errno, operation: "F_DUPFD_CLOEXEC \(fd)") }
            copies.append(copy)
            return copy
        }
        let sources: [(Int32?, Int32)]
        do {
            let programFD = try programPipe(seccompProgram)
            if let programFD { copies.append(programFD) }
            sources = [(try lift(socket), 3), (try lift(stdout), 1), (try lift(stderr), 2), (try lift(pipeFDs[1]), childErrorFD),
                       (programFD, childSeccompFD)]
        } catch {
            close(pipeFDs[0])
            throw error
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (source, target) in sources {
            if let source {
                posix_spawn_file_actions_adddup2(&actions, source, target)
            } else if target == 1 || target == 2 {
                posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default handlers and an empty mask from the first instruction (the launcher resets
        // them again in step 2, for standalone use).
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = [launcher] + launcherArguments(for: spec, withSeccompProgram: seccompProgram != nil)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, launcher, &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else {
            close(pipeFDs[0])
            throw SandboxSpawnError(errno: rc, operation: "posix_spawn \(launcher)")
        }
        return SandboxedProcess(pid: pid, errorFD: pipeFDs[0])
    }

    /// A pipe holding the whole program (at most 32 KiB: it fits in the pipe's buffer), its read
    /// end returned above fd 9; nil without a program.
    private static func programPipe(_ program: SeccompProgram?) throws(SandboxSpawnError) -> Int32? {
        guard let program else { return nil }
        guard SeccompProgram.isWellFormed(program.bytes) else { throw SandboxSpawnError(errno: EINVAL, operation: "seccomp program") }
        var fds: [Int32] = [-1, -1]
        guard cps_pipe_cloexec(&fds) == 0 else { throw SandboxSpawnError(errno: errno, operation: "pipe2") }
        defer { close(fds[1]) }
        let written = program.bytes.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
        let high = fcntl(fds[0], F_DUPFD_CLOEXEC, 10)
        let code = errno
        close(fds[0])
        guard written == program.bytes.count, high >= 0 else { throw SandboxSpawnError(errno: code, operation: "seccomp program pipe") }
        return high
    }

    /// The calling process's environment as "NAME=value" strings.
    public static func currentEnvironment() -> [String] {
        var out: [String] = []
        var entry = environ
        while let cstr = entry.pointee {
            out.append(String(cString: cstr))
            entry += 1
        }
        return out
    }
}

/// Per-helper uids, like systemd's DynamicUser: the broker takes one uid (used as gid too) from
/// a range reserved for privsep, so no two running helpers share a uid and none can signal or
/// ptrace another. Not thread-safe: the broker's event loop owns it.
public struct DynamicUIDAllocator: Sendable {
    /// systemd's DynamicUser range. A host whose systemd hands out dynamic users itself should
    /// give privsep a different range (config), or the two may collide.
    public static let defaultRange: ClosedRange<UInt32> = 61184...65519

    public let range: ClosedRange<UInt32>
    private var used: Set<UInt32> = []

    public init(range: ClosedRange<UInt32> = DynamicUIDAllocator.defaultRange) {
        self.range = range
    }

    /// The lowest free uid, now taken; nil when the range is exhausted.
    public mutating func allocate() -> UInt32? {
        guard used.count < range.count else { return nil }
        for uid in range where !used.contains(uid) {
            used.insert(uid)
            return uid
        }
        return nil
    }

    /// Gives `uid` back once the helper that had it has been reaped (not before: its processes
    /// could still be running under it).
    public mutating func release(_ uid: UInt32) {
        used.remove(uid)
    }

    /// How many uids are taken.
    public var inUse: Int { used.count }
}
