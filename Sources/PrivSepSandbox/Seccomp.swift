// Step 14 of the sequence: the seccomp filter, built with libseccomp and loaded last.
// Allowlists, not denylists: a system call nobody thought about is denied.
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep
import CSeccomp

/// A seccomp filter compiled once (by the broker, with `SandboxSpec.compileSeccomp()`) and handed
/// to every launcher for that spec (`--seccomp-bpf-fd`), which then skips building it: about a
/// millisecond of libseccomp work per spawn.
public struct SeccompProgram: Sendable, Equatable {
    /// Classic-BPF instructions, 8 bytes each.
    public let bytes: [UInt8]
    /// BPF_MAXINSNS instructions.
    public static let maxBytes = 4096 * 8

    /// Wraps bytes as they are (tests build deliberately broken programs with it).
    public init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    static func isWellFormed(_ bytes: [UInt8]) -> Bool {
        !bytes.isEmpty && bytes.count % 8 == 0 && bytes.count <= maxBytes
    }
}

extension SandboxSpec {
    /// The seccomp program the launcher would build for this spec; nil when the spec has no
    /// seccomp layer. Pass it to `SandboxSpawner.spawn(..., seccompProgram:)`.
    public func compileSeccomp() throws(SandboxFailure) -> SeccompProgram? {
        guard isEnabled(.seccomp) else { return nil }
        return SeccompProgram(unchecked: try SeccompFilter(spec: self).compile())
    }
}

/// A seccomp filter for one spec.
struct SeccompFilter {
    let spec: SandboxSpec

    // libseccomp's action values (its SCMP_ACT_* macros are not importable).
    static let actAllow: UInt32 = 0x7FFF_0000
    static let actKillProcess: UInt32 = 0x8000_0000
    static func actErrno(_ e: Int32) -> UInt32 { 0x0005_0000 | (UInt32(e) & 0xFFFF) }

    /// The syscall number on this architecture, or nil when the name is unknown here.
    static func syscallNumber(_ name: String) -> Int32? {
        guard name.utf8.count < 64 else { return nil }
        let nr = seccomp_syscall_resolve_name(name)
        return nr >= 0 ? nr : nil
    }

    /// Namespace flags clone() must not carry (a helper creating namespaces reaches kernel
    /// code that is otherwise root-only).
    static let namespaceCloneFlags: UInt64 = 0x7E02_0000 | 0x0000_0080  // NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, NEWTIME

    /// Syscalls the `default` profile allows unconditionally (when this architecture has them).
    /// In the spirit of a system service: files, memory, processes, signals, time, sockets.
    /// Left out on purpose: ptrace and process_vm_*, mount and the new mount API, pivot_root,
    /// chroot, unshare, setns, bpf, keyctl/add_key/request_key, perf_event_open, io_uring_*,
    /// kexec_*, module loading, reboot, swap, clock setting, userfaultfd, quotactl, acct.
    static let defaultAllow: [String] = [
        // descriptors and files
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
        "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock",
        "open", "openat", "openat2", "creat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
        "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
        "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
        "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
        "truncate", "ftruncate", "fallocate", "fsync", "fdatasync", "syncfs", "sync_file_range", "fadvise64", "readahead",
        "utime", "utimes", "utimensat", "futimesat", "umask", "sendfile", "copy_file_range", "splice", "tee",
        "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
        "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "memfd_create",
        "pipe", "pipe2", "eventfd", "eventfd2", "poll", "ppoll", "select", "pselect6",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
        // memory
        "brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mincore", "mlock", "mlock2", "munlock",
        "mlockall", "munlockall", "membarrier",
        // processes and identity (changing ids needs privileges the program no longer has)
        "exit", "exit_group", "fork", "vfork", "execve", "execveat", "wait4", "waitid",
        "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
        "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
        "getpgid", "getpgrp", "getsid", "setsid", "setpgid", "capget", "capset", "prctl", "arch_prctl",
        "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex", "futex_waitv", "restart_syscall",
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler",
        "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "sched_getattr",
        "getpriority", "setpriority", "getrlimit", "setrlimit", "prlimit64", "getrusage", "getcpu",
        "uname", "sysinfo", "getrandom", "times",
        // signals
        "kill", "tgkill", "tkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
        "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause", "signalfd", "signalfd4",
        "pidfd_open", "pidfd_send_signal",
        // time
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "alarm",
        "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
        "timerfd_create", "timerfd_settime", "timerfd_gettime",
        // sockets (socket and socketpair themselves are conditional, below)
        "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername", "sendto", "recvfrom",
        "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "setsockopt", "getsockopt", "shutdown",
        // System V IPC: private to the helper's ipc namespace
        "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl",
        // further self-restriction is always allowed
        "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    ]

    /// The compute-only `strict` profile: talk on the inherited descriptors, allocate, exit.
    /// Also what a (static or dynamic) program needs to get from execve to main, and what the
    /// client libraries call on their socket: `send` is sendto (no socket can be created here,
    /// so only inherited ones are reachable), libprivsep reads its CPU affinity to pick its wait,
    /// waits on one CPU in an epoll set with a timerfd (descriptors that reach nothing), and
    /// checks and sets descriptor flags and socket options (`addStrictConditionalRules`).
    static let strictAllow: [String] = [
        "read", "write", "readv", "writev", "close", "sendmsg", "recvmsg", "sendto", "lseek", "fstat", "newfstatat",
        "openat", "pread64", "access", "brk", "mmap", "munmap", "mprotect", "mremap", "madvise",
        "exit", "exit_group", "execve", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
        "getrandom", "futex", "rt_sigreturn", "rt_sigaction", "rt_sigprocmask", "clock_gettime", "clock_nanosleep",
        "nanosleep", "getpid", "gettid", "poll", "ppoll", "sched_getaffinity",
        "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "timerfd_create", "timerfd_settime",
    ]

    /// The names this spec allows (before the conditional rules).
    func allowedNames() -> [String] {
        var names = spec.seccomp == .strict ? SeccompFilter.strictAllow : SeccompFilter.defaultAllow
        names += spec.seccompAllow
        let deny = Set(spec.seccompDeny)
        return names.filter { !deny.contains($0) }
    }

    /// Builds the libseccomp filter for the spec; the caller releases it.
    private func build() throws(SandboxFailure) -> scmp_filter_ctx {
        let defaultAction: UInt32
        switch spec.seccompAction {
        case .errno(let e): defaultAction = SeccompFilter.actErrno(e)
        case .kill: defaultAction = SeccompFilter.actKillProcess
        }
        guard let ctx = seccomp_init(defaultAction) else {
            throw SandboxFailure(step: .seccomp, errno: ENOMEM, detail: "seccomp_init")
        }
        do {
            // Other architectures (i386, x32 on x86_64) would bypass the numbers below: kill.
            try check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SeccompFilter.actKillProcess), "bad-arch action")
            // Step 11 set no_new_privs; letting libseccomp set it again would hide a skipped step 11.
            try check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "NNP attribute")
            // The kernel's errno on load failure, not libseccomp's generic ECANCELED.
            try check(seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1), "raw return codes")

            let deny = Set(spec.seccompDeny)
            let allowed = allowedNames()
            var seen = Set<Int32>()
            for name in allowed {
                guard let nr = SeccompFilter.syscallNumber(name), seen.insert(nr).inserted else { continue }
                try add(ctx, SeccompFilter.actAllow, nr, [], name)
            }
            if spec.seccomp == .default {
                try addConditionalRules(ctx, deny: deny)
            } else if spec.seccomp == .strict {
                try addStrictConditionalRules(ctx, skipping: deny.union(allowed))
            }
        } catch {
            seccomp_release(ctx)
            throw error
        }
        return ctx
    }

    func load() throws(SandboxFailure) {
        let ctx = try build()
        defer { seccomp_release(ctx) }
        let rc = seccomp_load(ctx)
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: -rc, detail: "seccomp_load") }
    }

    /// The filter as a classic-BPF program (what seccomp_load would hand the kernel).
    func compile() throws(SandboxFailure) -> [UInt8] {
        let ctx = try build()
        defer { seccomp_release(ctx) }
        var fds: [Int32] = [-1, -1]
        guard cps_pipe_cloexec(&fds) == 0 else { throw SandboxFailure(step: .seccomp, errno: errno, detail: "pipe") }
        defer { close(fds[0]) }
        // At most BPF_MAXINSNS (4096) instructions of 8 bytes: always fits in a pipe's buffer.
        let rc = seccomp_export_bpf(ctx, fds[1])
        close(fds[1])
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: -rc, detail: "seccomp_export_bpf") }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count <= SeccompProgram.maxBytes {
            let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        guard SeccompProgram.isWellFormed(out) else {
            throw SandboxFailure(step: .seccomp, errno: E2BIG, detail: "compiled filter of \(out.count) bytes")
        }
        return out
    }

    /// Loads a program compiled by `compile()` (in the broker, once per spec).
    static func load(program: [UInt8]) throws(SandboxFailure) {
        guard SeccompProgram.isWellFormed(program) else {
            throw SandboxFailure(step: .seccomp, errno: EINVAL, path: "--seccomp-bpf-fd", detail: "program of \(program.count) bytes")
        }
        let rc = program.withUnsafeBytes { cps_seccomp_load_program($0.baseAddress, UInt16(program.count / 8)) }
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: errno, path: "--seccomp-bpf-fd", detail: "seccomp(SET_MODE_FILTER)") }
    }

    /// A filter allowing every system call (the test-only switch that turns the layer off).
    static func loadAllowAll() throws(SandboxFailure) {
        guard let ctx = seccomp_init(actAllow) else { throw SandboxFailure(step: .seccomp, errno: ENOMEM, detail: "seccomp_init") }
        defer { seccomp_release(ctx) }
        let attr = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) | seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1)
        guard attr == 0 else { throw SandboxFailure(step: .seccomp, errno: -attr, detail: "NNP attribute") }
        let rc = seccomp_load(ctx)
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: -rc, detail: "seccomp_load") }
    }

    /// clone without namespace flags; clone3 answers ENOSYS (its flags sit in memory a filter
    /// cannot read, and libc falls back to clone); ioctl except TIOCSTI; sockets by family.
    private func addConditionalRules(_ ctx: scmp_filter_ctx, deny: Set<String>) throws(SandboxFailure) {
        if !deny.contains("clone"), let nr = SeccompFilter.syscallNumber("clone") {
            try add(ctx, SeccompFilter.actAllow, nr, [cmp(0, SCMP_CMP_MASKED_EQ, SeccompFilter.namespaceCloneFlags, 0)], "clone")
        }
        if let nr = SeccompFilter.syscallNumber("clone3"), !spec.seccompAllow.contains("clone3") {
            try add(ctx, SeccompFilter.actErrno(ENOSYS), nr, [], "clone3")
        }
        if !deny.contains("ioctl"), let nr = SeccompFilter.syscallNumber("ioctl") {
            // The kernel reads cmd as 32 bits, so a filter comparing 64 bits must not let
            // TIOCSTI | (1 << 32) through: allow every 32-bit value except TIOCSTI, as prefix blocks.
            for (mask, value) in SeccompFilter.blocksExcluding(UInt64(TIOCSTI)) {
                try add(ctx, SeccompFilter.actAllow, nr, [cmp(1, SCMP_CMP_MASKED_EQ, mask, value)], "ioctl")
            }
        }
        var families: [UInt64] = [UInt64(AF_UNIX)]
        if spec.network == .host {
            families += [UInt64(AF_INET), UInt64(AF_INET6)]
        }
        for name in ["socket", "socketpair"] where !deny.contains(name) {
            guard let nr = SeccompFilter.syscallNumber(name) else { continue }
            for family in families where name == "socket" || family == UInt64(AF_UNIX) {
                try add(ctx, SeccompFilter.actAllow, nr, [cmp(0, SCMP_CMP_MASKED_EQ, 0xFFFF_FFFF, family)], name)
            }
        }
    }

    /// What a client library does to its inherited socket, and no more: fcntl only to read and
    /// set descriptor and status flags (not F_SETOWN, leases, locks or F_DUPFD), socket options
    /// only at SOL_SOCKET (its type, SO_RCVTIMEO). Both arguments are ints to the kernel, so the
    /// low 32 bits are compared. `skip`: names denied, or already allowed outright.
    private func addStrictConditionalRules(_ ctx: scmp_filter_ctx, skipping skip: Set<String>) throws(SandboxFailure) {
        if !skip.contains("fcntl"), let nr = SeccompFilter.syscallNumber("fcntl") {
            for command in [F_GETFD, F_SETFD, F_GETFL, F_SETFL] {
                try add(ctx, SeccompFilter.actAllow, nr, [cmp(1, SCMP_CMP_MASKED_EQ, 0xFFFF_FFFF, UInt64(command))], "fcntl")
            }
        }
        for name in ["getsockopt", "setsockopt"] where !skip.contains(name) {
            guard let nr = SeccompFilter.syscallNumber(name) else { continue }
            try add(ctx, SeccompFilter.actAllow, nr, [cmp(1, SCMP_CMP_MASKED_EQ, 0xFFFF_FFFF, UInt64(SOL_SOCKET))], name)
        }
    }

    /// (mask, value) pairs that together match every 64-bit value whose high 32 bits are zero
    /// and whose low 32 bits differ from `excluded`.
    static func blocksExcluding(_ excluded: UInt64) -> [(UInt64, UInt64)] {
        var blocks: [(UInt64, UInt64)] = []
        // For each bit b (31...0): values that agree with `excluded` above b and differ at b.
        for bit in (0..<32).reversed() {
            let above: UInt64 = bit == 31 ? 0 : (0xFFFF_FFFF << UInt64(bit + 1)) & 0xFFFF_FFFF
            let mask = 0xFFFF_FFFF_0000_0000 | above | (1 << UInt64(bit))
            let value = (excluded & above) | ((~excluded) & (1 << UInt64(bit)))
            blocks.append((mask, value))
        }
        return blocks
    }

    private func cmp(_ arg: UInt32, _ op: scmp_compare, _ a: UInt64, _ b: UInt64) -> scmp_arg_cmp {
        scmp_arg_cmp(arg: arg, op: op, datum_a: a, datum_b: b)
    }

    private func add(_ ctx: scmp_filter_ctx, _ action: UInt32, _ nr: Int32, _ args: [scmp_arg_cmp], _ name: String) throws(SandboxFailure) {
        let rc = args.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, action, nr, UInt32($0.count), $0.baseAddress) }
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: -rc, path: name, detail: "seccomp_rule_add") }
    }

    private func check(_ rc: Int32, _ what: String) throws(SandboxFailure) {
        guard rc == 0 else { throw SandboxFailure(step: .seccomp, errno: -rc, detail: what) }
    }
}
