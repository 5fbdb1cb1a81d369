// The schema directory and the registry: the built-in directory, cross-file refs, and the
// `file: /pointer: problem` messages for broken interface files written to real directories.
import Foundation
import PrivSepJSON
@testable import PrivSepSchema
import Testing

/// A scratch directory under /tmp, removed when the test ends.
final class ScratchDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "privsep-schema-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ relative: String, _ text: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let repositorySchemaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("schema").path

@Test func builtinDirectoryLoadsClean() throws {
    let (registry, diagnostics) = SchemaRegistry.check(directories: [])
    for diagnostic in diagnostics { print(diagnostic) }
    #expect(diagnostics.filter { $0.severity == .error }.isEmpty)
    let names = try #require(registry).typeNames
    for expected in ["privsep.hello", "privsep.ping", "privsep.log", "privsep.introspect", "privsep.shutdown",
                     "privsep.restrict", "privsep.file.open", "privsep.file.read", "privsep.net.listen",
                     "privsep.net.connect", "privsep.dns.resolve", "privsep.user.lookup"] {
        #expect(names.contains(expected), "\(expected)")
    }
}

@Test func builtinSchemasMatchDirectory() throws {
    // The embedded copy must be regenerated (embed-builtin.sh) whenever schema/ changes.
    for file in BuiltinSchemas.files {
        let onDisk = try String(contentsOfFile: repositorySchemaDirectory + "/" + file.path, encoding: .utf8)
        #expect(onDisk == file.text + "\n", "schema/\(file.path) differs from BuiltinSchemas.swift: run Tests/PrivSepSchemaTests/embed-builtin.sh")
    }
    let files = try SchemaFiles.jsonFiles(in: repositorySchemaDirectory)
    #expect(files == BuiltinSchemas.files.map(\.path))
}

@Test func repositorySchemaDirectoryChecksClean() {
    // `privsep schema check schema/` must pass: no errors (warnings are printed, not fatal).
    let (_, diagnostics) = SchemaRegistry.check(directories: [repositorySchemaDirectory], includeBuiltin: false)
    for diagnostic in diagnostics { print(diagnostic) }
    #expect(diagnostics.filter { $0.severity == .error }.isEmpty)
}

@Test func lookupGivesCompiledSchemasAndMetadata() throws {
    let registry = try SchemaRegistry.load(directories: [])
    let open = try #require(registry["privsep.file.open"])
    #expect(open.kind == .request)
    #expect(open.fds == 0 && open.replyFds == 1)
    #expect(open.errors.contains("privsep.not_found"))
    #expect(open.body.isValid(["path": "/etc/hosts", "access": ["read"]]))
    #expect(!open.body.isValid(["path": "/etc/hosts\u{0}", "access": ["read"]]))
    #expect(!open.body.isValid(["path": "/etc/hosts", "access": ["read"], "extra": true]))
    let result = open.body.validate(["path": "", "access": []])
    #expect(!result.valid)
    #expect(result.errors.contains { $0.instanceLocation == "/path" })
    #expect(result.errors.contains { $0.instanceLocation == "/access" && $0.keywordLocation.hasSuffix("/minItems") })
    let listen = try #require(registry["privsep.net.listen"])
    #expect(listen.body.isValid(["address": "127.0.0.1", "port": 8080]))
    #expect(!listen.body.isValid(["address": "127.0.0.300", "port": 8080]), "formats are asserted for message schemas")
    let shutdown = try #require(registry["privsep.shutdown"])
    #expect(shutdown.kind == .event && shutdown.reply == nil)
}

/// file.json $defs/path, through the file.open reply: absolute, no '.' or '..' segment, no '//',
/// no trailing '/' except '/' itself, no NUL.
@Test func fileOpenReplyPathIsAbsoluteAndNormalised() throws {
    let registry = try SchemaRegistry.load(directories: [])
    let reply = try #require(registry["privsep.file.open"]?.reply)
    let accepted = ["/", "/a", "/a/b", "/a.b", "/..a", "/a..", "/...", "/.a/b", "/a/b.", "/tmp/mb/work/data/small.txt",
                    "/é/💩", "/a b", "/a\nb", "/" + String(repeating: "a", count: 4095)]
    let rejected = ["", "a", "a/b", "./a", "//", "/a//b", "//a", "/a/", "/a/b/", "/.", "/..", "/a/.", "/a/..", "/./a",
                    "/../a", "/a/./b", "/a/../b", "/a\u{0}b", "/\u{0}", "\u{0}", "/\n/", "/é/",
                    "/" + String(repeating: "a", count: 4096)]
    for path in accepted { #expect(reply.isValid(["path": .string(path)]), "\(path.debugDescription)") }
    for path in rejected { #expect(!reply.isValid(["path": .string(path)]), "\(path.debugDescription)") }
    // The earlier form of the definition, kept to show the rewrite changed no answer but one: it
    // let a '/' after a line terminator through, since `.` does not match one.
    let earlier = try compile(##"""
        {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^/[^\\u0000]*$",
         "not": {"pattern": "//|/\\.{1,2}(/|$)|./$"}}
        """##)
    for path in accepted + rejected where path != "/\n/" {
        #expect(earlier.isValid(.string(path)) == reply.isValid(["path": .string(path)]), "\(path.debugDescription)")
    }
    #expect(earlier.isValid("/\n/"))
}

@Test func crossFileRelativeReferences() throws {
    let dir = try ScratchDirectory()
    try dir.write("common/types.json", """
        {"interface": "app.common", "description": "shared", "$defs": {"name": {"type": "string", "maxLength": 8}},
         "messages": {"app.common.noop": {"kind": "event", "description": "nothing", "body": {"type": "object", "additionalProperties": false}}}}
        """)
    try dir.write("app/greeter.json", """
        {"interface": "app.greeter", "description": "greets",
         "messages": {"app.greeter.hello": {"kind": "request", "description": "say hello",
            "body": {"type": "object", "properties": {"who": {"$ref": "../common/types.json#/$defs/name"}}, "required": ["who"], "additionalProperties": false},
            "reply": {"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": false}}}}
        """)
    let registry = try SchemaRegistry.load(directories: [dir.path])
    let hello = try #require(registry["app.greeter.hello"])
    #expect(hello.body.isValid(["who": "bob"]))
    #expect(!hello.body.isValid(["who": "a very long name"]))
    #expect(registry["privsep.ping"] != nil, "the built-in directory is always loaded")
}

/// Loads `files` into a scratch directory and returns the error lines.
func problems(_ files: [String: String]) throws -> [String] {
    let dir = try ScratchDirectory()
    for (name, text) in files { try dir.write(name, text) }
    let (_, diagnostics) = SchemaRegistry.check(directories: [dir.path])
    return diagnostics.map { $0.description.replacingOccurrences(of: dir.path, with: "DIR") }
}

@Test func badInterfaceFileNamesFileAndPointer() throws {
    let lines = try problems(["bad.json": """
        {"interface": "app.bad", "description": "x",
         "messages": {"app.bad.go": {"kind": "request", "description": "go", "body": {"type": "object", "additionalProperties": false}, "fds": 9, "reply": true}}}
        """])
    print(lines)
    #expect(lines.contains { $0.hasPrefix("error: DIR/bad.json: /messages/app.bad.go/fds: ") })
}

@Test func registryReportsEachKindOfProblem() throws {
    let lines = try problems([
        "dangling.json": """
            {"interface": "app.d", "description": "x", "messages": {"app.d.x": {"kind": "event", "description": "x",
              "body": {"$ref": "#/$defs/missing"}}}}
            """,
        "typo.json": """
            {"interface": "app.t", "description": "x", "messages": {"app.t.x": {"kind": "event", "description": "x",
              "body": {"type": "object", "properties": {"n": {"type": "integer", "maximun": 3, "x-sensitive": true}}, "additionalProperties": false}}}}
            """,
        "open.json": """
            {"interface": "app.o", "description": "x", "messages": {"app.o.x": {"kind": "event", "description": "x",
              "body": {"type": "object", "properties": {"n": {"type": "string", "format": "color", "pattern": "^(a+)+$"}}}}}}
            """,
        "dup.json": """
            {"interface": "privsep.ping", "description": "x", "messages": {"privsep.ping": {"kind": "event", "description": "x",
              "body": {"type": "object", "additionalProperties": false}}}}
            """,
        "broken.json": "{\"interface\": ",
    ])
    for line in lines { print(line) }
    #expect(lines.contains { $0.hasPrefix("error: DIR/dangling.json: /messages/app.d.x/body/$ref: ") && $0.contains("dangling") })
    #expect(lines.contains { $0.hasPrefix("error: DIR/typo.json: /messages/app.t.x/body/properties/n/maximun: unknown keyword") })
    #expect(!lines.contains { $0.contains("x-sensitive") }, "x- keywords are extension annotations")
    #expect(lines.contains { $0.hasPrefix("warning: DIR/open.json: /messages/app.o.x/body: object schema is open") })
    #expect(lines.contains { $0.hasPrefix("error: DIR/open.json: /messages/app.o.x/body/properties/n/format: format \"color\"") })
    #expect(lines.contains { $0.hasPrefix("warning: DIR/open.json: /messages/app.o.x/body/properties/n/pattern: ") })
    #expect(lines.contains { $0.hasPrefix("error: DIR/dup.json: /messages/privsep.ping: duplicate type privsep.ping") })
    #expect(lines.contains { $0.hasPrefix("error: DIR/broken.json: /: not strict JSON") })
    #expect(throws: SchemaRegistryError.self) { try SchemaRegistry.load(directories: [NSTemporaryDirectory() + "/does-not-exist-privsep"]) }
}

@Test func configSchemaAcceptsAnnotatedExampleShape() throws {
    let schema = try SchemaRegistry.builtinSchema("config.schema.json")
    let config: JSONValue = try JSONParser.parse("""
        {"log": {"level": "info", "format": "json"}, "shutdown_grace_ms": 2000,
         "helpers": {"web": {"command": ["/usr/bin/httpd", "-p", "8080"], "user": "dynamic",
            "sandbox": {"profile": "default", "rlimits": {"nofile": 64, "cpu": "unlimited"}, "keep_env": ["LANG"]},
            "may_send": ["privsep.net.listen", "privsep.file.open"], "serves": [], "receives": ["privsep.shutdown"],
            "limits": {"max_frame": 65536}, "restart": {"policy": "on-failure", "backoff_ms": 100}, "required": true,
            "files": [{"path": "/srv/www", "access": ["read"], "recursive": true}],
            "net": {"listen": [{"address": "0.0.0.0", "port": 8080}]}}}}
        """)
    #expect(schema.validate(config).errors == [])
    let bad: JSONValue = try JSONParser.parse(#"{"helpers": {"web": {"command": ["relative"], "sandbx": {}}}}"#)
    let result = schema.validate(bad)
    #expect(!result.valid)
    #expect(result.errors.contains { $0.instanceLocation == "/helpers/web/command/0" })
}
