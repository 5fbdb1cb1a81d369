// The client side of the broker's control socket, shared by status, tap, restart and stop.
import ArgumentParser
import Glibc
import PrivSepJSON
import PrivSepWire

/// Where the control socket is.
struct ControlSocketOptions: ParsableArguments {
    @Option(name: .long, help: "The broker's control socket (the config's control_socket).")
    var socket: String = "/run/privsep/control.sock"
}

/// A control-socket failure (exit status 1, not a usage error).
struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One conversation with the broker's control socket.
struct ControlSession {
    let connection: Connection
    private var nextID: Int64 = 1

    init(path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError("socket: \(String(cString: strerror(errno)))") }
        let owned = OwnedFD(adopting: fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ControlError("\(path): path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw ControlError("\(path): \(String(cString: strerror(errno)))") }
        connection = Connection(socket: owned, peer: .broker, limits: WireLimits(maxFrame: 16 << 20))
    }

    /// Sends a request; returns its id.
    mutating func send(_ type: String, _ body: JSONObject = [:]) throws -> Int64 {
        let id = nextID
        nextID += 1
        try connection.sendAll(Envelope.request(type, id: id, body: body))
        return id
    }

    /// The next reply to `id`; an error reply becomes a thrown error naming its code.
    func reply(to id: Int64) throws -> Envelope {
        while true {
            guard let incoming = try connection.receive() else {
                throw ControlError("the broker closed the control connection (not the socket's owner?)")
            }
            guard case .message(let message) = incoming, message.envelope.re == id else { continue }
            if let error = message.envelope.error { throw ControlError("\(error.code): \(error.message)") }
            return message.envelope
        }
    }

    /// Sends a request and waits for its final reply.
    mutating func call(_ type: String, _ body: JSONObject = [:]) throws -> JSONObject {
        let id = try send(type, body)
        return try reply(to: id).body
    }
}

/// Writes a line to stderr.
func printError(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    _ = write(STDERR_FILENO, &bytes, bytes.count)
}

/// Writes a line to stdout at once (tap output must not sit in a buffer).
func printLine(_ text: String) {
    var bytes = Array((text + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}
