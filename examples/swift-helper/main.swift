// swift-helper: a minimal privsep helper written with PrivSepHelper.
//
// It prints its sandbox state to stderr as one JSON line, connects, logs a line, serves
// `demo.upper` ({"text": s} → {"text": S}) and exits 0 on privsep.shutdown or when the broker
// closes the connection. Used by the broker demo.

import Glibc
import PrivSepHelper

/// The body of `demo.upper`, both ways.
struct Text: Codable {
    var text: String
}

/// Serves until shutdown or end of stream; the exit status.
func serve() async -> Int32 {
    let client: PrivSepClient
    do {
        client = try await PrivSepClient.connect(client: "swift-helper/1.0")
    } catch {
        complain("swift-helper: cannot connect: \(error)")
        return 1
    }
    do {
        try await client.log(message: "swift-helper ready", fields: ["helper": .string(client.hello.helper)])
        loop: for await message in client.incoming {
            switch (message.type, message.isRequest) {
            case ("demo.upper", true):
                do {
                    let request = try message.decode(Text.self)
                    try await client.reply(to: message, body: Text(text: request.text.uppercased()))
                } catch let error as DecodingError {
                    try await client.replyError(to: message, code: .invalid, message: "demo.upper: \(error)")
                }
            case ("privsep.shutdown", false):
                break loop
            case (_, true):
                try await client.replyError(to: message, code: .unknownType, message: "swift-helper does not serve \(message.type)")
            default:
                break  // events this helper has no use for
            }
        }
    } catch {
        complain("swift-helper: \(error)")
        await client.close()
        return 1
    }
    await client.close()
    return 0
}

/// uid, gid, NoNewPrivs and Seccomp from /proc/self/status, and whether / is read-only.
func sandboxSummary() -> JSONValue {
    var summary: JSONObject = ["helper": "swift-helper"]
    let status = readText("/proc/self/status") ?? ""
    for line in status.split(separator: "\n") {
        let parts = line.split(whereSeparator: { $0 == ":" || $0 == "\t" || $0 == " " })
        guard parts.count >= 2, let value = Int64(parts[1]) else { continue }
        switch parts[0] {
        case "Uid": summary["uid"] = .number(JSONNumber(value))
        case "Gid": summary["gid"] = .number(JSONNumber(value))
        case "NoNewPrivs": summary["no_new_privs"] = .bool(value != 0)
        case "Seccomp": summary["seccomp"] = .number(JSONNumber(value))
        default: break
        }
    }
    var root = statvfs()
    if statvfs("/", &root) == 0 {
        summary["root_read_only"] = .bool(root.f_flag & UInt(ST_RDONLY) != 0)
    }
    return .object(summary)
}

func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 1 << 20 {
        let count = read(fd, &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { break }
        bytes += chunk[0 ..< count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func complain(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

complain(sandboxSummary().jsonText)
exit(await serve())
