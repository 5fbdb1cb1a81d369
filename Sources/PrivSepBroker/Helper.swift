// One configured helper as the broker sees it: its process, its connection, its policy and
// its counters. A slot outlives the processes that fill it; `generation` tells them apart, so a
// late event or reply from a dead process can never be taken for the new one's.

import PrivSepJSON
import PrivSepWire

/// Where a helper is in its life.
enum HelperPhase: Equatable {
    /// Spawned; its connection is open but it has not said hello yet.
    case starting
    /// Said hello: requests and events flow.
    case ready
    /// Exited; waiting out the restart backoff.
    case backoff
    /// Exited and will not be restarted (policy `never`, a clean exit under `on-failure`, or shutdown).
    case stopped
    /// The broker gave up restarting it.
    case failed
}

/// Per-type message counters, for status and the log.
struct TypeCounters {
    var messages = 0
    var errors = 0
}

/// A process started for a helper slot.
struct HelperProcess {
    let pid: Int32
    /// pidfd of the launcher (pid 1 of the helper's pid namespace): readable when it exits.
    let pidfd: OwnedFD
    /// Read ends of the helper's stdout and stderr, split into log lines.
    var stdout: LineReader?
    var stderr: LineReader?
    /// Read end of the launcher's error pipe: empty at EOF when the program was exec'd.
    let errorPipe: OwnedFD
    let startedAt: Int64
}

/// The broker's record of one helper slot.
final class Helper {
    // The properties marked `@exclusivity(unchecked)` are on the per-message path; why the
    // runtime checks can go is said once, at `Broker`'s.

    let slot: Int
    let config: HelperConfig
    var name: String { config.name }

    /// Bumped on every spawn.
    var generation: UInt16 = 0
    @exclusivity(unchecked) var phase: HelperPhase = .stopped
    /// The policy in force: the configured one, shrunk by privsep.restrict until the next spawn.
    private(set) var policy: HelperPolicy
    /// `policy` by type index, for the router's checks (see `enforce`).
    @exclusivity(unchecked) private(set) var allowed: PolicyFlags
    var process: HelperProcess?
    @exclusivity(unchecked) var connection: Connection?

    /// Identity and sandbox, fixed for the broker's life (a uid of its own per helper, so no
    /// two helpers can signal or ptrace each other).
    let plan: HelperPlan
    var uid: UInt32 { plan.uid }

    // Flow control.
    /// The broker is not reading from this helper (a destination it feeds is full).
    @exclusivity(unchecked) var paused = false
    /// What epoll watches the socket for now.
    @exclusivity(unchecked) var interest: Readiness = .readable
    /// Output was queued this loop iteration and is written before the next wait.
    @exclusivity(unchecked) var needsFlush = false
    /// Messages read but not yet handled (paused mid-batch, or waiting for the next turn), the
    /// next one last: taken with `popLast`, which moves it out instead of copying it.
    @exclusivity(unchecked) private(set) var held: [Incoming] = []
    /// Waiting in the broker's backlog for another turn.
    @exclusivity(unchecked) var inBacklog = false
    /// Messages it may still send now under `max_rate`: refilled with time, spent per message
    /// handled (below zero by at most what one read held).
    @exclusivity(unchecked) var rateAllowance = 0.0
    @exclusivity(unchecked) var rateUpdatedAt: Int64 = 0
    /// Over its rate: not read until the allowance refills.
    @exclusivity(unchecked) var throttled = false
    /// Times this process went over its rate (the first is logged).
    var throttles = 0

    var hasHeld: Bool { !held.isEmpty }
    /// Slots paused until this helper's outgoing queue drains.
    @exclusivity(unchecked) var blockedSenders: Set<Int> = []
    /// Requests routed to this helper while it was not ready, forwarded once it says hello.
    var waitingRequests: [(brokerID: Int64, envelope: Envelope, fds: [OwnedFD])] = []

    // Supervision.
    /// Monotonic times of recent restarts, for the restart window.
    var restartTimes: [Int64] = []
    var consecutiveFailures = 0
    var restarts = 0
    /// Refused messages since the last spawn.
    var violations = 0
    /// Why the broker killed the current process, if it did.
    var killReason: String?
    /// The operator asked for a restart: start again at once when the process is gone.
    var restartRequested = false
    var stallCheckScheduled = false
    /// Bytes flushed to the helper so far: progress, for the stall check.
    @exclusivity(unchecked) var flushedBytes = 0

    // Counters.
    /// Messages received and refused, by type index.
    @exclusivity(unchecked) private(set) var received: [TypeCounters]
    /// The same for types no schema defines, by name: at most `maxUnknownTypes` of them.
    private(set) var receivedUnknown: [String: TypeCounters] = [:]
    static let maxUnknownTypes = 64
    var unmatchedReplies = 0

    init(slot: Int, config: HelperConfig, plan: HelperPlan, types: TypeTable) {
        self.slot = slot
        self.config = config
        self.policy = config.policy
        self.allowed = PolicyFlags(config.policy, types: types)
        self.received = [TypeCounters](repeating: TypeCounters(), count: types.count)
        self.plan = plan
    }

    /// The type of the last request or event it sent: a helper mostly sends one type, so most
    /// messages resolve theirs with a string comparison instead of a hash lookup.
    private var lastType: RoutedType?

    /// `types[name]`, through `lastType`.
    func resolve(_ name: String, in types: TypeTable) -> RoutedType? {
        if let lastType, lastType.name == name { return lastType }
        let routed = types[name]
        if routed != nil { lastType = routed }
        return routed
    }

    /// Puts `policy` in force (at each spawn, and when the helper restricts itself).
    func enforce(_ policy: HelperPolicy, types: TypeTable) {
        self.policy = policy
        allowed = PolicyFlags(policy, types: types)
    }

    var ref: HelperRef { HelperRef(slot: slot, generation: generation) }

    /// The most messages taken from it in one burst: a tenth of a second at `max_rate`.
    var rateBurst: Int { max(config.limits.maxRate / 10, Broker.messagesPerTurn) }

    var isReady: Bool { phase == .ready && connection != nil }

    /// Whether the outgoing queue is at its cap: the broker stops feeding it until it drains.
    /// Descriptors count as bytes do, at half the queue's bound (`maxQueuedFds`): a burst of
    /// replies that each carry one (file.open) waits for the helper to read instead of reaching
    /// the bound, where the queue would refuse the next and the helper be cut off.
    var isFull: Bool {
        guard let connection else { return false }
        return connection.pendingOutputBytes >= config.limits.queueBytes
            || connection.pendingOutputFds >= connection.limits.maxQueuedFds / 2
    }

    /// Counts a message of `type` (`routed` when a schema defines it).
    func count(_ routed: RoutedType?, _ type: String) {
        if let routed {
            received[routed.index].messages += 1
        } else if receivedUnknown[type] != nil || receivedUnknown.count < Helper.maxUnknownTypes {
            receivedUnknown[type, default: TypeCounters()].messages += 1
        }
    }

    /// Counts the refusal of a message already counted by `count`.
    func countError(_ routed: RoutedType?, _ type: String) {
        if let routed {
            received[routed.index].errors += 1
        } else if receivedUnknown[type] != nil {
            receivedUnknown[type, default: TypeCounters()].errors += 1
        }
    }

    /// One read from the helper's connection into `held`, which must be empty (the broker
    /// reads a helper only once it has handled everything read before).
    func read(_ connection: Connection) throws(WireError) -> ReadStatus {
        assert(held.isEmpty, "read while earlier messages wait: their order would be lost")
        let status = try connection.read(into: &held)
        held.reverse()
        return status
    }

    /// The next held message, if the helper is not paused.
    func nextHeld() -> Incoming? {
        guard !paused else { return nil }
        return held.popLast()
    }

    /// Puts a message back at the front of the held list (its handler found its destination full).
    func holdAgain(_ message: Incoming) {
        held.append(message)
    }

    /// Drops every held message (the connection is gone).
    func dropHeld() {
        held = []
    }
}

/// Splits a non-blocking pipe into lines; a line longer than `maxLine` is cut and marked.
final class LineReader {
    static let maxLine = 4096
    let fd: OwnedFD
    private var partial: [UInt8] = []

    init(fd: OwnedFD) { self.fd = fd }

    /// Reads what is available; returns complete lines and whether the pipe reached EOF.
    func drain() -> (lines: [String], eof: Bool) {
        var lines: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        // Bounded per wakeup so a chatty helper cannot monopolise the loop.
        for _ in 0..<16 {
            let count = buffer.withUnsafeMutableBytes { raw in readFD(fd.rawValue, raw.baseAddress, raw.count) }
            if count == 0 {
                if !partial.isEmpty { lines.append(String(decoding: partial, as: UTF8.self)) }
                partial = []
                return (lines, true)
            }
            if count < 0 { return (lines, !isRetryableReadError()) }
            for byte in buffer[0..<count] {
                if byte == UInt8(ascii: "\n") {
                    lines.append(String(decoding: partial, as: UTF8.self))
                    partial.removeAll(keepingCapacity: true)
                } else if partial.count < LineReader.maxLine {
                    partial.append(byte)
                } else if partial.count == LineReader.maxLine {
                    lines.append(String(decoding: partial, as: UTF8.self) + " [line cut at \(LineReader.maxLine) bytes]")
                    partial.removeAll(keepingCapacity: true)
                }
            }
        }
        return (lines, false)
    }
}
