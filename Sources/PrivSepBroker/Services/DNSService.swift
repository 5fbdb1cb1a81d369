// privsep.dns.resolve: getaddrinfo in the broker for helpers that have no resolver, limited
// to the names in the helper's `dns` policy.
//
// The broker's loop is single-threaded, so a lookup waits at most `Resolver.timeoutMs`
// (getaddrinfo_a and gai_suspend, in CPrivSep/services.c); a lookup still running then is
// answered privsep.timeout and left to finish in glibc's resolver thread (a bounded number).

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire

enum DNSService {
    static func resolve(_ policy: ServicePolicy, _ body: JSONObject) -> ServiceDecision {
        let name = body["name"]?.stringValue ?? ""
        guard HostName.isValid(name) else { return .failed(.invalid, "\"\(name)\" is not a host name", rule: nil) }
        let canonical = HostName.canonical(name)
        guard let index = policy.dnsNames.firstIndex(of: canonical) else {
            return .denied("resolving \(canonical) is not permitted", reason: "no_rule")
        }
        let rule = "\(policy.pointer)/dns/\(index)"
        let family: Int32
        switch body["family"]?.stringValue ?? "any" {
        case "ipv4": family = AF_INET
        case "ipv6": family = AF_INET6
        default: family = AF_UNSPEC
        }
        switch Resolver.resolve(canonical, family: family) {
        case .addresses(let found):
            return .granted(["addresses": .array(found.map { .string($0.description) })], rule: rule)
        case .failure(let code, let message):
            return .failed(code, message, rule: rule)
        }
    }
}

/// getaddrinfo with a bounded wait, reduced to distinct addresses in the resolver's order.
enum Resolver {
    /// At most this many addresses (the reply schema's bound).
    static let maxAddresses = 64
    /// The longest the broker's loop waits for one lookup.
    static let timeoutMs: Int32 = 2000

    enum Outcome {
        case addresses([IPAddress])
        case failure(ErrorCode, String)
    }

    static func resolve(_ name: String, family: Int32) -> Outcome {
        var list: UnsafeMutablePointer<addrinfo>?
        let status = cprivsep_getaddrinfo_bounded(name, family, timeoutMs, &list)
        defer { if let list { freeaddrinfo(list) } }
        guard status == 0 else {
            if status == CPRIVSEP_GAI_TIMEOUT { return .failure(.timeout, "\(name): no answer within \(timeoutMs) ms") }
            if status == CPRIVSEP_GAI_BUSY {
                return .failure(.unavailable, "\(name): too many earlier lookups are still waiting for the resolver")
            }
            let text = "\(name): \(String(cString: gai_strerror(status)))"
            // EAI_NODATA (-5) is not exported by the Glibc module.
            if status == EAI_NONAME || status == -5 || status == EAI_FAMILY { return .failure(.notFound, text) }
            return .failure(.ioError, text)
        }
        var found: [IPAddress] = []
        var entry = list
        while let current = entry, found.count < maxAddresses {
            entry = current.pointee.ai_next
            guard let socketAddress = current.pointee.ai_addr else { continue }
            let address: IPAddress?
            switch current.pointee.ai_family {
            case AF_INET:
                address = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin_addr) { IPAddress(bytes: Array($0)) }
                }
            case AF_INET6:
                address = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { IPAddress(bytes: Array($0)) }
                }
            default: address = nil
            }
            if let address, !found.contains(address) { found.append(address) }
        }
        guard !found.isEmpty else { return .failure(.notFound, "\(name): no addresses") }
        return .addresses(found)
    }
}
