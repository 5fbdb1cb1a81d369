// privsep gen: the committed generated files are current, and the generated Swift types (in
// Generated.swift, compiled into this target) encode and decode real bodies.
import PrivSepHelper
import PrivSepJSON
import PrivSepTools
import Testing

@Suite struct GeneratedTests {
    static let swiftSources = ["schema", "examples/demo/schema"]

    func load(_ directories: [String]) throws -> SchemaSet {
        try SchemaSet.load(directories: directories.map(Repo.path))
    }

    @Test func generatedSwiftIsCurrent() throws {
        let fresh = SwiftGenerator.generate(try load(Self.swiftSources), sourceNote: "--schema schema --schema examples/demo/schema")
        let committed = try Repo.read("Tests/PrivSepToolsTests/Generated.swift")
        #expect(fresh == committed, """
            Tests/PrivSepToolsTests/Generated.swift is stale; regenerate with
            privsep gen swift --schema schema --schema examples/demo/schema -o Tests/PrivSepToolsTests/Generated.swift
            """)
    }

    @Test func messagesReferenceIsCurrent() throws {
        let fresh = DocsGenerator.generate(try load(["schema"]), sourceNote: "--schema schema")
        let committed = try Repo.read("docs/messages.md")
        #expect(fresh == committed, "docs/messages.md is stale; regenerate with privsep gen docs --schema schema -o docs/messages.md")
    }

    @Test func bodiesEncodeAsTheSchemaSays() throws {
        let encoder = JSONValueEncoder()
        #expect(try encoder.encode(DemoAddBody(a: 2, b: 40)).jsonText == #"{"a":2,"b":40}"#)
        #expect(DemoAddBody.messageType == "demo.add")
        // Optional members are left out; snake_case members keep their wire names.
        let read = PrivsepFileReadBody(path: "/etc/hostname", maxBytes: 100)
        #expect(try encoder.encode(read).jsonText == #"{"path":"/etc/hostname","max_bytes":100}"#)
        #expect(try encoder.encode(PrivsepFileReadBody(path: "/x")).jsonText == #"{"path":"/x"}"#)
        #expect(PrivsepFileOpenReply.fds == 1)
    }

    @Test func referencesAcrossFilesAndUnionsBecomeSwiftTypes() throws {
        let encoder = JSONValueEncoder()
        // restrict.json refers to hello.json#/$defs/type_list: an array of strings.
        let restrict: [String]? = PrivsepRestrictBody(maySend: ["a.b"]).maySend
        #expect(restrict == ["a.b"])
        #expect(try encoder.encode(PrivsepRestrictBody(maySend: ["a.b"])).jsonText == #"{"may_send":["a.b"]}"#)
        // net.json's ip_address is anyOf ipv4 | ipv6, both strings: a String.
        let listen = PrivsepNetListenBody(address: "127.0.0.1", port: 8080)
        #expect(try encoder.encode(listen).jsonText == #"{"address":"127.0.0.1","port":8080}"#)
    }

    @Test func repliesDecode() throws {
        let decoder = JSONValueDecoder()
        let hello = try JSONParser.parse(
            #"{"helper":"web","protocol":1,"max_frame":65536,"may_send":["a.b"],"serves":[],"receives":[]}"#)
        let reply = try decoder.decode(PrivsepHelloReply.self, from: hello)
        #expect(reply.helper == "web")
        #expect(reply.maxFrame == 65536)
        #expect(reply.maySend == ["a.b"])
        let log = try decoder.decode(PrivsepLogBody.self, from: try JSONParser.parse(#"{"message":"hi","fields":{"n":1,"ok":true}}"#))
        #expect(log.fields?["ok"] == .bool(true))
        #expect(log.level == nil)
        // A required member missing is a decoding error, not a default.
        #expect(throws: (any Error).self) { try decoder.decode(DemoAddReply.self, from: try JSONParser.parse("{}")) }
    }
}
