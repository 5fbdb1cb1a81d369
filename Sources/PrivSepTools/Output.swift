// Files in and out for the tools: whole-file writes, and Graphviz run as a child process
// (posix_spawn, never fork: the CLI may have threads).

import Glibc

/// A tool's I/O failure: the path and the errno text.
public struct ToolIOError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }

    init(_ path: String, errno code: Int32) {
        self.path = path
        self.reason = String(cString: strerror(code))
    }

    init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
}

/// Writing a generated file or standard output.
public enum ToolOutput {
    /// Writes all of `bytes` to `path` (created or truncated, mode 0644), or to standard output
    /// when `path` is nil or `-`.
    public static func write(_ bytes: [UInt8], to path: String?) throws(ToolIOError) {
        guard let path, path != "-" else {
            try writeAll(bytes, fd: 1, name: "standard output")
            return
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ToolIOError(path, errno: errno) }
        defer { close(fd) }
        try writeAll(bytes, fd: fd, name: path)
    }

    static func writeAll(_ bytes: [UInt8], fd: Int32, name: String) throws(ToolIOError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw ToolIOError(name, errno: errno)
            }
            offset += written
        }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(ToolIOError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ToolIOError(path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ToolIOError(path, errno: errno)
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= limit else { throw ToolIOError(path, "larger than \(limit) bytes") }
            bytes += chunk[0..<count]
        }
    }
}

/// Graphviz's `dot`, run on a temporary file.
public enum Graphviz {
    /// Largest SVG accepted back from dot.
    static let maxOutputBytes = 64 << 20

    /// Whether `dot` is on PATH.
    public static var isInstalled: Bool { findProgram("dot") != nil }

    /// Renders DOT text to SVG with `dot -Tsvg`.
    public static func render(_ dot: String) throws(ToolIOError) -> [UInt8] {
        guard let program = findProgram("dot") else {
            throw ToolIOError("dot", "Graphviz is not installed (apt-get install graphviz), or use --format dot")
        }
        var template = Array("/tmp/privsep-graph.XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard directory != nil else { throw ToolIOError("/tmp", errno: errno) }
        let dir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let input = dir + "/graph.dot", output = dir + "/graph.svg"
        defer {
            unlink(input)
            unlink(output)
            rmdir(dir)
        }
        try ToolOutput.write(Array(dot.utf8), to: input)
        let status = try spawnAndWait([program, "-Tsvg", "-o", output, input])
        guard status == 0 else { throw ToolIOError(program, "exited with status \(status)") }
        return try ToolOutput.read(output, limit: maxOutputBytes)
    }

    static func findProgram(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// posix_spawn with the caller's environment; returns the exit status (or 128 + signal).
    static func spawnAndWait(_ argv: [String]) throws(ToolIOError) -> Int32 {
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for pointer in cArgs { free(pointer) } }
        let result = posix_spawn(&pid, argv[0], nil, nil, cArgs, environ)
        guard result == 0 else { throw ToolIOError(argv[0], errno: result) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ToolIOError(argv[0], errno: errno) }
        }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}
