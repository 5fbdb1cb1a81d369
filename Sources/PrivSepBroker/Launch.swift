// Starting one helper: the config's `sandbox` object becomes launcher options one to one, and
// PrivSepSandbox's spawner posix_spawns the launcher with the socket at fd 3 and the log pipes
// at 1 and 2. The broker checks every helper's spec at start, so a bad option is a config error.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepSandbox
import PrivSepWire

/// The process `launch` started.
struct LaunchedHelper {
    let pid: Int32
    let pidfd: OwnedFD
    /// Read end of the launcher's close-on-exec error pipe.
    let errorPipe: OwnedFD
}

enum HelperLauncher {
    /// Options the broker sets itself; a config may not.
    static let reservedOptions: Set<String> = [
        "--uid", "--gid", "--socket-fd", "--error-fd", "--expect-parent", "--seccomp-bpf-fd", "--test-disable-layer",
        "--test-landlock-abi",
    ]

    /// The launcher options for a helper's `sandbox` object. Keys map to options by replacing
    /// `_` with `-`: `"ro_bind": ["/srv:/www"]` is `--ro-bind /srv:/www`; arrays repeat the
    /// option; `rlimits` and `setenv` objects become `NAME=VALUE` values.
    static func options(for sandbox: JSONObject, file: String, pointer: String) throws(ConfigError) -> [String] {
        var options: [String] = []
        for (key, value) in sandbox.members {
            let at = pointer + "/" + escapePointer(key)
            switch key {
            case "rlimits":
                guard case .object(let limits) = value else { throw ConfigError(file: file, pointer: at, message: "must be an object") }
                for (name, limit) in limits.members {
                    options += ["--rlimit", "\(name)=\(try scalar(limit, file: file, pointer: at + "/" + escapePointer(name)))"]
                }
            case "setenv":
                guard case .object(let variables) = value else { throw ConfigError(file: file, pointer: at, message: "must be an object") }
                for (name, text) in variables.members {
                    options += ["--setenv", "\(name)=\(try scalar(text, file: file, pointer: at + "/" + escapePointer(name)))"]
                }
            default:
                let option = "--" + key.replacingUnderscores()
                guard !reservedOptions.contains(option) else {
                    throw ConfigError(file: file, pointer: at, message: "\(option) is set by the broker, not the config")
                }
                if case .array(let items) = value {
                    for (index, item) in items.enumerated() {
                        options += [option, try scalar(item, file: file, pointer: "\(at)/\(index)")]
                    }
                } else {
                    options += [option, try scalar(value, file: file, pointer: at)]
                }
            }
        }
        return options
    }

    private static func scalar(_ value: JSONValue, file: String, pointer: String) throws(ConfigError) -> String {
        switch value {
        case .string(let text): return text
        case .number(let number): return number.lexeme
        default: throw ConfigError(file: file, pointer: pointer, message: "must be a string or a number, not \(value.typeName)")
        }
    }

    /// The sandbox spec for a helper: its config options plus what the broker sets itself.
    static func spec(for helper: HelperConfig, uid: UInt32, gid: UInt32, file: String, pointer: String)
        throws(ConfigError) -> SandboxSpec
    {
        let arguments = try options(for: helper.sandbox, file: file, pointer: pointer + "/sandbox") + [
            "--uid", "\(uid)", "--gid", "\(gid)",
            // What every client reads to find and check its connection (docs/protocol.md).
            "--setenv", "PRIVSEP_FD=3", "--setenv", "PRIVSEP_PROTOCOL=1", "--setenv", "PRIVSEP_HELPER=\(helper.name)",
            "--",
        ] + helper.command
        do {
            return try SandboxSpec.parse(arguments)
        } catch {
            throw ConfigError(file: file, pointer: pointer + "/sandbox", message: "\(error)")
        }
    }

    static func launch(launcher: String, plan: HelperPlan, socket: Int32, stdout: Int32, stderr: Int32)
        throws(SpawnError) -> LaunchedHelper
    {
        let process: SandboxedProcess
        do {
            process = try SandboxSpawner.spawn(
                launcher: launcher, spec: plan.spec, socket: socket, stdout: stdout, stderr: stderr,
                environment: SandboxSpawner.currentEnvironment(), seccompProgram: plan.seccomp)
        } catch {
            throw SpawnError(step: error.operation, errno: error.errno)
        }
        let errorPipe = OwnedFD(adopting: process.errorFD)
        let pidfd = cprivsep_pidfd_open(process.pid, 0)
        guard pidfd >= 0 else {
            let code = errno
            Glibc.kill(process.pid, SIGKILL)
            var ignored: Int32 = 0
            waitpid(process.pid, &ignored, 0)
            throw SpawnError(step: "pidfd_open", errno: code)
        }
        return LaunchedHelper(pid: process.pid, pidfd: OwnedFD(adopting: pidfd), errorPipe: errorPipe)
    }
}

/// Reads the launcher's error pipe once the launcher has exited: nil when the program was
/// exec'd, else the failed step as the launcher reported it.
enum SandboxLaunchOutcome {
    static func read(from pipe: OwnedFD) -> String? {
        switch SandboxFailure.readPipe(pipe.rawValue) {
        case .executed: return nil
        case .failed(let failure): return "\(failure)"
        case .garbled(let bytes): return "unreadable launcher report: \(String(decoding: bytes, as: UTF8.self))"
        }
    }
}

extension String {
    fileprivate func replacingUnderscores() -> String {
        String(map { $0 == "_" ? "-" : $0 })
    }
}
