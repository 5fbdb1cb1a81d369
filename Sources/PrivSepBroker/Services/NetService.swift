// privsep.net.listen and privsep.net.connect: sockets made by the broker, in the broker's
// network namespace, for helpers that have none. A helper that may listen on 0.0.0.0:80 gets a
// bound, listening descriptor; it never needs root or a network of its own.
//
// The broker's loop is single-threaded, so connect is non-blocking with a bounded wait
// (`connectTimeoutMs` in all, across the addresses tried): the loop stalls at most that long.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire

enum NetService {
    /// The longest the broker waits for connections to complete, all addresses together.
    static let connectTimeoutMs: Int64 = 1000
    /// Addresses of one name tried by connect.
    static let maxConnectAddresses = 4

    static func listen(_ policy: ServicePolicy, _ body: JSONObject) -> ServiceDecision {
        let text = body["address"]?.stringValue ?? ""
        guard let address = IPAddress(text) else {
            return .failed(.invalid, "\"\(text)\" is not an IPv4 or IPv6 address", rule: nil)
        }
        guard let port = body["port"]?.int64Value.flatMap(UInt16.init(exactly:)) else {
            return .failed(.invalid, "port must be 0...65535", rule: nil)
        }
        let proto = NetProtocol(rawValue: body["protocol"]?.stringValue ?? "tcp") ?? .tcp
        let backlog = Int32(clamping: body["backlog"]?.int64Value ?? 128)
        let endpoint = "\(address):\(port)/\(proto.rawValue)"
        guard let rule = policy.listen.first(where: { $0.address == address && $0.port == port && $0.proto == proto })
        else {
            return .denied("listening on \(endpoint) is not permitted", reason: "no_rule")
        }
        let kind = proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = socket(address.family, kind | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failed(.ioError, "socket: \(errorText(errno))", rule: rule.pointer) }
        let socketFD = OwnedFD(adopting: fd)
        var one: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        // A restarted helper must be able to listen again while old connections linger.
        if proto == .tcp { setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, size) }
        // "::" means IPv6 only; a rule for 0.0.0.0 is a separate rule.
        if address.family == AF_INET6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, size) }
        let bound = withSocketAddress(address, port) { bind(fd, $0, $1) }
        guard bound == 0 else {
            let code = errno
            if code == EADDRINUSE { return .failed(.addressInUse, "\(endpoint) is in use", rule: rule.pointer) }
            if code == EACCES { return .denied("bind \(endpoint): \(errorText(code))", reason: "permission", rule: rule.pointer) }
            return .failed(.ioError, "bind \(endpoint): \(errorText(code))", rule: rule.pointer)
        }
        if proto == .tcp {
            guard Glibc.listen(fd, backlog) == 0 else {
                return .failed(.ioError, "listen \(endpoint): \(errorText(errno))", rule: rule.pointer)
            }
        }
        let boundPort = localPort(fd) ?? port
        return .granted(["address": .string(address.description), "port": .number(JSONNumber(Int64(boundPort)))],
                        fds: [socketFD], rule: rule.pointer)
    }

    static func connect(_ policy: ServicePolicy, _ body: JSONObject) -> ServiceDecision {
        let host = body["host"]?.stringValue ?? ""
        guard let port = body["port"]?.int64Value.flatMap(UInt16.init(exactly:)), port != 0 else {
            return .failed(.invalid, "port must be 1...65535", rule: nil)
        }
        let literal = IPAddress(host)
        let canonical = HostName.canonical(host)
        let rule = policy.connect.first { rule in
            guard rule.port == port else { return false }
            if let literal { return IPAddress(rule.host) == literal }
            return rule.host == canonical
        }
        guard let rule else { return .denied("connecting to \(host) port \(port) is not permitted", reason: "no_rule") }
        var addresses: [IPAddress]
        if let literal {
            addresses = [literal]
        } else {
            switch Resolver.resolve(canonical, family: AF_UNSPEC) {
            case .addresses(let found): addresses = found
            case .failure(let code, let message): return .failed(code, message, rule: rule.pointer)
            }
        }
        addresses = Array(addresses.prefix(maxConnectAddresses))
        let deadline = monotonicNanoseconds() + connectTimeoutMs * 1_000_000
        var lastError: Int32 = EHOSTUNREACH
        for address in addresses {
            switch connectOne(address, port, deadline: deadline) {
            case .connected(let fd):
                return .granted(["address": .string(address.description)], fds: [fd], rule: rule.pointer)
            case .failed(let code): lastError = code
            }
            if monotonicNanoseconds() >= deadline { break }
        }
        let text = "connect \(host) port \(port): \(errorText(lastError))"
        switch lastError {
        case ECONNREFUSED: return .failed(.refused, text, rule: rule.pointer)
        case ETIMEDOUT: return .failed(.timeout, text + " (\(connectTimeoutMs) ms)", rule: rule.pointer)
        default: return .failed(.ioError, text, rule: rule.pointer)
        }
    }

    private enum Attempt {
        case connected(OwnedFD)
        case failed(Int32)
    }

    private static func connectOne(_ address: IPAddress, _ port: UInt16, deadline: Int64) -> Attempt {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(address.family, flags, 0)
        guard fd >= 0 else { return .failed(errno) }
        let owned = OwnedFD(adopting: fd)
        let started = withSocketAddress(address, port) { Glibc.connect(fd, $0, $1) }
        if started != 0 {
            guard errno == EINPROGRESS else { return .failed(errno) }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let remaining = (deadline - monotonicNanoseconds()) / 1_000_000
                guard remaining > 0 else { return .failed(ETIMEDOUT) }
                let ready = poll(&entry, 1, Int32(clamping: remaining))
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 { return .failed(errno) }
                if ready == 0 { return .failed(ETIMEDOUT) }
                break
            }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else { return .failed(errno) }
            if failure != 0 { return .failed(failure) }
        }
        // The helper gets an ordinary blocking socket, as if it had connected itself.
        guard cps_wire_set_nonblocking(fd, 0) == 0 else { return .failed(errno) }
        return .connected(owned)
    }

    /// The port a socket is bound to.
    private static func localPort(_ fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let done = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard done == 0 else { return nil }
        // sin_port and sin6_port are both the two bytes after the family, in network order.
        return withUnsafeBytes(of: &storage) { UInt16($0[2]) << 8 | UInt16($0[3]) }
    }
}

/// Calls `body` with a sockaddr_in or sockaddr_in6 for the address and port.
func withSocketAddress<R>(_ address: IPAddress, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    if address.bytes.count == 4 {
        var ipv4 = sockaddr_in()
        ipv4.sin_family = sa_family_t(AF_INET)
        ipv4.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &ipv4.sin_addr) { $0.copyBytes(from: address.bytes) }
        return withUnsafePointer(to: &ipv4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
    var ipv6 = sockaddr_in6()
    ipv6.sin6_family = sa_family_t(AF_INET6)
    ipv6.sin6_port = port.bigEndian
    withUnsafeMutableBytes(of: &ipv6.sin6_addr) { $0.copyBytes(from: address.bytes) }
    return withUnsafePointer(to: &ipv6) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
    }
}
