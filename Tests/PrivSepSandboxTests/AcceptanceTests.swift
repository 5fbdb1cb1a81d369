// Acceptance 1-13 of the sandbox issue: the real launcher, the real probe, real processes.
// Skipped (with the reason printed) only when not root.
#if canImport(Glibc)
import Glibc
#endif
import PrivSepJSON
import PrivSepSandbox
import Testing

/// Each test gets its own uid (from the top of the dynamic range, far from the lowest-first uids
/// the broker tests allocate) so RLIMIT_NPROC and signal checks never see another process.
private func uidOptions(_ uid: UInt32) -> [String] { ["--uid", String(uid), "--gid", String(uid)] }

private func skipIfNeeded() -> Bool {
    if let reason = Harness.skipReason {
        print("SKIP sandbox acceptance: \(reason)")
        return true
    }
    return false
}

@Suite("Sandbox acceptance", .serialized)
struct SandboxAcceptanceTests {

    // 1. Uid/Gid in all four fields, no groups, and root cannot be regained.
    @Test func identity() throws {
        if skipIfNeeded() { return }
        let o = try Harness.runProbe(uidOptions(65200))
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.field("Uid") == "65200 65200 65200 65200")
        #expect(o.field("Gid") == "65200 65200 65200 65200")
        #expect(o.field("Groups") == "")
        for name in ["setuid0", "setresuid0", "setgid0", "setgroups0"] {
            #expect(o.escape(name) == Int64(EPERM), "\(name)")
        }
    }

    // 2. No capabilities anywhere, no_new_privs, and a setuid-root binary does not help.
    @Test func capabilitiesAndSetuid() throws {
        if skipIfNeeded() { return }
        let dir = Harness.workDir + "/suid"
        Harness.mkdirs(dir)
        let copy = dir + "/probe-suid"
        #expect(Harness.runTool(["/bin/cp", Harness.probePath, copy]) == 0)
        chown(copy, 0, 0)
        chmod(copy, 0o4755)
        let o = try Harness.runProbe(uidOptions(65201) + ["--ro-bind", dir + ":/suid"], probeArgs: ["--suid", "/suid/probe-suid"])
        #expect(o.launch == .executed, "\(o.summary)")
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(o.field(cap) == "0000000000000000", "\(cap)")
        }
        #expect(o.field("NoNewPrivs") == "1")
        #expect(o.escape("suid_exec") == 0, "the setuid copy ran")
        #expect(o.escapes?["suid_ids"]?.stringValue == "65201 65201", "its euid stayed the helper's")
    }

    // 3. Exactly fds 0-3, although the spawner holds non-CLOEXEC fds (one a directory fd to /).
    //    The spawner is a shell that opens them and then execs the launcher, so the leaked fds
    //    never exist in this (multi-threaded, shared) test process.
    @Test func descriptors() throws {
        if skipIfNeeded() { return }
        let pair = try SocketPair()
        let message = Array("round-trip".utf8)
        #expect(message.withUnsafeBytes { write(pair.mine, $0.baseAddress, $0.count) } == message.count)
        let spec = try Harness.spec(uidOptions(65202) + ["--ro-bind", Harness.probePath + ":/probe"], program: ["/probe", "--echo-fd3"])
        let spawner = ["/bin/sh", "-c", "exec 7</ 8</dev/null 9>&1; exec \"$@\"", "spawner", Harness.launcher!]
        let o = try Harness.runRaw(spawner + SandboxSpawner.launcherArguments(for: spec), socket: pair.helper, launcherIsArgument: true)
        pair.closeHelper()
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.json?["interlock"]?.stringValue == "passed", "\(o.summary)")
        #expect(o.ints("fds") == [0, 1, 2, 3])
        #expect(o.escape("leaked_fd_open") == Int64(EBADF))
        var back = [UInt8](repeating: 0, count: 64)
        let n = back.withUnsafeMutableBytes { read(pair.mine, $0.baseAddress, $0.count) }
        #expect(n == message.count && Array(back[0..<max(n, 0)]) == message)
    }

    // 4. The environment is exactly the allowlist; a canary never appears.
    @Test func environment() throws {
        if skipIfNeeded() { return }
        let o = try Harness.runProbe(uidOptions(65203) + ["--keep-env", "PROBE_KEPT", "--setenv", "PROBE_SET=yes"],
                                     extraEnvironment: ["AWS_SECRET_ACCESS_KEY=canary-7f3a", "PROBE_KEPT=kept", "PRIVSEP_HELPER=probe"])
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(Set(o.strings("env")) == ["PATH=/usr/local/bin:/usr/bin:/bin", "PROBE_KEPT=kept", "PRIVSEP_HELPER=probe", "PROBE_SET=yes"])
        #expect(!o.stdout.contains(subsequence: Array("canary-7f3a".utf8)))
    }

    // 5. Filesystem: only the expected paths, writes fail, unnamed paths fail, escapes fail.
    @Test func filesystem() throws {
        if skipIfNeeded() { return }
        let o = try Harness.runProbe(uidOptions(65204))
        #expect(o.launch == .executed, "\(o.summary)")
        let expectedMounts = Set(["/", "/usr", "/dev", "/dev/null", "/dev/zero", "/dev/urandom", "/proc", "/tmp", "/probe"]
            + RootLayout.etcFiles.map { "/etc/" + $0 })
        #expect(Set(o.strings("mounts")) == expectedMounts)
        #expect(o.escape("write_usr") == Int64(EROFS))
        #expect(o.escape("write_root") == Int64(EROFS))
        #expect(o.escape("mkdir_root") == Int64(EROFS))
        #expect([Int64(EROFS), Int64(EACCES)].contains(o.escape("write_etc_passwd") ?? 0))
        #expect(o.escape("read_shadow") == Int64(ENOENT))
        #expect(o.escape("dotdot_shadow") == Int64(ENOENT))
        // Inside the root but named by no Landlock rule: / and /etc cannot be listed.
        #expect(o.escape("list_root") == Int64(EACCES))
        #expect(o.escape("list_etc") == Int64(EACCES))
        #expect(o.escape("proc1_root") == Int64(EACCES))
        #expect(o.escape("symlink_create") == 0)
        #expect(o.escape("symlink_shadow") == Int64(EACCES))
        #expect(o.escape("leaked_fd_open") == Int64(EBADF))
        #expect(o.escape("write_tmp") == 0)
        #expect(o.escape("exec_tmp") == Int64(EACCES))

        // A readable file that no Landlock rule names: EACCES by Landlock alone (seen on the
        // host's root, with the mount namespace off), readable once Landlock is off too.
        let hostRoot = ["--landlock-exec", Harness.probePath, "--test-disable-layer", "mountns"]
        let named = try Harness.run(uidOptions(65204) + hostRoot, program: [Harness.probePath, "--read", "/etc/debian_version"])
        #expect(named.escapes?["reads"]?["/etc/debian_version"]?.int64Value == Int64(EACCES), "\(named.summary)")
        let unnamed = try Harness.run(uidOptions(65204) + hostRoot + ["--test-disable-layer", "landlock"],
                                      program: [Harness.probePath, "--read", "/etc/debian_version"])
        #expect(unnamed.escapes?["reads"]?["/etc/debian_version"]?.int64Value == 0, "\(unnamed.summary)")

        // With Landlock off the root can be listed: exactly the expected entries.
        let open = try Harness.runProbe(uidOptions(65204) + ["--test-disable-layer", "landlock"])
        #expect(Set(open.json?["root_entries"]?.arrayValue?.compactMap(\.stringValue) ?? []) == RootLayout.expectedRootEntries)
    }

    // 6. No network: socket families refused, host loopback and host abstract sockets unreachable.
    @Test func network() throws {
        if skipIfNeeded() { return }
        let listeners = try HostListeners()
        let o = try Harness.runProbe(uidOptions(65205), probeArgs: ["--tcp-port", String(listeners.port), "--abstract", listeners.abstractName])
        #expect(o.launch == .executed, "\(o.summary)")
        for name in ["socket_inet", "socket_inet6", "socket_netlink", "socket_packet"] {
            #expect(o.escape(name) == Int64(EPERM), "\(name)")
        }
        #expect((o.escape("connect_tcp") ?? 0) != 0)
        #expect((o.escape("connect_abstract") ?? 0) != 0)
        #expect(listeners.acceptedNothing())
    }

    // 7. Denied system calls.
    @Test func deniedSyscalls() throws {
        if skipIfNeeded() { return }
        let o = try Harness.runProbe(uidOptions(65206))
        #expect(o.launch == .executed, "\(o.summary)")
        for name in ["ptrace_parent", "unshare_user", "unshare_net", "mount_tmpfs", "keyctl", "bpf", "perf_event_open",
                     "io_uring_setup", "tiocsti", "tiocsti_high", "clone_newns"] {
            #expect(o.escape(name) == Int64(EPERM), "\(name)")
        }
        #expect(o.escape("clone3") == Int64(ENOSYS), "clone3 answers ENOSYS so libc falls back to clone")
    }

    // seccomp strict: what a client library does to its socket passes (flags, SOL_SOCKET
    // options), the rest of fcntl and getsockopt is refused. The probe's stdout is a pipe, so
    // a call the filter lets through fails with ENOTSOCK, not EPERM.
    @Test func strictSeccompConditionalRules() throws {
        if skipIfNeeded() { return }
        let o = try Harness.runProbe(uidOptions(65207) + ["--seccomp", "strict"])
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.json?["interlock"]?.stringValue == "passed", "\(o.summary)")
        #expect(o.escape("fcntl_getfl") == 0)
        #expect(o.escape("getsockopt_socket") == Int64(ENOTSOCK))
        #expect(o.escape("fcntl_setown") == Int64(EPERM))
        #expect(o.escape("getsockopt_ip") == Int64(EPERM))
        #expect(o.escape("keyctl") == Int64(EPERM))
        // The default profile allows both outright.
        let lenient = try Harness.runProbe(uidOptions(65207))
        #expect(lenient.escape("fcntl_setown") == 0, "\(lenient.summary)")
        #expect(lenient.escape("getsockopt_ip") == Int64(ENOTSOCK), "\(lenient.summary)")
    }

    // 8. Distinct uids cannot signal or ptrace each other; NPROC holds; no core dumps.
    @Test func isolationAndLimits() throws {
        if skipIfNeeded() { return }
        var allocator = DynamicUIDAllocator(range: 65210...65219)
        let uidA = allocator.allocate() ?? 0
        let uidB = allocator.allocate() ?? 0
        #expect(uidA != uidB)
        let a = try WaitingHelper(options: uidOptions(uidA))
        defer { a.stop() }
        let targetPID = try #require(a.probePID)
        let b = try Harness.runProbe(uidOptions(uidB) + ["--rlimit", "nproc=8"],
                                     probeArgs: ["--target-pid", String(targetPID), "--fork-limit", "50"])
        #expect(b.launch == .executed, "\(b.summary)")
        #expect(b.field("Uid") == "\(uidB) \(uidB) \(uidB) \(uidB)")
        #expect((b.escape("kill_target") ?? 0) != 0)
        #expect((b.escape("ptrace_target") ?? 0) != 0)
        #expect((b.escape("fork_count") ?? 99) < 8)
        #expect(b.escape("fork_errno") == Int64(EAGAIN))
        #expect(b.escape("rlimit_core") == 0)
        #expect(b.escape("rlimit_nproc") == 8)
    }

    // 9. SIGKILL of the spawner takes the helper and its children with it.
    @Test func diesWithSpawner() throws {
        if skipIfNeeded() { return }
        let uid: UInt32 = 65220
        let pair = try SocketPair()
        let spec = try Harness.spec(uidOptions(uid), program: ["/bin/sh", "-c", "/usr/bin/sleep 1000 & /usr/bin/sleep 1000 & echo ready >&3; wait"])
        // The spawner is a shell that runs the launcher in the background and waits.
        var pid: pid_t = 0
        let argv = ["/bin/sh", "-c", "\"$@\" & wait", "spawner", Harness.launcher!] + spec.arguments()
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, pair.helper, 3)
        defer { posix_spawn_file_actions_destroy(&actions) }
        #expect(posix_spawn(&pid, "/bin/sh", &actions, nil, cArgs, environ) == 0)
        pair.closeHelper()
        // Ready once the helper's children exist.
        var line = [UInt8](repeating: 0, count: 16)
        var pfd = pollfd(fd: pair.mine, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pfd, 1, 20_000) == 1)
        let n = line.withUnsafeMutableBytes { read(pair.mine, $0.baseAddress, $0.count) }
        #expect(n > 0 && String(decoding: line[0..<max(n, 0)], as: UTF8.self) == "ready\n")
        let helperPIDs = Harness.pids(ofUID: uid)
        #expect(helperPIDs.count == 3, "sh and two sleeps: \(helperPIDs)")
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        for helper in helperPIDs {
            #expect(Harness.waitGone(helper, timeoutMs: 5_000), "pid \(helper) still running")
        }
    }

    // 10. Fail closed: nothing is executed, and the failure names step and errno.
    @Test(arguments: [
        FailCase(options: ["--ro-bind", "/nonexistent-privsep-root:/data"], program: "/probe",
                 step: .mounts, errno: ENOENT, path: "/nonexistent-privsep-root"),
        FailCase(options: [], program: "/nonexistent/program", step: .exec, errno: ENOENT, path: "/nonexistent/program"),
        FailCase(options: ["--chdir", "/nonexistent-dir"], program: "/probe", step: .rearm, errno: ENOENT, path: "/nonexistent-dir"),
        FailCase(options: ["--ro-bind", "/usr:/usr/lib/x"], program: "/probe", step: .mounts, errno: EROFS, path: "/usr/lib/x"),
        FailCase(options: ["--landlock", "require", "--test-landlock-abi", "0"], program: "/probe",
                 step: .landlock, errno: EOPNOTSUPP, path: "--landlock"),
        // Without no_new_privs (and without CAP_SYS_ADMIN) the kernel refuses the filter.
        FailCase(options: ["--test-disable-layer", "nnp", "--test-disable-layer", "landlock"], program: "/probe",
                 step: .seccomp, errno: EACCES, path: ""),
        FailCase(options: ["--uid", "0"], program: "/probe", step: .uid, errno: EPERM, path: "--uid"),
        FailCase(options: ["--rlimit", "nproc=lots"], program: "/probe", step: .options, errno: EINVAL, path: "--rlimit"),
    ])
    func failsClosed(_ c: FailCase) throws {
        if skipIfNeeded() { return }
        let o = c.step == .options
            ? try Harness.runRaw(["--ro-bind", Harness.probePath + ":/probe"] + c.options + ["--", c.program])
            : try Harness.runProbe(uidOptionsIfUnset(c.options, 65221) + c.options, probeArgs: [], program: c.program)
        #expect(o.stdout.isEmpty, "nothing was executed: \(o.summary)")
        #expect(o.exitCode == SandboxLauncher.failureStatus)
        let failure = try #require(o.failure, "\(o.summary)")
        #expect(failure.step == c.step)
        #expect(failure.errno == c.errno)
        #expect(failure.path == c.path)
        #expect(failure.description.contains("'\(c.step.rawValue)'") && failure.description.contains("errno \(c.errno)"))
    }

    // 11. A shell-script helper runs in the system root; /usr is read-only; /tmp is not executable.
    @Test func shellScriptHelper() throws {
        if skipIfNeeded() { return }
        let script = Harness.writeFile("scripts/helper.sh", """
            #!/bin/sh
            echo "uid=$(id -u)"
            if touch /usr/privsep-probe 2>/dev/null; then echo usr=writable; else echo usr=read-only; fi
            cp /usr/bin/true /tmp/true && chmod 755 /tmp/true
            /tmp/true 2>/dev/null
            echo "tmp-exec=$?"
            """, mode: 0o755)
        let dir = String(script[..<script.lastIndex(of: "/")!])
        let o = try Harness.run(uidOptions(65222) + ["--ro-bind", dir + ":/scripts"], program: ["/scripts/helper.sh"])
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.exitCode == 0, "\(o.summary)")
        let text = String(decoding: o.stdout, as: UTF8.self)
        #expect(text == "uid=65222\nusr=read-only\ntmp-exec=126\n", "\(o.summary)")
    }

    // 12. Each layer off in turn: the remaining layers still block cases 5-8.
    @Test(arguments: ["seccomp", "landlock", "mountns", "netns", "uid", "rlimits", "pidns", "caps"])
    func layerIsolation(_ layer: String) throws {
        if skipIfNeeded() { return }
        let uidBase: UInt32 = 65230 + UInt32(["seccomp", "landlock", "mountns", "netns", "uid", "rlimits", "pidns", "caps"].firstIndex(of: layer)!) * 2
        let listeners = try HostListeners()
        let target = try WaitingHelper(options: uidOptions(uidBase + 1))
        defer { target.stop() }
        let targetPID = try #require(target.probePID)
        let probeArgs = ["--tcp-port", String(listeners.port), "--abstract", listeners.abstractName,
                         "--target-pid", String(targetPID), "--fork-limit", "50"]
        let options = uidOptions(uidBase) + ["--rlimit", "nproc=8", "--test-disable-layer", layer]
        // Without a mount namespace there is no /probe: run the host file, with an execute rule.
        let o = layer == "mountns"
            ? try Harness.run(options + ["--landlock-exec", Harness.probePath], program: [Harness.probePath] + probeArgs)
            : try Harness.runProbe(options, probeArgs: probeArgs)
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.json?["interlock"]?.stringValue == "passed", "\(o.summary)")

        // The switch really turned the layer off (else this test would prove nothing).
        switch layer {
        case "seccomp": #expect(o.escape("keyctl") != Int64(EPERM) || o.escape("socket_inet") == 0)
        case "landlock": #expect(o.escape("list_etc") == 0)
        case "mountns": #expect(!o.strings("mounts").contains("/probe") && o.strings("mounts").contains("/sys"))
        case "netns": #expect((o.json?["net_devices"]?.int64Value ?? 0) > 1)
        case "uid": #expect(o.field("Uid") == "0 0 0 0")
        case "rlimits": #expect(o.escape("rlimit_nproc") != 8)
        case "pidns": #expect(o.json?["pid"]?.int64Value != 2)
        case "caps": #expect(o.field("CapBnd") != "0000000000000000")
        default: break
        }

        // Every check is blocked by at least two layers; with one off, another still holds.
        for check in LayerTable.checks where !check.blockers.isSubset(of: [layer]) {
            guard let value = o.escape(check.name) else {
                if check.optional { continue }
                Issue.record("\(check.name) missing with \(layer) off: \(o.summary)")
                continue
            }
            #expect(value != 0, "\(check.name) succeeded with only '\(layer)' off")
        }
        if o.escape("write_tmp") == 0 {
            #expect(o.escape("exec_tmp") != 0, "exec from /tmp with \(layer) off")
        }
        if layer != "rlimits" && layer != "uid" {
            #expect((o.escape("fork_count") ?? 99) < 8, "NPROC with \(layer) off")
        }
        #expect(listeners.acceptedNothing())
    }

    // A filter compiled once by the broker (compileSeccomp) and passed at spawn blocks the same.
    @Test func precompiledSeccompProgram() throws {
        if skipIfNeeded() { return }
        let spec = try Harness.spec(uidOptions(65224) + ["--ro-bind", Harness.probePath + ":/probe"], program: ["/probe"])
        let program = try #require(try spec.compileSeccomp())
        #expect(program.bytes.count % 8 == 0 && program.bytes.count > 64)
        let o = try Harness.spawnOutcome(spec: spec, seccompProgram: program)
        #expect(o.launch == .executed, "\(o.summary)")
        #expect(o.field("Seccomp") == "2")
        for name in ["keyctl", "bpf", "ptrace_parent", "unshare_user", "mount_tmpfs", "tiocsti_high", "socket_inet"] {
            #expect(o.escape(name) == Int64(EPERM), "\(name)")
        }
        #expect(o.escape("clone3") == Int64(ENOSYS))
        // A malformed program: nothing runs, step seccomp names the option.
        let bad = try Harness.spawnOutcome(spec: spec, seccompProgram: SeccompProgramFixture.truncated)
        #expect(bad.stdout.isEmpty)
        #expect(bad.failure?.step == .seccomp && bad.failure?.path == "--seccomp-bpf-fd", "\(bad.summary)")
    }

    // The launcher's exit status is the helper's, signals included (through the pid-1 init).
    @Test func exitStatusIsTheHelpers() throws {
        if skipIfNeeded() { return }
        let exited = try Harness.run(uidOptions(65223), program: ["/bin/sh", "-c", "exit 7"])
        #expect(exited.exitCode == 7, "\(exited.summary)")
        let killed = try Harness.run(uidOptions(65223), program: ["/bin/sh", "-c", "kill -KILL $$"])
        #expect(killed.status & 0x7F == SIGKILL, "\(killed.summary)")
    }

    // 13. The probe refuses escape attempts when it is not sandboxed.
    @Test func probeInterlock() throws {
        if skipIfNeeded() { return }
        // Directly, as root, with nothing applied.
        let out = try Pipe()
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let argv = [Harness.probePath, "--fork-limit", "5"]
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        #expect(posix_spawn(&pid, Harness.probePath, &actions, nil, cArgs, environ) == 0)
        out.closeWrite()
        let none = try Pipe()
        none.closeWrite()
        let (stdout, _) = Harness.drain(out.read, none.read, pid: pid, timeoutMs: 10_000)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        #expect((status >> 8) & 0xFF == 3)
        let json = try JSONParser.parse(stdout)
        #expect(json["escapes"] == .null)
        #expect(json["interlock"]?.stringValue?.hasPrefix("refused") == true)

        // Through the launcher with --profile none: still not sandboxed enough to try.
        let unsandboxed = try Harness.run(["--profile", "none"], program: [Harness.probePath])
        #expect(unsandboxed.escapes == .null, "\(unsandboxed.summary)")
        #expect(unsandboxed.exitCode == 3)
        #expect(unsandboxed.stderr.contains("WARNING"))
    }
}

// MARK: - Fixtures

enum SeccompProgramFixture {
    /// Well-formed in size, but a BPF program the kernel rejects (no return instruction).
    static var truncated: SeccompProgram {
        // ld [0]: a load with nothing after it.
        SeccompProgram(unchecked: [0x20, 0, 0, 0, 0, 0, 0, 0])
    }
}

struct FailCase: Sendable, CustomStringConvertible {
    let options: [String]
    let program: String
    let step: SandboxStep
    let errno: Int32
    let path: String
    var description: String { "\(step.rawValue): \(options.joined(separator: " ")) -- \(program)" }
}

private func uidOptionsIfUnset(_ options: [String], _ uid: UInt32) -> [String] {
    options.contains("--uid") ? [] : uidOptions(uid)
}

extension Harness {
    /// Runs the launcher on raw arguments (not parsed here first), error pipe at fd 4. With
    /// `launcherIsArgument`, `args` is a whole argv (a spawner that execs the launcher).
    static func runRaw(_ args: [String], socket: Int32? = nil, launcherIsArgument: Bool = false) throws -> Outcome {
        let errors = try Pipe(), out = try Pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, errors.write, 4)
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        if let socket { posix_spawn_file_actions_adddup2(&actions, socket, 3) }
        let argv = launcherIsArgument ? args : [launcher!, "--error-fd", "4"] + args
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ) == 0 else { throw BuildError(description: "posix_spawn") }
        errors.closeWrite()
        out.closeWrite()
        let launch = SandboxFailure.readPipe(errors.read)
        let none = try Pipe()
        none.closeWrite()
        let (stdout, _) = drain(out.read, none.read, pid: pid, timeoutMs: 10_000)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let json: JSONValue? = stdout.isEmpty ? nil : try? JSONParser.parse(stdout)
        return Outcome(status: status, stdout: stdout, stderr: "", launch: launch, json: json)
    }

    static func runProbe(_ options: [String], probeArgs: [String], program: String) throws -> Outcome {
        try run(["--ro-bind", probePath + ":/probe"] + options, program: [program] + probeArgs)
    }
}

/// What the `system` root is expected to hold on this host.
enum RootLayout {
    static let etcFiles: [String] = ["ld.so.cache", "passwd", "group", "nsswitch.conf", "hosts", "localtime", "alternatives"].filter { name in
        var st = stat()
        return lstat("/etc/" + name, &st) == 0 && (st.st_mode & S_IFMT == S_IFREG || st.st_mode & S_IFMT == S_IFDIR)
    }
    static var expectedRootEntries: Set<String> {
        var entries: Set<String> = ["usr", "etc", "dev", "proc", "tmp", "probe"]
        for name in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
            var st = stat()
            if lstat("/" + name, &st) == 0 { entries.insert(name) }
        }
        return entries
    }
}

/// Which layers block each escape (acceptance 12). A check is asserted whenever at least one of
/// its blockers is still on.
enum LayerTable {
    struct Check {
        let name: String
        let blockers: Set<String>
        var optional = false
    }
    static let checks: [Check] = [
        Check(name: "write_usr", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "write_root", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "mkdir_root", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "write_etc_passwd", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "read_shadow", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "dotdot_shadow", blockers: ["mountns", "landlock", "uid"]),
        Check(name: "proc1_root", blockers: ["landlock", "uid", "caps"]),
        Check(name: "symlink_shadow", blockers: ["landlock", "uid", "caps"], optional: true),
        Check(name: "leaked_fd_open", blockers: ["fds"]),
        Check(name: "socket_packet", blockers: ["seccomp", "caps"]),
        Check(name: "connect_tcp", blockers: ["seccomp", "netns", "landlock"]),
        Check(name: "connect_abstract", blockers: ["netns", "landlock"]),
        Check(name: "ptrace_parent", blockers: ["seccomp", "uid", "landlock", "caps"]),
        Check(name: "unshare_net", blockers: ["seccomp", "caps"]),
        Check(name: "mount_tmpfs", blockers: ["seccomp", "caps"]),
        Check(name: "tiocsti", blockers: ["seccomp", "setsid"]),
        Check(name: "kill_target", blockers: ["pidns", "uid", "landlock"]),
        Check(name: "ptrace_target", blockers: ["pidns", "uid", "landlock", "seccomp"]),
    ]
}

/// A TCP listener on the host's loopback and a host abstract unix socket, both non-blocking.
final class HostListeners {
    let tcp: Int32
    let unix: Int32
    let port: UInt16
    let abstractName: String

    init() throws {
        let tcpFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcpFD, $0, len) } }
        listen(tcpFD, 8)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(tcpFD, $0, &len) } }

        let name = "privsep-sandbox-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let unixFD = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var ua = sockaddr_un()
        ua.sun_family = sa_family_t(AF_UNIX)
        let nameBytes = Array(name.utf8)
        withUnsafeMutableBytes(of: &ua.sun_path) { raw in
            raw[0] = 0
            for (i, b) in nameBytes.enumerated() where i + 1 < raw.count { raw[i + 1] = b }
        }
        let ulen = socklen_t(MemoryLayout<sa_family_t>.size + 1 + nameBytes.count)
        let rc = withUnsafePointer(to: &ua) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(unixFD, $0, ulen) } }
        listen(unixFD, 8)
        tcp = tcpFD
        unix = unixFD
        port = UInt16(bigEndian: addr.sin_port)
        abstractName = name
        guard tcpFD >= 0, unixFD >= 0, rc == 0, port != 0 else { throw Harness.BuildError(description: "listeners: errno \(errno)") }
    }

    /// Neither listener has a connection waiting.
    func acceptedNothing() -> Bool {
        for fd in [tcp, unix] {
            let c = accept(fd, nil, nil)
            if c >= 0 { close(c); return false }
        }
        return true
    }

    deinit {
        close(tcp)
        close(unix)
    }
}

/// A sandboxed probe that printed its state and now blocks on its socket until `stop()`.
final class WaitingHelper {
    private let pair: SocketPair
    private let process: SandboxedProcess
    private let out: Pipe
    /// The probe's pid as the host sees it.
    let probePID: pid_t?

    init(options: [String]) throws {
        let pair = try SocketPair()
        let out = try Pipe()
        let spec = try Harness.spec(["--ro-bind", Harness.probePath + ":/probe"] + options, program: ["/probe", "--wait"])
        let process = try SandboxSpawner.spawn(launcher: Harness.launcher!, spec: spec, socket: pair.helper,
                                               stdout: out.write, stderr: nil, environment: [])
        pair.closeHelper()
        out.closeWrite()
        _ = process.waitForExec()
        // The probe prints one line, then waits: read up to the newline (bounded by poll).
        var got: [UInt8] = []
        var pfd = pollfd(fd: out.read, events: Int16(POLLIN), revents: 0)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !got.contains(0x0A), poll(&pfd, 1, 20_000) == 1 {
            let n = buffer.withUnsafeMutableBytes { read(out.read, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            got += buffer[0..<n]
        }
        self.pair = pair
        self.out = out
        self.process = process
        probePID = Harness.pids(ofUID: spec.uid ?? 65534).first
    }

    func stop() {
        pair.closeMine()  // EOF on fd 3: the probe exits
        var status: Int32 = 0
        while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        for start in 0...(count - needle.count) where self[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }
}
