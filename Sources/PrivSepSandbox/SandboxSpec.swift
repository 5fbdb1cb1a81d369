// The sandbox options, parsed from the launcher's argv by hand (no ArgumentParser, no Foundation:
// the launcher is on every helper's spawn path). Each option mirrors one member of the config's
// `sandbox` object; docs/sandbox.md lists the mapping.

/// What a helper's sandbox consists of: the parsed form of `privsep-sandbox [OPTIONS] -- PROGRAM`.
public struct SandboxSpec: Sendable, Equatable {
    /// A preset every other option starts from.
    public enum Profile: String, Sendable, CaseIterable {
        /// Every layer, root `system`, no network: what a helper gets when its config says nothing.
        case `default`
        /// Every layer, root `empty`, the compute-only seccomp allowlist.
        case strict
        /// No isolation (development only; the launcher warns loudly).
        case none
    }

    /// The filesystem the program sees as `/`.
    public enum Root: String, Sendable, CaseIterable {
        /// A read-only tmpfs with read-only binds of /usr, /lib*, /bin, /sbin, a few /etc files,
        /// minimal /dev, /proc (with a pid namespace) and a private /tmp.
        case system
        /// An empty read-only tmpfs: only what --ro-bind/--bind/--tmpfs add (static binaries).
        case empty
        /// The host's root, unchanged (profile `none`).
        case host
    }

    /// Network access.
    public enum Network: String, Sendable, CaseIterable {
        /// A new network namespace holding only loopback; sockets limited to AF_UNIX.
        case none
        /// The host's network namespace; AF_UNIX, AF_INET and AF_INET6 sockets.
        case host
    }

    /// How Landlock is applied.
    public enum LandlockMode: String, Sendable, CaseIterable {
        case off
        /// Use what the kernel's ABI supports, silently skip the rest.
        case bestEffort = "best-effort"
        /// Fail closed (step `landlock`, ENOSYS/EOPNOTSUPP) when the kernel lacks what the rules need.
        case require
    }

    /// The seccomp allowlist to start from.
    public enum SeccompProfile: String, Sendable, CaseIterable {
        case `default`, strict, none
    }

    /// What a denied system call does.
    public enum DenyAction: Sendable, Equatable {
        /// Fail with this errno (default EPERM).
        case errno(Int32)
        /// Kill the whole process.
        case kill
    }

    /// A sandbox layer that the test-only switch can turn off (acceptance 12).
    public enum Layer: String, Sendable, CaseIterable {
        case seccomp, landlock, mountns, netns, pidns, uid, caps, rlimits, nnp
    }

    /// A resource limit the launcher sets.
    public enum Rlimit: String, Sendable, CaseIterable {
        case nofile, nproc, core, fsize, `as`, cpu
    }

    /// One mount added to the root.
    public struct Mount: Sendable, Equatable {
        public enum Kind: String, Sendable { case roBind = "--ro-bind", bind = "--bind", tmpfs = "--tmpfs" }
        public var kind: Kind
        /// Host path (binds only).
        public var source: String
        /// Absolute path inside the sandbox.
        public var destination: String
        public init(kind: Kind, source: String, destination: String) {
            self.kind = kind
            self.source = source
            self.destination = destination
        }
    }

    /// A limit value; `nil` means unlimited.
    public struct Limit: Sendable, Equatable {
        public var resource: Rlimit
        public var value: UInt64?
        public init(_ resource: Rlimit, _ value: UInt64?) {
            self.resource = resource
            self.value = value
        }
    }

    /// A variable set in the program's environment.
    public struct EnvVar: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var profile: Profile = .default
    public var root: Root = .system
    public var network: Network = .none
    public var mounts: [Mount] = []
    /// Uid/gid the program runs as; nil: 65534 when started as root, else the caller's own.
    public var uid: UInt32?
    public var gid: UInt32?
    public var chdir: String = "/"
    /// Limits in the order given; a later entry for the same resource wins.
    public var rlimits: [Limit] = []
    public var landlock: LandlockMode = .bestEffort
    public var landlockRead: [String] = []
    public var landlockWrite: [String] = []
    public var landlockExecute: [String] = []
    public var landlockBindTCP: [UInt16] = []
    public var landlockConnectTCP: [UInt16] = []
    public var seccomp: SeccompProfile = .default
    public var seccompAllow: [String] = []
    public var seccompDeny: [String] = []
    public var seccompAction: DenyAction = .errno(1)
    /// Variables set explicitly, and names copied from the launcher's own environment.
    public var setenv: [EnvVar] = []
    public var keepEnv: [String] = []
    /// Moved to fd 3 before everything else (nil: fd 3 is already the socket, or absent).
    public var socketFD: Int32?
    /// Where a failure line is written (CLOEXEC, so exec closes it: EOF means success).
    public var errorFD: Int32?
    /// A compiled seccomp program to read from this fd (instead of building one): set by the
    /// spawn API from `compileSeccomp()` of the same spec.
    public var seccompProgramFD: Int32?
    /// The pid the launcher's parent must have (the broker), checked after PR_SET_PDEATHSIG.
    public var expectParent: Int32?
    /// Test-only (needs PRIVSEP_TEST_LAYER_SWITCH=1): layers switched off.
    public var disabledLayers: [Layer] = []
    /// Test-only: pretend the kernel's Landlock ABI is at most this.
    public var testLandlockABI: Int?
    /// Absolute path of the program, then its arguments (argv[0] is the path).
    public var command: [String] = []

    public init() {}

    /// The preset for `profile`, with no command.
    public static func preset(_ profile: Profile) -> SandboxSpec {
        var spec = SandboxSpec()
        spec.profile = profile
        switch profile {
        case .default:
            spec.rlimits = [Limit(.nofile, 1024), Limit(.nproc, 64), Limit(.core, 0)]
        case .strict:
            spec.root = .empty
            spec.seccomp = .strict
            spec.rlimits = [Limit(.nofile, 64), Limit(.nproc, 1), Limit(.core, 0)]
        case .none:
            spec.root = .host
            spec.network = .host
            spec.landlock = .off
            spec.seccomp = .none
            spec.rlimits = [Limit(.core, 0)]
        }
        return spec
    }

    /// Whether `layer` is on (not switched off by the test-only option).
    public func isEnabled(_ layer: Layer) -> Bool {
        if disabledLayers.contains(layer) { return false }
        switch layer {
        case .mountns: return root != .host
        case .netns: return network == .none
        case .pidns, .caps: return profile != .none
        // Under profile `none`, an explicit --uid/--gid is still honoured, never ignored.
        case .uid: return profile != .none || uid != nil || gid != nil
        case .rlimits: return true
        // Landlock and seccomp need no_new_privs once the uid is not 0.
        case .nnp: return profile != .none || landlock != .off || seccomp != .none
        case .landlock: return landlock != .off
        case .seccomp: return seccomp != .none
        }
    }
}

/// A bad launcher option: names the option and why it was refused.
public struct SandboxOptionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let option: String
    public let reason: String
    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }
    public var description: String { "\(option): \(reason)" }
}

// MARK: - Parsing

/// Bounds on the option list: every byte of it may come from a config file.
enum SpecLimits {
    static let maxArguments = 4096
    static let maxPathBytes = 4095
    static let maxListEntries = 256
}

extension SandboxSpec {
    /// Parses `OPTIONS -- PROGRAM [ARGS]`. `allowTestSwitches` must come from the environment
    /// (PRIVSEP_TEST_LAYER_SWITCH=1), never from the options themselves.
    public static func parse(_ arguments: [String], allowTestSwitches: Bool = false) throws(SandboxOptionError) -> SandboxSpec {
        guard arguments.count <= SpecLimits.maxArguments else {
            throw SandboxOptionError(option: "argv", reason: "more than \(SpecLimits.maxArguments) arguments")
        }
        guard let separator = arguments.firstIndex(of: "--") else {
            throw SandboxOptionError(option: "--", reason: "missing '-- PROGRAM [ARGS]'")
        }
        let options = splitOptions(Array(arguments[..<separator]))
        var spec = SandboxSpec.preset(try profile(in: options))
        var index = 0
        while index < options.count {
            let (name, inlineValue) = options[index]
            index += 1
            if name == "--profile" { if inlineValue == nil { index += 1 }; continue }
            guard let handler = optionTable[name] else {
                throw SandboxOptionError(option: name, reason: "unknown option")
            }
            var value: String? = nil
            if handler.takesValue {
                if let inlineValue {
                    value = inlineValue
                } else if index < options.count, options[index].1 == nil {
                    value = options[index].0
                    index += 1
                } else {
                    throw SandboxOptionError(option: name, reason: "needs a value")
                }
            } else if inlineValue != nil {
                throw SandboxOptionError(option: name, reason: "takes no value")
            }
            if handler.testOnly && !allowTestSwitches {
                throw SandboxOptionError(option: name, reason: "test-only option refused (PRIVSEP_TEST_LAYER_SWITCH=1 is not set)")
            }
            try handler.apply(&spec, name, value ?? "")
        }
        spec.command = Array(arguments[(separator + 1)...])
        try spec.validate()
        return spec
    }

    /// "--name=value" becomes ("--name", "value"); anything else (name, nil).
    private static func splitOptions(_ raw: [String]) -> [(String, String?)] {
        raw.map { arg in
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }
            return (arg, nil)
        }
    }

    private static func profile(in options: [(String, String?)]) throws(SandboxOptionError) -> Profile {
        var found: Profile? = nil
        var index = 0
        while index < options.count {
            defer { index += 1 }
            guard options[index].0 == "--profile" else { continue }
            let value: String
            if let inline = options[index].1 {
                value = inline
            } else if index + 1 < options.count {
                value = options[index + 1].0
                index += 1
            } else {
                throw SandboxOptionError(option: "--profile", reason: "needs a value")
            }
            guard found == nil else { throw SandboxOptionError(option: "--profile", reason: "given twice") }
            found = try choice(Profile.self, value, option: "--profile")
        }
        return found ?? .default
    }

    /// Checks that do not depend on the order of the options.
    func validate() throws(SandboxOptionError) {
        guard let program = command.first else {
            throw SandboxOptionError(option: "--", reason: "no program after '--'")
        }
        guard program.hasPrefix("/") else {
            throw SandboxOptionError(option: "--", reason: "program must be an absolute path: \(program)")
        }
        if root == .host && !mounts.isEmpty {
            throw SandboxOptionError(option: mounts[0].kind.rawValue, reason: "needs a new root (--root system or empty)")
        }
        if landlock == .off && (!landlockRead.isEmpty || !landlockWrite.isEmpty || !landlockExecute.isEmpty
                                || !landlockConnectTCP.isEmpty || !landlockBindTCP.isEmpty) {
            throw SandboxOptionError(option: "--landlock", reason: "path or port rules given but Landlock is off")
        }
        if seccompProgramFD != nil && seccompProgramFD == errorFD {
            throw SandboxOptionError(option: "--seccomp-bpf-fd", reason: "same fd as --error-fd")
        }
        if seccomp == .none && (!seccompAllow.isEmpty || !seccompDeny.isEmpty) {
            throw SandboxOptionError(option: "--seccomp", reason: "allow/deny lists given but seccomp is none")
        }
    }
}

// MARK: - The option table

private struct OptionHandler: Sendable {
    let takesValue: Bool
    let testOnly: Bool
    let apply: @Sendable (inout SandboxSpec, String, String) throws(SandboxOptionError) -> Void
}

private func choice<T: RawRepresentable & CaseIterable>(_ type: T.Type, _ value: String, option: String) throws(SandboxOptionError) -> T where T.RawValue == String {
    if let v = T(rawValue: value) { return v }
    let names = T.allCases.map(\.rawValue).joined(separator: ", ")
    throw SandboxOptionError(option: option, reason: "'\(value)' is not one of: \(names)")
}

private func absolutePath(_ value: String, option: String) throws(SandboxOptionError) -> String {
    guard value.hasPrefix("/") else { throw SandboxOptionError(option: option, reason: "not an absolute path: \(value)") }
    guard value.utf8.count <= SpecLimits.maxPathBytes else { throw SandboxOptionError(option: option, reason: "path too long") }
    guard !value.utf8.contains(0) else { throw SandboxOptionError(option: option, reason: "path contains NUL") }
    // `..` inside the sandbox would let a destination climb out of the new root while it is built.
    guard !value.split(separator: "/").contains("..") else {
        throw SandboxOptionError(option: option, reason: "'..' is not allowed: \(value)")
    }
    return value
}

private func number(_ value: String, option: String, max: UInt64) throws(SandboxOptionError) -> UInt64 {
    guard !value.isEmpty, value.utf8.count <= 20, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
          let n = UInt64(value), n <= max else {
        throw SandboxOptionError(option: option, reason: "'\(value)' is not a number in 0...\(max)")
    }
    return n
}

private func append<T>(_ list: inout [T], _ value: T, option: String) throws(SandboxOptionError) {
    guard list.count < SpecLimits.maxListEntries else {
        throw SandboxOptionError(option: option, reason: "more than \(SpecLimits.maxListEntries) entries")
    }
    list.append(value)
}

private func mount(_ kind: SandboxSpec.Mount.Kind) -> OptionHandler {
    OptionHandler(takesValue: true, testOnly: false) { (spec: inout SandboxSpec, option: String, value: String) throws(SandboxOptionError) in
        var source = value
        var destination = value
        if kind != .tmpfs, let colon = value.firstIndex(of: ":") {
            source = String(value[..<colon])
            destination = String(value[value.index(after: colon)...])
        }
        let m = SandboxSpec.Mount(kind: kind,
                                  source: kind == .tmpfs ? "" : try absolutePath(source, option: option),
                                  destination: try absolutePath(destination, option: option))
        guard m.destination != "/" else { throw SandboxOptionError(option: option, reason: "cannot mount over /") }
        try append(&spec.mounts, m, option: option)
    }
}

private func value(_ body: @escaping @Sendable (inout SandboxSpec, String, String) throws(SandboxOptionError) -> Void) -> OptionHandler {
    OptionHandler(takesValue: true, testOnly: false, apply: body)
}

private func syscallName(_ value: String, option: String) throws(SandboxOptionError) -> String {
    guard SeccompFilter.syscallNumber(value) != nil else {
        throw SandboxOptionError(option: option, reason: "unknown system call '\(value)' on this architecture")
    }
    return value
}

private let optionTable: [String: OptionHandler] = [
    "--root": value { spec, option, v throws(SandboxOptionError) in spec.root = try choice(SandboxSpec.Root.self, v, option: option) },
    "--network": value { spec, option, v throws(SandboxOptionError) in spec.network = try choice(SandboxSpec.Network.self, v, option: option) },
    "--ro-bind": mount(.roBind),
    "--bind": mount(.bind),
    "--tmpfs": mount(.tmpfs),
    "--uid": value { spec, option, v throws(SandboxOptionError) in spec.uid = UInt32(try number(v, option: option, max: 0xFFFF_FFFE)) },
    "--gid": value { spec, option, v throws(SandboxOptionError) in spec.gid = UInt32(try number(v, option: option, max: 0xFFFF_FFFE)) },
    "--chdir": value { spec, option, v throws(SandboxOptionError) in spec.chdir = try absolutePath(v, option: option) },
    "--rlimit": value { spec, option, v throws(SandboxOptionError) in
        guard let eq = v.firstIndex(of: "=") else {
            throw SandboxOptionError(option: option, reason: "expected NAME=VALUE, got '\(v)'")
        }
        let resource = try choice(SandboxSpec.Rlimit.self, String(v[..<eq]), option: option)
        let raw = String(v[v.index(after: eq)...])
        let limit = raw == "unlimited" ? nil : try number(raw, option: option, max: UInt64.max - 1)
        spec.rlimits.removeAll { $0.resource == resource }
        spec.rlimits.append(SandboxSpec.Limit(resource, limit))
    },
    "--landlock": value { spec, option, v throws(SandboxOptionError) in spec.landlock = try choice(SandboxSpec.LandlockMode.self, v, option: option) },
    "--landlock-read": value { spec, option, v throws(SandboxOptionError) in try append(&spec.landlockRead, try absolutePath(v, option: option), option: option) },
    "--landlock-write": value { spec, option, v throws(SandboxOptionError) in try append(&spec.landlockWrite, try absolutePath(v, option: option), option: option) },
    "--landlock-exec": value { spec, option, v throws(SandboxOptionError) in try append(&spec.landlockExecute, try absolutePath(v, option: option), option: option) },
    "--landlock-bind-tcp": value { spec, option, v throws(SandboxOptionError) in try append(&spec.landlockBindTCP, UInt16(try number(v, option: option, max: 65535)), option: option) },
    "--landlock-connect-tcp": value { spec, option, v throws(SandboxOptionError) in try append(&spec.landlockConnectTCP, UInt16(try number(v, option: option, max: 65535)), option: option) },
    "--seccomp": value { spec, option, v throws(SandboxOptionError) in spec.seccomp = try choice(SandboxSpec.SeccompProfile.self, v, option: option) },
    "--seccomp-allow": value { spec, option, v throws(SandboxOptionError) in try append(&spec.seccompAllow, try syscallName(v, option: option), option: option) },
    "--seccomp-deny": value { spec, option, v throws(SandboxOptionError) in try append(&spec.seccompDeny, try syscallName(v, option: option), option: option) },
    "--seccomp-action": value { spec, option, v throws(SandboxOptionError) in
        if v == "kill" {
            spec.seccompAction = .kill
        } else if v == "errno" {
            spec.seccompAction = .errno(1)
        } else if v.hasPrefix("errno:") {
            spec.seccompAction = .errno(Int32(try number(String(v.dropFirst(6)), option: option, max: 4095)))
        } else {
            throw SandboxOptionError(option: option, reason: "'\(v)' is not one of: errno, errno:N, kill")
        }
    },
    "--setenv": value { spec, option, v throws(SandboxOptionError) in
        guard let eq = v.firstIndex(of: "="), eq != v.startIndex else {
            throw SandboxOptionError(option: option, reason: "expected NAME=VALUE, got '\(v)'")
        }
        let name = String(v[..<eq])
        spec.setenv.removeAll { $0.name == name }
        try append(&spec.setenv, SandboxSpec.EnvVar(name: name, value: String(v[v.index(after: eq)...])), option: option)
    },
    "--keep-env": value { spec, option, v throws(SandboxOptionError) in
        guard !v.isEmpty, !v.contains("=") else { throw SandboxOptionError(option: option, reason: "not a variable name: '\(v)'") }
        try append(&spec.keepEnv, v, option: option)
    },
    "--socket-fd": value { spec, option, v throws(SandboxOptionError) in spec.socketFD = Int32(try number(v, option: option, max: 65535)) },
    "--error-fd": value { spec, option, v throws(SandboxOptionError) in
        let fd = Int32(try number(v, option: option, max: 65535))
        guard fd > 3 else { throw SandboxOptionError(option: option, reason: "fds 0-3 are the program's; use 4 or above") }
        spec.errorFD = fd
    },
    "--seccomp-bpf-fd": value { spec, option, v throws(SandboxOptionError) in
        let fd = Int32(try number(v, option: option, max: 65535))
        guard fd > 3 else { throw SandboxOptionError(option: option, reason: "fds 0-3 are the program's; use 4 or above") }
        spec.seccompProgramFD = fd
    },
    "--expect-parent": value { spec, option, v throws(SandboxOptionError) in
        let pid = try number(v, option: option, max: 0x3FFF_FFFF)
        guard pid > 0 else { throw SandboxOptionError(option: option, reason: "pid must be positive") }
        spec.expectParent = Int32(pid)
    },
    "--test-disable-layer": OptionHandler(takesValue: true, testOnly: true) { spec, option, v throws(SandboxOptionError) in
        let layer = try choice(SandboxSpec.Layer.self, v, option: option)
        if !spec.disabledLayers.contains(layer) { spec.disabledLayers.append(layer) }
    },
    "--test-landlock-abi": OptionHandler(takesValue: true, testOnly: true) { spec, option, v throws(SandboxOptionError) in
        spec.testLandlockABI = Int(try number(v, option: option, max: 64))
    },
]

// MARK: - Rendering

extension SandboxSpec {
    /// The launcher options that reproduce this spec (parse(options()) == self), command included.
    public func arguments() -> [String] {
        var out: [String] = ["--profile", profile.rawValue]
        let base = SandboxSpec.preset(profile)
        if root != base.root { out += ["--root", root.rawValue] }
        if network != base.network { out += ["--network", network.rawValue] }
        for m in mounts {
            switch m.kind {
            case .tmpfs: out += [m.kind.rawValue, m.destination]
            case .bind, .roBind: out += [m.kind.rawValue, m.source == m.destination ? m.source : "\(m.source):\(m.destination)"]
            }
        }
        if let uid { out += ["--uid", String(uid)] }
        if let gid { out += ["--gid", String(gid)] }
        if chdir != "/" { out += ["--chdir", chdir] }
        if rlimits != base.rlimits {
            for limit in rlimits {
                out += ["--rlimit", "\(limit.resource.rawValue)=\(limit.value.map { String($0) } ?? "unlimited")"]
            }
        }
        if landlock != base.landlock { out += ["--landlock", landlock.rawValue] }
        for p in landlockRead { out += ["--landlock-read", p] }
        for p in landlockWrite { out += ["--landlock-write", p] }
        for p in landlockExecute { out += ["--landlock-exec", p] }
        for p in landlockBindTCP { out += ["--landlock-bind-tcp", String(p)] }
        for p in landlockConnectTCP { out += ["--landlock-connect-tcp", String(p)] }
        if seccomp != base.seccomp { out += ["--seccomp", seccomp.rawValue] }
        for s in seccompAllow { out += ["--seccomp-allow", s] }
        for s in seccompDeny { out += ["--seccomp-deny", s] }
        switch seccompAction {
        case .kill: out += ["--seccomp-action", "kill"]
        case .errno(let e) where e != 1: out += ["--seccomp-action", "errno:\(e)"]
        case .errno: break
        }
        for v in setenv { out += ["--setenv", "\(v.name)=\(v.value)"] }
        for k in keepEnv { out += ["--keep-env", k] }
        if let socketFD { out += ["--socket-fd", String(socketFD)] }
        if let errorFD { out += ["--error-fd", String(errorFD)] }
        if let seccompProgramFD { out += ["--seccomp-bpf-fd", String(seccompProgramFD)] }
        if let expectParent { out += ["--expect-parent", String(expectParent)] }
        for layer in disabledLayers { out += ["--test-disable-layer", layer.rawValue] }
        if let testLandlockABI { out += ["--test-landlock-abi", String(testLandlockABI)] }
        out.append("--")
        out += command
        return out
    }
}
