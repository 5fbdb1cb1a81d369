// `privsep doctor [--json]`: what this kernel supports for the sandbox, and what privsep uses.
import ArgumentParser
import PrivSepJSON
import PrivSepSandbox

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Report kernel support for the sandbox (Landlock, seccomp, namespaces...) and what privsep will use.")

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let k = KernelSupport.detect()
        if json {
            print(jsonReport(k).jsonText)
        } else {
            print(textReport(k), terminator: "")
        }
    }

    private func jsonReport(_ k: KernelSupport) -> JSONValue {
        let kernel: JSONValue = [
            "release": .string(k.kernelRelease),
            "landlock_abi": .number(JSONNumber(Int64(k.landlockABI))),
            "seccomp_filter": .bool(k.seccompFilter),
            "user_namespaces": .bool(k.userNamespaces),
            "unprivileged_user_namespaces": .bool(k.unprivilegedUserNamespaces),
            "pid_namespaces": .bool(k.pidNamespaces),
            "net_namespaces": .bool(k.netNamespaces),
            "mount_namespaces": .bool(k.mountNamespaces),
            "cgroup_namespaces": .bool(k.cgroupNamespaces),
            "openat2": .bool(k.openat2),
            "close_range": .bool(k.closeRange),
            "pidfd": .bool(k.pidfd),
        ]
        let plan: [JSONValue] = k.plan.map { item in
            ["layer": .string(item.layer), "used": .bool(item.used), "note": .string(item.note)]
        }
        return ["kernel": kernel, "running_as_root": .bool(k.runningAsRoot), "default_profile": .array(plan)]
    }

    private func textReport(_ k: KernelSupport) -> String {
        func yes(_ b: Bool) -> String { b ? "yes" : "no" }
        var out = "Kernel \(k.kernelRelease)\n"
        out += "  Landlock ABI          \(k.landlockABI == 0 ? "none" : String(k.landlockABI))\n"
        out += "  seccomp filters       \(yes(k.seccompFilter))\n"
        out += "  user namespaces       \(yes(k.userNamespaces)) (unprivileged: \(yes(k.unprivilegedUserNamespaces)))\n"
        out += "  pid/net/mount/cgroup  \(yes(k.pidNamespaces))/\(yes(k.netNamespaces))/\(yes(k.mountNamespaces))/\(yes(k.cgroupNamespaces))\n"
        out += "  openat2               \(yes(k.openat2))\n"
        out += "  close_range           \(yes(k.closeRange))\n"
        out += "  pidfd                 \(yes(k.pidfd))\n"
        out += "\nThe default profile here (running as \(k.runningAsRoot ? "root" : "an unprivileged user")):\n"
        for item in k.plan {
            out += "  [\(item.used ? "x" : " ")] \(item.layer)\(item.note.isEmpty ? "" : ": \(item.note)")\n"
        }
        return out
    }
}
