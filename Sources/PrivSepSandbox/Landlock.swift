// Step 12 of the sequence: Landlock, best effort by ABI (or fail closed with --landlock require).
// Rules name paths of the program's final root (the sequence has already pivoted).
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep

enum Landlock {
    /// O_PATH (not exported by Swift's Glibc module): a handle to name the rule's inode.
    static let oPath: Int32 = 0o10000000

    // Rights grouped the way rules use them.
    static let fileOnly: UInt64 = UInt64(CPS_LL_FS_EXECUTE | CPS_LL_FS_WRITE_FILE | CPS_LL_FS_READ_FILE | CPS_LL_FS_TRUNCATE | CPS_LL_FS_IOCTL_DEV)
    static let read: UInt64 = UInt64(CPS_LL_FS_READ_FILE | CPS_LL_FS_READ_DIR)
    static let readExecute: UInt64 = read | UInt64(CPS_LL_FS_EXECUTE)
    static let device: UInt64 = UInt64(CPS_LL_FS_READ_FILE | CPS_LL_FS_WRITE_FILE | CPS_LL_FS_TRUNCATE | CPS_LL_FS_IOCTL_DEV)
    static let readWrite: UInt64 = read | UInt64(CPS_LL_FS_WRITE_FILE | CPS_LL_FS_TRUNCATE | CPS_LL_FS_REMOVE_DIR | CPS_LL_FS_REMOVE_FILE
        | CPS_LL_FS_MAKE_DIR | CPS_LL_FS_MAKE_REG | CPS_LL_FS_MAKE_SYM | CPS_LL_FS_MAKE_SOCK | CPS_LL_FS_MAKE_FIFO | CPS_LL_FS_REFER)

    /// The filesystem rights a kernel of this ABI can handle.
    static func handledFS(abi: Int) -> UInt64 {
        var fs: UInt64 = (1 << 13) - 1
        if abi >= 2 { fs |= UInt64(CPS_LL_FS_REFER) }
        if abi >= 3 { fs |= UInt64(CPS_LL_FS_TRUNCATE) }
        if abi >= 5 { fs |= UInt64(CPS_LL_FS_IOCTL_DEV) }
        return fs
    }

    /// One path rule; `implicit` rules (from the root layout) are skipped when the path is absent.
    struct PathRule {
        let path: String
        let access: UInt64
        let implicit: Bool
    }

    /// The rules the spec implies for the root it gets, then the explicit ones.
    static func pathRules(spec: SandboxSpec, root: SandboxSpec.Root) -> [PathRule] {
        var rules: [PathRule] = []
        if root == .system || root == .host {
            for dir in ["/usr"] + RootBuilder.systemDirs.map({ "/" + $0 }) {
                rules.append(PathRule(path: dir, access: readExecute, implicit: true))
            }
            // File by file: the rest of /etc (and listing it) stays closed.
            for name in RootBuilder.etcFiles {
                rules.append(PathRule(path: "/etc/" + name, access: read, implicit: true))
            }
            rules.append(PathRule(path: "/dev/null", access: device, implicit: true))
            rules.append(PathRule(path: "/dev/zero", access: device, implicit: true))
            rules.append(PathRule(path: "/dev/urandom", access: UInt64(CPS_LL_FS_READ_FILE), implicit: true))
            rules.append(PathRule(path: "/proc", access: read, implicit: true))
            if root == .system {
                rules.append(PathRule(path: "/tmp", access: readWrite, implicit: true))
            }
        }
        if root != .host {
            for m in spec.mounts {
                let access: UInt64 = m.kind == .roBind ? readExecute : readWrite
                rules.append(PathRule(path: m.destination, access: access, implicit: false))
            }
        }
        for p in spec.landlockRead { rules.append(PathRule(path: p, access: read, implicit: false)) }
        for p in spec.landlockWrite { rules.append(PathRule(path: p, access: readWrite, implicit: false)) }
        for p in spec.landlockExecute { rules.append(PathRule(path: p, access: readExecute, implicit: false)) }
        return rules
    }

    /// The ABI the rules need when --landlock require is given.
    static func requiredABI(spec: SandboxSpec) -> Int {
        if spec.network == .host { return 6 }  // TCP port rules (4) and abstract-socket scoping (6)
        if !spec.landlockBindTCP.isEmpty || !spec.landlockConnectTCP.isEmpty { return 4 }
        return 1
    }

    static func apply(spec: SandboxSpec, root: SandboxSpec.Root) throws(SandboxFailure) {
        var abi = Int(cps_landlock_abi())
        if let cap = spec.testLandlockABI { abi = min(abi, cap) }
        if spec.landlock == .require {
            let needed = requiredABI(spec: spec)
            guard abi >= needed else {
                throw SandboxFailure(step: .landlock, errno: EOPNOTSUPP, path: "--landlock",
                                     detail: "required ABI \(needed), kernel has \(abi)")
            }
        }
        guard abi >= 1 else { return }

        let handledFS = handledFS(abi: abi)
        let handledNet: UInt64 = abi >= 4 ? UInt64(CPS_LL_NET_BIND_TCP | CPS_LL_NET_CONNECT_TCP) : 0
        let scoped: UInt64 = abi >= 6 ? UInt64(CPS_LL_SCOPE_ABSTRACT_UNIX_SOCKET | CPS_LL_SCOPE_SIGNAL) : 0
        let ruleset = cps_landlock_create_ruleset(handledFS, handledNet, scoped, Int32(abi))
        guard ruleset >= 0 else { throw SandboxFailure(step: .landlock, errno: errno, detail: "landlock_create_ruleset (ABI \(abi))") }
        defer { close(ruleset) }

        for rule in pathRules(spec: spec, root: root) {
            let fd = open(rule.path, oPath | O_CLOEXEC)
            if fd < 0 {
                if rule.implicit && errno == ENOENT { continue }
                throw SandboxFailure(step: .landlock, errno: errno, path: rule.path, detail: "open rule path")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw SandboxFailure(step: .landlock, errno: errno, path: rule.path, detail: "fstat") }
            var access = rule.access & handledFS
            if st.st_mode & S_IFMT != S_IFDIR { access &= fileOnly }
            guard access != 0 else { continue }
            guard cps_landlock_add_path_rule(ruleset, fd, access) == 0 else {
                throw SandboxFailure(step: .landlock, errno: errno, path: rule.path, detail: "landlock_add_rule")
            }
        }
        if handledNet != 0 {
            for port in spec.landlockBindTCP {
                guard cps_landlock_add_net_rule(ruleset, UInt64(port), UInt64(CPS_LL_NET_BIND_TCP)) == 0 else {
                    throw SandboxFailure(step: .landlock, errno: errno, path: "--landlock-bind-tcp", detail: "port \(port)")
                }
            }
            for port in spec.landlockConnectTCP {
                guard cps_landlock_add_net_rule(ruleset, UInt64(port), UInt64(CPS_LL_NET_CONNECT_TCP)) == 0 else {
                    throw SandboxFailure(step: .landlock, errno: errno, path: "--landlock-connect-tcp", detail: "port \(port)")
                }
            }
        }
        guard cps_landlock_restrict_self(ruleset) == 0 else {
            throw SandboxFailure(step: .landlock, errno: errno, detail: "landlock_restrict_self")
        }
    }
}
