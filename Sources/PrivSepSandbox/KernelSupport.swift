// What this kernel offers the sandbox, for `privsep doctor`. Read-only probes: sysctls under
// /proc/sys, /proc/self/ns, and system calls given arguments the kernel rejects before acting.
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep

/// The kernel's support for each sandbox layer, and what privsep will use.
public struct KernelSupport: Sendable, Equatable {
    public var kernelRelease: String
    public var landlockABI: Int
    public var seccompFilter: Bool
    public var userNamespaces: Bool
    /// Unprivileged users may create user namespaces (needed when the broker is not root).
    public var unprivilegedUserNamespaces: Bool
    public var pidNamespaces: Bool
    public var netNamespaces: Bool
    public var mountNamespaces: Bool
    public var cgroupNamespaces: Bool
    public var openat2: Bool
    public var closeRange: Bool
    public var pidfd: Bool
    public var runningAsRoot: Bool

    /// Probes the running kernel.
    public static func detect() -> KernelSupport {
        var uts = utsname()
        uname(&uts)
        let release = withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let maxUserNS = readInt("/proc/sys/user/max_user_namespaces")
        var unprivileged = (maxUserNS ?? 1) > 0
        if let legacy = readInt("/proc/sys/kernel/unprivileged_userns_clone"), legacy == 0 { unprivileged = false }
        if let apparmor = readInt("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"), apparmor == 1 { unprivileged = false }
        return KernelSupport(
            kernelRelease: release,
            landlockABI: Int(cps_landlock_abi()),
            seccompFilter: cps_probe_seccomp_filter() == 1,
            userNamespaces: exists("/proc/self/ns/user") && (maxUserNS ?? 1) > 0,
            unprivilegedUserNamespaces: unprivileged,
            pidNamespaces: exists("/proc/self/ns/pid"),
            netNamespaces: exists("/proc/self/ns/net"),
            mountNamespaces: exists("/proc/self/ns/mnt"),
            cgroupNamespaces: exists("/proc/self/ns/cgroup"),
            openat2: cps_probe_openat2() == 1,
            closeRange: cps_probe_close_range() == 1,
            pidfd: cps_probe_pidfd_open() == 1,
            runningAsRoot: geteuid() == 0)
    }

    /// One line of the plan: a layer, whether the default profile gets it here, and why not.
    public struct PlanItem: Sendable, Equatable {
        public let layer: String
        public let used: Bool
        public let note: String
    }

    /// What `--profile default` will apply on this kernel, layer by layer.
    public var plan: [PlanItem] {
        let namespacesPossible = runningAsRoot || (userNamespaces && unprivilegedUserNamespaces)
        var items: [PlanItem] = []
        items.append(PlanItem(layer: "user namespace", used: !runningAsRoot && namespacesPossible,
                              note: runningAsRoot ? "not needed: running as root" : (namespacesPossible ? "unprivileged broker" : "unavailable: namespaces cannot be created")))
        items.append(PlanItem(layer: "mount namespace + system root", used: namespacesPossible && mountNamespaces, note: "tmpfs root, read-only binds, pivot_root"))
        items.append(PlanItem(layer: "pid namespace + init", used: namespacesPossible && pidNamespaces, note: "helper and its children die with the init"))
        items.append(PlanItem(layer: "network namespace", used: namespacesPossible && netNamespaces, note: "loopback only"))
        items.append(PlanItem(layer: "ipc, uts, cgroup namespaces", used: namespacesPossible && cgroupNamespaces, note: ""))
        items.append(PlanItem(layer: "per-helper uid", used: runningAsRoot,
                              note: runningAsRoot ? "dynamic uids \(DynamicUIDAllocator.defaultRange.lowerBound)-\(DynamicUIDAllocator.defaultRange.upperBound)" : "not root: helpers run as the broker's uid"))
        items.append(PlanItem(layer: "capabilities dropped, no_new_privs", used: true, note: ""))
        let landlockNote: String
        switch landlockABI {
        case 0: landlockNote = "no Landlock: path rules not enforced (best effort skips; --landlock require fails)"
        case 1...3: landlockNote = "ABI \(landlockABI): filesystem rules only"
        case 4...5: landlockNote = "ABI \(landlockABI): filesystem and TCP port rules"
        default: landlockNote = "ABI \(landlockABI): filesystem, TCP ports, abstract-socket and signal scoping"
        }
        items.append(PlanItem(layer: "Landlock", used: landlockABI > 0, note: landlockNote))
        items.append(PlanItem(layer: "seccomp", used: seccompFilter, note: seccompFilter ? "default allowlist, deny with EPERM" : "unavailable: the default profile fails closed"))
        items.append(PlanItem(layer: "fd hygiene", used: true, note: closeRange ? "close_range" : "close() loop (no close_range)"))
        return items
    }

    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    private static func readInt(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace())
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s.removeLast() }
        return String(s)
    }
}
