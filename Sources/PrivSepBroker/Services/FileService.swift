// privsep.file.open and privsep.file.read: files opened on a helper's behalf under its `files`
// rules. The path a helper names is only used to pick a rule; the open itself is openat2
// relative to the rule's directory handle (opened at load) with RESOLVE_BENEATH and
// RESOLVE_NO_MAGICLINKS, and RESOLVE_NO_SYMLINKS unless the rule allows symlinks. The kernel
// then resolves every component atomically: a symlink or rename a helper races in can make the
// open fail, never leave the rule's directory.
//
// Only regular files are granted. The open is O_NONBLOCK (a FIFO planted in the tree must not
// block the broker's loop), then the descriptor is checked with fstat and made blocking again.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire

enum FileService {
    /// An open descriptor and the rule that granted it.
    private struct Opened {
        let fd: OwnedFD
        let rule: FileRule
        let size: Int64
    }

    private enum Opening {
        case opened(Opened)
        case refused(ServiceDecision)
    }

    static func open(_ policy: ServicePolicy, _ body: JSONObject) -> ServiceDecision {
        let path = body["path"]?.stringValue ?? ""
        var access: FileAccess = []
        for item in body["access"]?.arrayValue ?? [] {
            if let name = item.stringValue, let parsed = FileAccess(name: name) { access.insert(parsed) }
        }
        let mode = body["mode"]?.int64Value ?? 0o644
        switch openChecked(policy, path: path, access: access, mode: mode) {
        case .refused(let decision): return decision
        case .opened(let opened):
            return .granted(["path": .string(path)], fds: [opened.fd], rule: opened.rule.pointer)
        }
    }

    static func read(_ policy: ServicePolicy, _ body: JSONObject, maxFrame: Int) -> ServiceDecision {
        let path = body["path"]?.stringValue ?? ""
        let maxBytes = Int(body["max_bytes"]?.int64Value ?? 65_536)
        let opened: Opened
        switch openChecked(policy, path: path, access: [.read], mode: 0) {
        case .refused(let decision): return decision
        case .opened(let result): opened = result
        }
        let rule = opened.rule.pointer
        guard opened.size <= Int64(maxBytes) else {
            return .failed(.tooLarge, "\(path) is \(opened.size) bytes, more than max_bytes \(maxBytes)", rule: rule)
        }
        guard let content = readAll(opened.fd, limit: maxBytes, expected: Int(opened.size)) else {
            return .failed(.ioError, "reading \(path): \(errorText(errno))", rule: rule)
        }
        guard content.count <= maxBytes else {
            return .failed(.tooLarge, "\(path) grew past max_bytes \(maxBytes) while it was read", rule: rule)
        }
        var reply = JSONObject()
        if let text = String(validating: content, as: UTF8.self) {
            reply["encoding"] = "utf-8"
            reply["content"] = .string(text)
        } else {
            reply["encoding"] = "base64"
            reply["content"] = .string(Base64.encode(content))
        }
        reply["size"] = .number(JSONNumber(content.count))
        // The reply must fit the helper's frame limit, or the broker could not send it.
        let frameBytes = JSONValue.object(reply).serialized().count + 64
        guard frameBytes <= maxFrame else {
            return .failed(.tooLarge, "the content of \(path) does not fit a \(maxFrame)-byte frame", rule: rule)
        }
        return .granted(reply, rule: rule)
    }

    /// Picks the rule, opens beneath its directory, checks the result is a regular file.
    private static func openChecked(_ policy: ServicePolicy, path: String, access: FileAccess, mode: Int64)
        -> Opening
    {
        if let problem = PathCheck.problem(path) {
            return .refused((.denied("\(path): \(problem); paths must be absolute and normalised",
                                                  reason: "bad_path")))
        }
        let flags: Int32
        switch openFlags(access) {
        case .problem(let message): return .refused(.failed(.invalid, message, rule: nil))
        case .flags(let value): flags = value
        }
        var requested = path
        let (covered, granting) = requested.withUTF8 { bytes -> (FileRule?, (FileRule, FileRule.Beneath)?) in
            var covered: FileRule?
            for rule in policy.files {
                guard let beneath = rule.beneath(bytes) else { continue }
                if access.isSubset(of: rule.access) { return (rule, (rule, beneath)) }
                covered = covered ?? rule
            }
            return (covered, nil)
        }
        guard let (rule, beneath) = granting else {
            if let covered {
                let wanted = access.names.joined(separator: ", ")
                return .refused((.denied("\(path): the rule does not grant \(wanted)", reason: "access",
                                                      rule: covered.pointer)))
            }
            return .refused((.denied("\(path) is outside every files rule", reason: "no_rule")))
        }
        let fd = openBeneath(rule, beneath, path: path, flags: flags, mode: mode)
        guard fd >= 0 else {
            return .refused((errnoDecision(errno, path: path, rule: rule.pointer)))
        }
        let owned = OwnedFD(adopting: fd)
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            return .refused((.failed(.ioError, "fstat \(path): \(errorText(errno))", rule: rule.pointer)))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .refused((.failed(.isDirectory, "\(path) is a directory", rule: rule.pointer)))
        default:
            return .refused((.denied("\(path) is not a regular file", reason: "not_regular",
                                                  rule: rule.pointer)))
        }
        // F_SETFL takes only the status flags (O_APPEND...), so the open flags without
        // O_NONBLOCK set exactly what was asked for, in one call instead of a get and a set.
        guard fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            return .refused((.failed(.ioError, "fcntl \(path): \(errorText(errno))", rule: rule.pointer)))
        }
        return .opened(Opened(fd: owned, rule: rule, size: Int64(info.st_size)))
    }

    /// openat2 beneath the rule's directory, so the kernel resolves every component inside
    /// it; the name is the requested path's own bytes. Returns the descriptor, or -1 and errno.
    private static func openBeneath(_ rule: FileRule, _ beneath: FileRule.Beneath, path: String, flags: Int32,
                                    mode: Int64) -> Int32
    {
        var resolve = CPRIVSEP_RESOLVE_BENEATH | CPRIVSEP_RESOLVE_NO_MAGICLINKS
        if !rule.symlinks { resolve |= CPRIVSEP_RESOLVE_NO_SYMLINKS }
        return path.withCString { requested in
            let name: UnsafePointer<CChar>
            switch beneath {
            case .directory: name = currentDirectory
            case .suffix(let offset): name = requested + offset
            }
            var fd: Int32
            repeat {
                fd = cprivsep_openat2(rule.directory.rawValue, name, UInt64(UInt32(bitPattern: flags)), UInt64(mode),
                                      UInt64(resolve))
            } while fd < 0 && errno == EINTR
            return fd
        }
    }

    private static var currentDirectory: UnsafePointer<CChar> {
        let dot: StaticString = "."
        return UnsafeRawPointer(dot.utf8Start).assumingMemoryBound(to: CChar.self)
    }

    enum OpenFlags: Equatable {
        case flags(Int32)
        case problem(String)
    }

    /// open(2) flags for a set of accesses; create and truncate need write or append.
    static func openFlags(_ access: FileAccess) -> OpenFlags {
        let read = access.contains(.read)
        let write = access.contains(.write) || access.contains(.append)
        guard read || write else { return .problem("access must include read, write or append") }
        if (access.contains(.create) || access.contains(.truncate)) && !write {
            return .problem("create and truncate need write or append access")
        }
        var flags = read && write ? O_RDWR : write ? O_WRONLY : O_RDONLY
        if access.contains(.append) { flags |= O_APPEND }
        if access.contains(.create) { flags |= O_CREAT }
        if access.contains(.truncate) { flags |= O_TRUNC }
        return .flags(flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
    }

    /// The code for an openat2 errno.
    static func errnoDecision(_ error: Int32, path: String, rule: String) -> ServiceDecision {
        let text = "\(path): \(errorText(error))"
        switch error {
        case ENOENT: return .failed(.notFound, text, rule: rule)
        case EEXIST: return .failed(.exists, text, rule: rule)
        case EISDIR: return .failed(.isDirectory, text, rule: rule)
        case ENOTDIR: return .failed(.notDirectory, text, rule: rule)
        // ELOOP: a symlink where none may be; EXDEV: resolution tried to leave the directory.
        case ELOOP: return .denied("\(text) (a symlink on the path)", reason: "symlink", rule: rule)
        case EXDEV: return .denied("\(text) (resolution would leave the rule's directory)", reason: "escape", rule: rule)
        case EACCES, EPERM, EROFS, ETXTBSY: return .denied(text, reason: "permission", rule: rule)
        case ENXIO: return .denied("\(text) (not a regular file)", reason: "not_regular", rule: rule)
        case ENAMETOOLONG: return .failed(.invalid, text, rule: rule)
        default: return .failed(.ioError, text, rule: rule)
        }
    }

    /// Reads up to `limit + 1` bytes (one more than allowed, to see a file that grew).
    private static func readAll(_ fd: OwnedFD, limit: Int, expected: Int) -> [UInt8]? {
        var content: [UInt8] = []
        content.reserveCapacity(min(max(expected, 0), limit) + 1)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while content.count <= limit {
            let want = min(chunk.count, limit + 1 - content.count)
            let count = chunk.withUnsafeMutableBytes { readFD(fd.rawValue, $0.baseAddress, want) }
            if count < 0 { return nil }
            if count == 0 { break }
            content.append(contentsOf: chunk[0..<count])
        }
        return content
    }
}

func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// RFC 4648 base64 with padding.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)],
                    alphabet[Int(value & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let value = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            out += [alphabet[Int(value >> 18 & 63)], alphabet[Int(value >> 12 & 63)]]
            out += rest == 2 ? [alphabet[Int(value >> 6 & 63)], UInt8(ascii: "=")] : [UInt8(ascii: "="), UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
