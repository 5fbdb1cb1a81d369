// The privileged services' policy: each helper's `files`, `net`, `dns` and `users` members,
// parsed and checked once at load, before any helper runs. Rule directories are opened here
// (O_PATH) so that what a rule names is fixed at load: a helper that later renames or
// replaces a directory on the path cannot redirect the broker.
// Each helper's policy is part of its load-time plan (`HelperPlan.services`).

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire

/// The ways a file may be opened, as named in requests and rules: a bit set, because every
/// file.open compares the accesses asked for with each rule's.
struct FileAccess: OptionSet, Sendable {
    let rawValue: UInt8

    static let read = FileAccess(rawValue: 1 << 0)
    static let write = FileAccess(rawValue: 1 << 1)
    static let append = FileAccess(rawValue: 1 << 2)
    static let create = FileAccess(rawValue: 1 << 3)
    static let truncate = FileAccess(rawValue: 1 << 4)

    /// Each access by its name in requests and rules.
    private static let named: [(name: String, access: FileAccess)] = [
        ("read", .read), ("write", .write), ("append", .append), ("create", .create), ("truncate", .truncate),
    ]

    init(rawValue: UInt8) { self.rawValue = rawValue }

    /// One access by name; nil for any other string.
    init?(name: String) {
        guard let entry = Self.named.first(where: { $0.name == name }) else { return nil }
        self = entry.access
    }

    /// The names of the accesses in the set, sorted.
    var names: [String] { Self.named.filter { contains($0.access) }.map(\.name).sorted() }
}

/// One `files` rule with the directory it resolves beneath, opened at load.
/// A class, not a struct: every file request walks the rules, and a copy is then one retain
/// instead of one per string, array and descriptor it holds.
final class FileRule: Sendable {
    /// JSON pointer of the rule in the config, for the audit and for `privsep check`.
    let pointer: String
    /// Absolute, normalised.
    let path: String
    let access: FileAccess
    /// Covers everything below `path` (a directory); otherwise exactly `path` (a file).
    let recursive: Bool
    /// Symlinks are followed, but never out of `directory`.
    let symlinks: Bool
    /// O_PATH handle of `path` (recursive) or of its parent (a single file).
    let directory: OwnedFD
    /// `path` as bytes, for the byte-wise comparisons of `beneath`.
    private let pathBytes: [UInt8]
    /// What the paths below a directory start with: `path` and a slash (`/` for the root).
    private let underPrefix: [UInt8]
    /// Where a single file's name begins in `path`: just after its last slash.
    private let fileNameStart: Int

    init(pointer: String, path: String, access: FileAccess, recursive: Bool, symlinks: Bool, directory: OwnedFD) {
        self.pointer = pointer
        self.path = path
        self.access = access
        self.recursive = recursive
        self.symlinks = symlinks
        self.directory = directory
        pathBytes = Array(path.utf8)
        underPrefix = path == "/" ? pathBytes : pathBytes + [UInt8(ascii: "/")]
        fileNameStart = pathBytes.lastIndex(of: UInt8(ascii: "/")).map { $0 + 1 } ?? 0
    }

    /// What to open beneath `directory` for a requested path.
    enum Beneath: Equatable {
        /// The directory itself (`.`): the request names a recursive rule's own path.
        case directory
        /// The requested path's bytes from this offset on: the name is never copied.
        case suffix(from: Int)
    }

    /// What to open beneath `directory` when this rule covers `requested`, else nil.
    /// Paths compare as bytes: the kernel resolves bytes, not Unicode-equivalent strings.
    func beneath(_ requested: UnsafeBufferPointer<UInt8>) -> Beneath? {
        if requested.elementsEqual(pathBytes) { return recursive ? .directory : .suffix(from: fileNameStart) }
        guard recursive, requested.count > underPrefix.count, requested.starts(with: underPrefix) else { return nil }
        return .suffix(from: underPrefix.count)
    }
}

/// An IPv4 or IPv6 address in network byte order.
struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 or 16 bytes.
    let bytes: [UInt8]

    var family: Int32 { bytes.count == 4 ? AF_INET : AF_INET6 }

    /// Parses a literal (inet_pton); nil for anything else, names included.
    init?(_ text: String) {
        guard text.utf8.count <= 64 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, text, &buffer) == 1 {
            bytes = Array(buffer[0..<4])
        } else if inet_pton(AF_INET6, text, &buffer) == 1 {
            bytes = buffer
        } else {
            return nil
        }
    }

    init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    var description: String {
        var text = [CChar](repeating: 0, count: 64)
        let done = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        guard done != nil else { return "?" }
        let length = text.firstIndex(of: 0) ?? text.count
        return String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// tcp or udp.
enum NetProtocol: String, Sendable {
    case tcp, udp
}

/// A `net.listen` rule.
struct ListenRule: Sendable {
    let pointer: String
    let address: IPAddress
    /// 0 permits only a request for port 0: a port the kernel picks.
    let port: UInt16
    let proto: NetProtocol
}

/// A `net.connect` rule: an address literal or a host name (compared case-insensitively).
struct ConnectRule: Sendable {
    let pointer: String
    let host: String
    let port: UInt16
}

/// Everything one helper may ask of the services.
struct ServicePolicy: Sendable {
    /// The helper's pointer in the config, e.g. `/helpers/web`.
    let pointer: String
    var files: [FileRule] = []
    var listen: [ListenRule] = []
    var connect: [ConnectRule] = []
    /// Host names for privsep.dns.resolve, lower case, without a trailing dot.
    var dnsNames: [String] = []
    /// User names for privsep.user.lookup.
    var userNames: [String] = []
}

/// Reads the service members of one helper object; with `openDirectories: false` it only
/// checks (for tools that must not touch the filesystem).
struct ServicePolicyReader {
    let file: String
    let pointer: String

    /// Largest number of rules of each kind (the config schema says the same).
    static let maxRules = 1024

    func read(_ helper: JSONObject, openDirectories: Bool = true) throws(ConfigError) -> ServicePolicy {
        var policy = ServicePolicy(pointer: pointer)
        if let files = helper["files"] { policy.files = try readFiles(files, open: openDirectories) }
        if let net = helper["net"] { (policy.listen, policy.connect) = try readNet(net) }
        if let names = helper["dns"] { policy.dnsNames = try readNames(names, at: pointer + "/dns", hostNames: true) }
        if let names = helper["users"] { policy.userNames = try readNames(names, at: pointer + "/users", hostNames: false) }
        return policy
    }

    private func failure(_ at: String, _ message: String) -> ConfigError {
        ConfigError(file: file, pointer: at, message: message)
    }

    private func items(_ value: JSONValue, at: String) throws(ConfigError) -> [JSONValue] {
        guard case .array(let items) = value else { throw failure(at, "must be an array, not \(value.typeName)") }
        guard items.count <= Self.maxRules else { throw failure(at, "more than \(Self.maxRules) rules") }
        return items
    }

    private func readFiles(_ value: JSONValue, open: Bool) throws(ConfigError) -> [FileRule] {
        var rules: [FileRule] = []
        for (index, item) in try items(value, at: pointer + "/files").enumerated() {
            let at = "\(pointer)/files/\(index)"
            guard case .object(let rule) = item else { throw failure(at, "must be an object") }
            guard let path = rule["path"]?.stringValue else { throw failure(at + "/path", "must be a string") }
            if let problem = PathCheck.problem(path) { throw failure(at + "/path", problem) }
            var access: FileAccess = []
            for (position, name) in (rule["access"]?.arrayValue ?? []).enumerated() {
                guard let text = name.stringValue, let parsed = FileAccess(name: text) else {
                    throw failure("\(at)/access/\(position)", "must be read, write, append, create or truncate")
                }
                access.insert(parsed)
            }
            guard !access.isEmpty else { throw failure(at + "/access", "must name at least one access") }
            let recursive = rule["recursive"]?.boolValue ?? false
            let symlinks = rule["symlinks"]?.boolValue ?? false
            guard recursive || path != "/" else { throw failure(at + "/path", "a rule for / must be recursive") }
            let directoryPath: String
            if recursive {
                directoryPath = path
            } else {
                let slash = path.lastIndex(of: "/")!  // PathCheck: absolute, so there is one
                directoryPath = slash == path.startIndex ? "/" : String(path[..<slash])
            }
            let directory: OwnedFD
            if open {
                let fd = cprivsep_open_directory_path(directoryPath)
                guard fd >= 0 else {
                    throw failure(at + "/path", "cannot open the directory \(directoryPath): \(String(cString: strerror(errno)))")
                }
                directory = OwnedFD(adopting: fd)
            } else {
                directory = OwnedFD(adopting: -1)
            }
            rules.append(FileRule(pointer: at, path: path, access: access, recursive: recursive, symlinks: symlinks,
                                  directory: directory))
        }
        return rules
    }

    private func readPort(_ value: JSONValue?, at: String) throws(ConfigError) -> UInt16 {
        guard let number = value?.int64Value, (0...65535).contains(number) else {
            throw failure(at, "must be a port number 0...65535")
        }
        return UInt16(number)
    }

    private func readNet(_ value: JSONValue) throws(ConfigError) -> ([ListenRule], [ConnectRule]) {
        guard case .object(let net) = value else { throw failure(pointer + "/net", "must be an object") }
        var listen: [ListenRule] = []
        var connect: [ConnectRule] = []
        if let rules = net["listen"] {
            for (index, item) in try items(rules, at: pointer + "/net/listen").enumerated() {
                let at = "\(pointer)/net/listen/\(index)"
                guard case .object(let rule) = item else { throw failure(at, "must be an object") }
                let text = rule["address"]?.stringValue ?? ""
                guard let address = IPAddress(text) else {
                    throw failure(at + "/address", "\"\(text)\" is not an IPv4 or IPv6 address literal")
                }
                let name = rule["protocol"]?.stringValue ?? "tcp"
                guard let proto = NetProtocol(rawValue: name) else { throw failure(at + "/protocol", "must be tcp or udp") }
                listen.append(ListenRule(pointer: at, address: address, port: try readPort(rule["port"], at: at + "/port"),
                                         proto: proto))
            }
        }
        if let rules = net["connect"] {
            for (index, item) in try items(rules, at: pointer + "/net/connect").enumerated() {
                let at = "\(pointer)/net/connect/\(index)"
                guard case .object(let rule) = item else { throw failure(at, "must be an object") }
                let host = rule["host"]?.stringValue ?? ""
                guard IPAddress(host) != nil || HostName.isValid(host) else {
                    throw failure(at + "/host", "\"\(host)\" is neither an address literal nor a host name")
                }
                let port = try readPort(rule["port"], at: at + "/port")
                guard port != 0 else { throw failure(at + "/port", "a destination port cannot be 0") }
                connect.append(ConnectRule(pointer: at, host: HostName.canonical(host), port: port))
            }
        }
        return (listen, connect)
    }

    private func readNames(_ value: JSONValue, at: String, hostNames: Bool) throws(ConfigError) -> [String] {
        var names: [String] = []
        for (index, item) in try items(value, at: at).enumerated() {
            guard let name = item.stringValue, !name.isEmpty else { throw failure("\(at)/\(index)", "must be a non-empty string") }
            if hostNames {
                guard HostName.isValid(name) else { throw failure("\(at)/\(index)", "\"\(name)\" is not a host name") }
                names.append(HostName.canonical(name))
            } else {
                names.append(name)
            }
        }
        return names
    }
}

/// The shape every path in a file request and rule must have.
enum PathCheck {
    static let maxLength = 4096

    /// Why `path` is not absolute and normalised, or nil when it is: starts with `/`, no `.` or
    /// `..` segment, no `//`, no trailing `/` (except `/` itself), no NUL.
    static func problem(_ path: String) -> String? {
        var path = path
        return path.withUTF8 { bytes -> String? in
            guard bytes.first == UInt8(ascii: "/") else { return "not an absolute path" }
            guard bytes.count <= maxLength else { return "longer than \(maxLength) bytes" }
            guard !bytes.contains(0) else { return "contains a NUL byte" }
            if bytes.count == 1 { return nil }
            guard bytes.last != UInt8(ascii: "/") else { return "ends with /" }
            // Each segment runs from just after a slash to the next slash or the end.
            var start = 1
            while start <= bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
                switch end - start {
                case 0: return "contains //"
                case 1 where bytes[start] == UInt8(ascii: "."): return "contains a . segment"
                case 2 where bytes[start] == UInt8(ascii: ".") && bytes[start + 1] == UInt8(ascii: "."):
                    return "contains a .. segment"
                default: break
                }
                start = end + 1
            }
            return nil
        }
    }
}

/// Host names as policies compare them.
enum HostName {
    /// RFC 1123 labels: letters, digits, hyphens, 1...63 bytes, not starting or ending with a
    /// hyphen; at most 253 bytes; a trailing dot is allowed.
    static func isValid(_ name: String) -> Bool {
        var bytes = Array(name.utf8)
        if bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        for label in bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count), label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else {
                return false
            }
            for byte in label {
                let ok = (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39)
                    || byte == UInt8(ascii: "-")
                if !ok { return false }
            }
        }
        return true
    }

    /// Lower case, without a trailing dot.
    static func canonical(_ name: String) -> String {
        var text = name.lowercased()
        if text.hasSuffix(".") && text.count > 1 { text.removeLast() }
        return text
    }
}
