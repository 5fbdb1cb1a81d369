// The option parser, the failure line, the uid allocator: no processes needed.
#if canImport(Glibc)
import Glibc
#endif
import PrivSepSandbox
import Testing

@Suite("Sandbox options")
struct SandboxSpecTests {
    @Test func defaultProfileIsWhatNoOptionsGive() throws {
        let spec = try SandboxSpec.parse(["--", "/bin/true"])
        #expect(spec == { var s = SandboxSpec.preset(.default); s.command = ["/bin/true"]; return s }())
        #expect(spec.root == .system && spec.network == .none && spec.landlock == .bestEffort && spec.seccomp == .default)
        for layer in SandboxSpec.Layer.allCases { #expect(spec.isEnabled(layer), "\(layer)") }
    }

    @Test func roundTrip() throws {
        let args = ["--profile", "strict", "--root", "system", "--network", "host", "--ro-bind", "/a:/b", "--bind", "/c",
                    "--tmpfs", "/d", "--uid", "61184", "--gid", "61185", "--chdir", "/b", "--rlimit", "nofile=10",
                    "--rlimit", "as=unlimited", "--landlock", "require", "--landlock-read", "/e", "--landlock-write", "/f",
                    "--landlock-exec", "/g", "--landlock-bind-tcp", "80", "--landlock-connect-tcp", "443",
                    "--seccomp", "default", "--seccomp-allow", "ptrace", "--seccomp-deny", "kill",
                    "--seccomp-action", "errno:13", "--setenv", "A=1", "--keep-env", "LANG", "--error-fd", "9", "--seccomp-bpf-fd", "5",
                    "--expect-parent", "77", "--", "/bin/prog", "x", "--y"]
        let spec = try SandboxSpec.parse(args)
        #expect(spec.mounts == [.init(kind: .roBind, source: "/a", destination: "/b"), .init(kind: .bind, source: "/c", destination: "/c"),
                                .init(kind: .tmpfs, source: "", destination: "/d")])
        #expect(spec.seccompAction == .errno(13))
        #expect(spec.command == ["/bin/prog", "x", "--y"])
        #expect(try SandboxSpec.parse(spec.arguments()) == spec)
        #expect(try SandboxSpec.parse(["--uid=5", "--", "/x"]).uid == 5)
    }

    @Test(arguments: [
        (["/bin/true"], "--"),
        (["--", "true"], "--"),
        (["--bogus", "--", "/x"], "--bogus"),
        (["--uid", "-1", "--", "/x"], "--uid"),
        (["--uid", "--", "/x"], "--uid"),
        (["--root", "chroot", "--", "/x"], "--root"),
        (["--ro-bind", "relative", "--", "/x"], "--ro-bind"),
        (["--bind", "/a:/../etc", "--", "/x"], "--bind"),
        (["--tmpfs", "/", "--", "/x"], "--tmpfs"),
        (["--rlimit", "stack=1", "--", "/x"], "--rlimit"),
        (["--seccomp-allow", "no_such_call", "--", "/x"], "--seccomp-allow"),
        (["--seccomp-action", "trap", "--", "/x"], "--seccomp-action"),
        (["--error-fd", "3", "--", "/x"], "--error-fd"),
        (["--profile", "none", "--ro-bind", "/a", "--", "/x"], "--ro-bind"),
        (["--profile", "a", "--profile", "b", "--", "/x"], "--profile"),
        (["--test-disable-layer", "seccomp", "--", "/x"], "--test-disable-layer"),
        (["--setenv", "NOEQUALS", "--", "/x"], "--setenv"),
    ])
    func errorsNameTheOption(_ args: [String], _ option: String) {
        #expect(throws: SandboxOptionError.self) { try SandboxSpec.parse(args) }
        do {
            _ = try SandboxSpec.parse(args)
        } catch {
            #expect(error.option == option, "\(error)")
        }
    }

    @Test func testSwitchesNeedTheEnvironmentFlag() throws {
        let spec = try SandboxSpec.parse(["--test-disable-layer", "seccomp", "--", "/x"], allowTestSwitches: true)
        #expect(!spec.isEnabled(.seccomp))
    }

    @Test func listsAreBounded() {
        let args = Array(repeating: ["--tmpfs", "/t"], count: 300).flatMap { $0 } + ["--", "/x"]
        #expect(throws: SandboxOptionError.self) { try SandboxSpec.parse(args) }
    }
}

@Suite("Sandbox failure line")
struct SandboxFailureTests {
    @Test func roundTrip() {
        let f = SandboxFailure(step: .mounts, errno: ENOENT, path: "/a b/%x\n\u{e9}", detail: "bind /a b")
        let line = f.encoded()
        #expect(line.last == 0x0A)
        #expect(!line.dropLast().contains(0x0A) && !line.dropLast().contains(0x20) == false)
        #expect(SandboxFailure.decode(line) == f)
        #expect(SandboxFailure.decodePipeContents(line) == .failed(f))
        #expect(SandboxFailure.decodePipeContents([]) == .executed)
        #expect(f.description.contains("'mounts'") && f.description.contains("errno 2"))
    }

    @Test(arguments: ["", "hello\n", "privsep-sandbox-failure step=nope errno=1 path= detail=\n",
                      "privsep-sandbox-failure step=exec errno=x path= detail=\n",
                      "privsep-sandbox-failure step=exec errno=1 path=%G0 detail=\n",
                      "privsep-sandbox-failure step=exec errno=1 path=\n"])
    func garbageIsNotAFailure(_ text: String) {
        #expect(SandboxFailure.decode(Array(text.utf8)) == nil)
    }

    @Test func oversizedIsRefused() {
        #expect(SandboxFailure.decode(Array(repeating: 0x41, count: SandboxFailure.maxLineBytes + 1)) == nil)
    }
}

@Suite("Dynamic uids")
struct DynamicUIDTests {
    @Test func allocatesDistinctAndReuses() {
        var a = DynamicUIDAllocator(range: 100...102)
        #expect(a.allocate() == 100)
        #expect(a.allocate() == 101)
        #expect(a.allocate() == 102)
        #expect(a.allocate() == nil)
        a.release(101)
        #expect(a.allocate() == 101)
        #expect(DynamicUIDAllocator.defaultRange == 61184...65519)
    }
}

@Suite("Launcher arguments")
struct LauncherArgumentTests {
    @Test func errorPipeAndParentAreSet() throws {
        let spec = try SandboxSpec.parse(["--", "/bin/true"])
        let args = SandboxSpawner.launcherArguments(for: spec)
        let parsed = try SandboxSpec.parse(args)
        #expect(parsed.errorFD == SandboxSpawner.childErrorFD)
        #expect(parsed.expectParent == getpid())
        #expect(parsed.command == ["/bin/true"])
    }
}
