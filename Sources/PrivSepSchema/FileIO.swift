// Reading schema files and walking schema directories with plain syscalls (no Foundation).
import Glibc

/// Bounded file-system access for schema loading.
public enum SchemaFiles {
    /// Largest schema or instance file read (bytes).
    public static let maxFileBytes = 16 << 20
    /// Most files a directory walk returns, and the deepest it descends.
    public static let maxFiles = 10_000
    public static let maxDirectoryDepth = 16

    /// The whole file at `path`, at most `limit` bytes; an error names the path and errno.
    public static func read(_ path: String, limit: Int = maxFileBytes) throws(SchemaError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(path, "cannot read")
            }
            if count == 0 { break }
            guard bytes.count + count <= limit else {
                throw SchemaError(location: path, pointer: "", message: "file is larger than \(limit) bytes")
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    /// Whether `path` names a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Every `*.json` file below `directory`, as paths relative to it, sorted; hidden entries skipped.
    public static func jsonFiles(in directory: String) throws(SchemaError) -> [String] {
        var found: [String] = []
        try walk(directory, relative: "", depth: 0, into: &found)
        return found.sorted()
    }

    private static func walk(_ root: String, relative: String, depth: Int, into found: inout [String]) throws(SchemaError) {
        let path = relative.isEmpty ? root : root + "/" + relative
        guard depth <= maxDirectoryDepth else {
            throw SchemaError(location: path, pointer: "", message: "directories nested deeper than \(maxDirectoryDepth)")
        }
        guard let handle = opendir(path) else { throw failure(path, "cannot open directory") }
        defer { closedir(handle) }
        var entries: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix(".") { continue }
            entries.append(name)
        }
        for name in entries.sorted() {
            let child = relative.isEmpty ? name : relative + "/" + name
            let full = root + "/" + child
            if isDirectory(full) {
                try walk(root, relative: child, depth: depth + 1, into: &found)
            } else if name.hasSuffix(".json") {
                guard found.count < maxFiles else {
                    throw SchemaError(location: root, pointer: "", message: "more than \(maxFiles) schema files")
                }
                found.append(child)
            }
        }
    }

    private static func failure(_ path: String, _ what: String) -> SchemaError {
        let cause = String(cString: strerror(errno))
        return SchemaError(location: path, pointer: "", message: "\(what): \(cause)")
    }

    /// `path` made absolute against the working directory, with `.` and `..` segments removed.
    public static func absolute(_ path: String) -> String {
        var full = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            if getcwd(&buffer, buffer.count) != nil {
                let cwd = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                full = cwd + "/" + path
            }
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}
