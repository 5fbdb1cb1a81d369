// `privsep sandbox [OPTIONS] -- PROGRAM [ARGS]`: the launcher, run by hand. It execs the
// privsep-sandbox binary installed beside this one with the same arguments, so there is one
// option parser and one sequence (Sources/PrivSepSandbox/Sequence.swift).
import ArgumentParser
import Glibc
import PrivSepSandbox

struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run PROGRAM in the helper sandbox (like bwrap or minijail0).",
        discussion: """
            Options mirror a helper's `sandbox` config object; see docs/sandbox.md. \
            Without options PROGRAM gets the default profile: every layer, the system root, no network.
            Examples:
              privsep sandbox -- /usr/bin/id
              privsep sandbox --uid 61184 --gid 61184 --ro-bind /srv/app:/app -- /app/helper
              privsep sandbox --profile strict --ro-bind ./worker:/worker -- /worker
              privsep sandbox --export-seccomp filter.bpf -- /app/helper
            Exit status: the program's; 126 when a sandbox step failed (the program was not run).
            """)

    @Option(name: .customLong("export-seccomp"), help: ArgumentHelp(
        "Write the seccomp filter these options give (classic BPF, as `bwrap --seccomp FD` reads it) to FILE, and exit.",
        valueName: "FILE"))
    var exportSeccomp: String?

    @Argument(parsing: .captureForPassthrough, help: "[OPTIONS] -- PROGRAM [ARGS]")
    var arguments: [String] = []

    func run() throws {
        if let exportSeccomp {
            try export(to: exportSeccomp)
            return
        }
        guard let launcher = SandboxSpawner.launcherBesideSelf() else {
            var stderr = FileHandleStderr()
            print("privsep: privsep-sandbox is not installed beside this binary", to: &stderr)
            throw ExitCode(SandboxLauncher.failureStatus)
        }
        let argv = [launcher] + arguments
        let cArgs = argv.map { strdup($0) } + [nil]
        execv(launcher, cArgs)
        var stderr = FileHandleStderr()
        print("privsep: exec \(launcher): \(String(cString: strerror(errno)))", to: &stderr)
        throw ExitCode(SandboxLauncher.failureStatus)
    }
}

extension SandboxCommand {
    private func export(to path: String) throws {
        var stderr = FileHandleStderr()
        do {
            let spec = try SandboxSpec.parse(arguments)
            guard let program = try spec.compileSeccomp() else {
                print("privsep: these options have no seccomp filter", to: &stderr)
                throw ExitCode(2)
            }
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                print("privsep: \(path): \(String(cString: strerror(errno)))", to: &stderr)
                throw ExitCode(1)
            }
            defer { close(fd) }
            let written = program.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == program.bytes.count else {
                print("privsep: \(path): short write", to: &stderr)
                throw ExitCode(1)
            }
        } catch let error as SandboxOptionError {
            print("privsep: \(error)", to: &stderr)
            throw ExitCode(2)
        } catch let error as SandboxFailure {
            print("privsep: \(error)", to: &stderr)
            throw ExitCode(1)
        }
    }
}

/// stderr as a TextOutputStream, without Foundation.
struct FileHandleStderr: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
