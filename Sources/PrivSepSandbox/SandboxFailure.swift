// How a failed sandbox step reaches the caller: one short line on a CLOEXEC pipe. A successful
// exec closes the pipe with nothing written, so "EOF and no bytes" means the program runs.
#if canImport(Glibc)
import Glibc
#endif

/// The steps of the launcher's sequence (Sequence.swift), in order, by the name used in failures.
public enum SandboxStep: String, Sendable, CaseIterable {
    case options
    case pdeathsig
    case signals
    case fds
    case setsid
    case namespaces
    case mounts
    case caps
    case uid
    case rearm
    case rlimits
    case noNewPrivs = "no-new-privs"
    case landlock
    case environment
    case seccomp
    case exec
}

/// A step that failed: the program was not executed.
public struct SandboxFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let step: SandboxStep
    /// errno of the failing call (EINVAL for bad options).
    public let errno: Int32
    /// The path involved, or the option for step `options`; may be empty.
    public let path: String
    /// What was being done, in a few words.
    public let detail: String

    public init(step: SandboxStep, errno: Int32, path: String = "", detail: String = "") {
        self.step = step
        self.errno = errno
        self.path = path
        self.detail = detail
    }

    public var description: String {
        var text = "sandbox step '\(step.rawValue)' failed: \(SandboxFailure.errnoName(errno))"
        if !detail.isEmpty { text += ": \(detail)" }
        if !path.isEmpty { text += " (\(path))" }
        return text
    }

    /// "ENOENT (No such file or directory)"-style text for an errno value.
    public static func errnoName(_ code: Int32) -> String {
        guard let cstr = strerror(code) else { return "errno \(code)" }
        return "errno \(code) (\(String(cString: cstr)))"
    }
}

// MARK: - The line format

/// `privsep-sandbox-failure step=<name> errno=<n> path=<escaped> detail=<escaped>\n`, where
/// escaped bytes outside 0x21...0x7E, and `%`, are written as %XX. At most `maxLineBytes`.
extension SandboxFailure {
    static let prefix = "privsep-sandbox-failure"
    /// The reader never accepts more than this (paths are at most 4 KiB, escaped up to 12 KiB).
    public static let maxLineBytes = 16_384

    /// The encoded line, newline included.
    public func encoded() -> [UInt8] {
        var out = Array("\(SandboxFailure.prefix) step=\(step.rawValue) errno=\(errno) path=".utf8)
        SandboxFailure.escape(path, into: &out)
        out += Array(" detail=".utf8)
        SandboxFailure.escape(detail, into: &out)
        if out.count > SandboxFailure.maxLineBytes - 1 { out.removeLast(out.count - (SandboxFailure.maxLineBytes - 1)) }
        out.append(0x0A)
        return out
    }

    private static func escape(_ text: String, into out: inout [UInt8]) {
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8.prefix(4096) {
            if byte > 0x20 && byte < 0x7F && byte != 0x25 {
                out.append(byte)
            } else {
                out += [0x25, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
    }

    private static func unescape(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == 0x25 {
                guard i + 2 < bytes.endIndex, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// Decodes one line (with or without its newline); nil when it is not a failure line.
    public static func decode(_ line: [UInt8]) -> SandboxFailure? {
        guard line.count <= maxLineBytes else { return nil }
        var body = line[...]
        if body.last == 0x0A { body = body.dropLast() }
        let fields = body.split(separator: 0x20, omittingEmptySubsequences: false)
        guard fields.count == 5, String(decoding: fields[0], as: UTF8.self) == prefix else { return nil }
        func value(_ field: ArraySlice<UInt8>, _ key: String) -> ArraySlice<UInt8>? {
            let k = Array((key + "=").utf8)
            guard field.starts(with: k) else { return nil }
            return field.dropFirst(k.count)
        }
        guard let stepBytes = value(fields[1], "step"),
              let step = SandboxStep(rawValue: String(decoding: stepBytes, as: UTF8.self)),
              let errnoBytes = value(fields[2], "errno"), errnoBytes.count <= 6,
              let code = Int32(String(decoding: errnoBytes, as: UTF8.self)),
              let pathBytes = value(fields[3], "path"), let path = unescape(pathBytes),
              let detailBytes = value(fields[4], "detail"), let detail = unescape(detailBytes)
        else { return nil }
        return SandboxFailure(step: step, errno: code, path: path, detail: detail)
    }
}

/// The result of reading a launcher's error pipe to EOF.
public enum SandboxLaunchResult: Sendable, Equatable {
    /// The pipe closed with nothing written: the program was executed.
    case executed
    /// A step failed; the program was not executed.
    case failed(SandboxFailure)
    /// The pipe held something that is not a failure line (bytes kept, at most maxLineBytes).
    case garbled([UInt8])
}

extension SandboxFailure {
    /// Reads `fd` (the read end of the error pipe) until EOF, at most `maxLineBytes`, and decodes
    /// it. Blocks: call it once the launcher has been spawned (or from your event loop when the fd
    /// is readable and you have gathered the bytes, with `decodePipeContents`).
    public static func readPipe(_ fd: Int32) -> SandboxLaunchResult {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < maxLineBytes {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                break
            }
            if n == 0 { break }
            bytes += chunk[0..<min(n, maxLineBytes - bytes.count)]
        }
        return decodePipeContents(bytes)
    }

    /// Interprets everything read from the error pipe.
    public static func decodePipeContents(_ bytes: [UInt8]) -> SandboxLaunchResult {
        if bytes.isEmpty { return .executed }
        if let failure = decode(bytes) { return .failed(failure) }
        return .garbled(Array(bytes.prefix(maxLineBytes)))
    }
}
