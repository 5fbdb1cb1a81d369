// Runs the vendored JSON-Schema-Test-Suite (draft 2020-12) through the validator, both the fast
// path (isValid) and the full one (validate), and prints the counts.
import Foundation
import PrivSepJSON
@testable import PrivSepSchema
import Testing

enum Suite {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("JSONSchemaTestSuite")
    static let limits = JSONLimits(maxDepth: 256, maxNumberLength: 1000)

    static func parse(_ url: URL) throws -> JSONValue {
        let data = try Data(contentsOf: url)
        return try JSONParser.parse([UInt8](data), limits: limits)
    }

    /// Serves http://localhost:1234/ from the vendored remotes, as the suite expects.
    static func remote(_ uri: String) -> JSONValue? {
        let prefix = "http://localhost:1234/"
        guard uri.hasPrefix(prefix) else { return nil }
        let path = root.appendingPathComponent("remotes").appendingPathComponent(String(uri.dropFirst(prefix.count)))
        return try? parse(path)
    }

    struct Outcome {
        var passed = 0
        var failed: [String] = []
    }

    /// Runs every case of the given files; `assertFormat` for the format files.
    static func run(_ files: [URL], assertFormat: Bool) throws -> Outcome {
        var outcome = Outcome()
        for file in files.sorted(by: { $0.path < $1.path }) {
            guard case .array(let groups) = try parse(file) else { continue }
            for group in groups {
                let description = group["description"]?.stringValue ?? "?"
                let compiler = SchemaCompiler(options: SchemaOptions(assertFormat: assertFormat))
                compiler.resolver = remote
                let schema: Schema
                do {
                    try compiler.add(group["schema"] ?? .null, uri: "https://privsep.test/suite/schema.json")
                    schema = try compiler.compile("https://privsep.test/suite/schema.json")
                } catch {
                    for test in group["tests"]?.arrayValue ?? [] {
                        outcome.failed.append("\(file.lastPathComponent): \(description): \(test["description"]?.stringValue ?? "?"): compile error \(error)")
                    }
                    continue
                }
                for test in group["tests"]?.arrayValue ?? [] {
                    let expected = test["valid"]?.boolValue ?? false
                    let instance = test["data"] ?? .null
                    let fast = schema.isValid(instance)
                    let full = schema.validate(instance)
                    if fast == expected && full.valid == expected && (expected || !full.errors.isEmpty) {
                        outcome.passed += 1
                    } else {
                        outcome.failed.append("\(file.lastPathComponent): \(description): \(test["description"]?.stringValue ?? "?"): expected \(expected), fast \(fast), full \(full.valid)")
                    }
                }
            }
        }
        return outcome
    }

    static func files(_ directory: String) throws -> [URL] {
        let url = root.appendingPathComponent("tests/draft2020-12").appendingPathComponent(directory)
        return try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
    }
}

@Test func requiredSuite() throws {
    let outcome = try Suite.run(try Suite.files(""), assertFormat: false)
    let total = outcome.passed + outcome.failed.count
    print("JSON-Schema-Test-Suite draft2020-12: \(outcome.passed)/\(total)")
    for failure in outcome.failed { print("  FAIL \(failure)") }
    #expect(outcome.failed.isEmpty)
    #expect(total == 1299)
}

@Test func optionalSuite() throws {
    let outcome = try Suite.run(try Suite.files("optional"), assertFormat: false)
    let total = outcome.passed + outcome.failed.count
    print("JSON-Schema-Test-Suite draft2020-12 optional (not format): \(outcome.passed)/\(total)")
    for failure in outcome.failed { print("  optional FAIL \(failure)") }
}

@Test func formatSuite() throws {
    var passed = 0
    var total = 0
    for file in try Suite.files("optional/format").sorted(by: { $0.path < $1.path }) {
        let outcome = try Suite.run([file], assertFormat: true)
        let name = file.deletingPathExtension().lastPathComponent
        passed += outcome.passed
        total += outcome.passed + outcome.failed.count
        print("format \(name): \(outcome.passed)/\(outcome.passed + outcome.failed.count)")
        if StringFormat(rawValue: name) != nil {
            for failure in outcome.failed { print("  format FAIL \(failure)") }
            #expect(outcome.failed.isEmpty, "format \(name)")
        }
    }
    print("JSON-Schema-Test-Suite draft2020-12 optional/format: \(passed)/\(total)")
}
