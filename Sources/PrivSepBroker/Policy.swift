// Per-helper policy: what a helper may send, what it serves, what it receives.
//
// Deny by default: a type that is not listed is refused. Like pledge(2) and OpenSSH's monitor,
// permissions only ever shrink while a helper runs (privsep.restrict); a restart starts again
// from the configured policy, because the new process has proved nothing yet.

/// The message types one helper is allowed to use.
public struct HelperPolicy: Sendable, Equatable {
    /// Types it may send: requests (to the broker or other helpers) and events.
    public private(set) var maySend: Set<String>
    /// Request types it answers.
    public private(set) var serves: Set<String>
    /// Event types delivered to it.
    public private(set) var receives: Set<String>

    public init(maySend: Set<String>, serves: Set<String>, receives: Set<String>) {
        self.maySend = maySend
        self.serves = serves
        self.receives = receives
    }

    /// Types every helper may send whatever its config says: the handshake itself, and dropping
    /// its own permissions (which can only make it safer).
    public static let alwaysAllowed: Set<String> = ["privsep.hello", "privsep.restrict"]

    /// Keeps only the permissions also present in the given lists; a nil list leaves that set
    /// alone. Returns the types that were dropped, for the log.
    public mutating func restrict(maySend keepSend: Set<String>?, serves keepServes: Set<String>?,
                                  receives keepReceives: Set<String>?) -> [String]
    {
        var dropped: [String] = []
        if let keepSend {
            dropped += maySend.subtracting(keepSend).sorted()
            maySend.formIntersection(keepSend)
        }
        if let keepServes {
            dropped += serves.subtracting(keepServes).sorted()
            serves.formIntersection(keepServes)
        }
        if let keepReceives {
            dropped += receives.subtracting(keepReceives).sorted()
            receives.formIntersection(keepReceives)
        }
        return dropped
    }
}

/// A helper's policy as one flag per message type, indexed like the broker's `TypeTable`: what
/// the router checks for every message, without hashing the type's name again.
struct PolicyFlags {
    /// Types it may send, `HelperPolicy.alwaysAllowed` included.
    let maySend: [Bool]
    let serves: [Bool]
    let receives: [Bool]

    init(_ policy: HelperPolicy, types: TypeTable) {
        maySend = types.flags(policy.maySend.union(HelperPolicy.alwaysAllowed))
        serves = types.flags(policy.serves)
        receives = types.flags(policy.receives)
    }
}
