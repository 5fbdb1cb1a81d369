// Paths and fixtures shared by the tools tests.
import Glibc
import PrivSepJSON
import PrivSepTools

enum Repo {
    /// The repository root (this file is Tests/PrivSepToolsTests/Support.swift).
    static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func path(_ relative: String) -> String { root + "/" + relative }

    static func read(_ relative: String) throws -> String {
        String(decoding: try ToolOutput.read(path(relative), limit: 16 << 20), as: UTF8.self)
    }

    /// examples/demo/demo.json.in with its placeholders replaced, written to a temporary file.
    static func demoConfig() throws -> String {
        let text = try read("examples/demo/demo.json.in")
            .replacing("@REPO@", with: root)
            .replacing("@SWIFT_HELPER@", with: root + "/.build/debug/swift-helper")
            .replacing("@ADDER@", with: root + "/examples/demo/adder")
        var template = Array("/tmp/privsep-tools-demo.XXXXXX.json".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 5) }
        guard fd >= 0 else { throw TestFailure(text: "mkstemps failed") }
        close(fd)
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        try ToolOutput.write(Array(text.utf8), to: path)
        return path
    }
}

struct TestFailure: Error { let text: String }
