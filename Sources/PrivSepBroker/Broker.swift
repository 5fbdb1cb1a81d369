// The broker: the privileged parent. One thread, one epoll loop; it owns every helper's socket,
// routes what policy allows, and keeps the promise that every accepted request gets exactly one
// final reply. Roles live in their own files: Supervisor (processes), Router (messages),
// Services (the built-in types), Config, Policy, InFlight.

import Glibc
import Logging
import PrivSepJSON
import PrivSepSandbox
import PrivSepWire

/// How the broker stopped; `privsep run` turns this into its exit status.
public enum BrokerOutcome: Equatable, Sendable {
    /// Every helper exited after privsep.shutdown or SIGTERM.
    case clean
    /// Some helpers had to be SIGKILLed at the end of the grace period.
    case forced
    /// A `required` helper failed for good (its name).
    case requiredHelperFailed(String)
    /// The broker itself failed (epoll, signalfd...).
    case brokerError(String)

    /// The process exit status: 0 clean, 1 required helper failed or broker error, 3 forced.
    public var exitStatus: Int32 {
        switch self {
        case .clean: return 0
        case .requiredHelperFailed, .brokerError: return 1
        case .forced: return 3
        }
    }
}

/// Where the broker is between start and exit.
enum BrokerPhase: Equatable {
    case running
    /// privsep.shutdown sent; waiting for helpers to exit on their own.
    case draining
    /// SIGTERM sent to what was left.
    case terminating
    /// SIGKILL sent to what was left.
    case killing
    case finished
}

/// Counters the broker keeps for status and tests.
public struct BrokerCounters: Sendable {
    public var requestsAccepted = 0
    public var finalReplies = 0
    public var repliesDropped = 0
    public var eventsDelivered = 0
    /// Accepted requests whose requester was gone (exited, killed, restarted) before their final
    /// reply: nobody is left to answer. requestsAccepted == finalReplies + abandoned.
    public var abandoned = 0
    public var errorsByCode: [String: Int] = [:]
}

/// How one helper is started: its identity and its sandbox, decided and checked at load time.
public struct HelperPlan: Sendable {
    public let uid: UInt32
    public let gid: UInt32
    public let spec: SandboxSpec
    /// The seccomp filter, compiled once here instead of in the launcher at every spawn.
    public let seccomp: SeccompProgram?
    /// What the privileged services grant it (`files`, `net`, `dns`, `users`), directories opened.
    let services: ServicePolicy
}

/// Everything the broker needs from outside: config, launch plans, message contracts, launcher.
public struct BrokerSetup: Sendable {
    public var config: BrokerConfig
    /// One per helper, in config order.
    public var plans: [HelperPlan]
    public var catalog: ContractCatalog
    /// The `privsep-sandbox` launcher binary.
    public var launcherPath: String
}

/// The privileged parent process.
public final class Broker {
    // The properties marked `@exclusivity(unchecked)` are on the per-message path. The broker
    // uses them from one thread only and never holds an access to one across a call that
    // reaches it again, so the runtime's dynamic exclusivity checks (a thread-local access set,
    // entered and left on every access) only cost time: about 7% of the broker's CPU per
    // message (perf).

    let setup: BrokerSetup
    var config: BrokerConfig { setup.config }
    var catalog: ContractCatalog { setup.catalog }
    var logger: Logger
    /// Where `logger` writes; the audit trail writes there directly.
    let log: LogSink

    let loop: EventLoop
    var signalFD: OwnedFD?
    @exclusivity(unchecked) var helpers: [Helper] = []
    /// Every message type, resolved for routing (servers, receivers, built-in handlers).
    let types: TypeTable
    /// How helpers' receivers check bodies from their bytes (`ContractCatalog.bodyBytesChecks`).
    let bodyBytesChecks: BodyBytesChecks?
    @exclusivity(unchecked) var inFlight = InFlightTable()
    @exclusivity(unchecked) var deadlines = DeadlineQueue()
    /// When the next sweep of `inFlight` for timed-out requests is due (see `scheduleSweep`).
    var sweepAt: Int64?
    @exclusivity(unchecked) var phase: BrokerPhase = .running
    var outcome: BrokerOutcome = .clean
    @exclusivity(unchecked) var control = ControlState()
    /// Helpers with output queued in this iteration (see `flushPending`).
    @exclusivity(unchecked) var pendingFlush: [Helper] = []
    /// Helpers with messages left after their turn (see `processHeld`).
    @exclusivity(unchecked) var backlog: [Helper] = []
    /// The audit's field list, kept between audits so that it is not allocated again.
    @exclusivity(unchecked) var auditFields: [(key: String, value: String)] = []
    let startedAt = monotonicNanoseconds()
    @exclusivity(unchecked) public internal(set) var counters = BrokerCounters()

    public init(setup: BrokerSetup, log: LogSink) throws(SystemCallError) {
        self.setup = setup
        self.log = log
        self.logger = Logger(label: "privsep") { label in LineLogHandler(label: label, sink: log) }
        self.loop = try EventLoop()
        let configs = setup.config.helpers
        self.types = TypeTable(setup.catalog) { index, contract in
            RoutedType(index: index, contract: contract,
                       service: Broker.builtinService(contract.type), event: Broker.builtinEvent(contract.type),
                       server: configs.firstIndex { $0.policy.serves.contains(contract.type) },
                       receivers: configs.indices.filter { configs[$0].policy.receives.contains(contract.type) })
        }
        self.bodyBytesChecks = setup.catalog.bodyBytesChecks
        for (slot, (helperConfig, plan)) in zip(configs, setup.plans).enumerated() {
            helpers.append(Helper(slot: slot, config: helperConfig, plan: plan, types: types))
        }
    }

    /// Runs until shutdown completes; returns how it ended.
    public func run() -> BrokerOutcome {
        do {
            let signals = try makeSignalFD()
            try loop.add(signals.rawValue, token: LoopToken(kind: .signal, index: 0), interest: .readable)
            signalFD = signals
            if let path = config.controlSocket { try openControlSocket(path) }
        } catch {
            return .brokerError("\(error)")
        }
        logger.info("broker starting", metadata: ["helpers": "\(helpers.count)", "pid": "\(getpid())"])
        for helper in helpers { spawn(helper) }
        while phase != .finished {
            // One clock read per iteration: a deadline then fires at most one iteration late.
            let now = monotonicNanoseconds()
            fireDueDeadlines(now: now)
            runBacklog()
            flushPending()
            if phase == .finished { break }
            // Work left in the backlog: look at the sockets without sleeping, then go on with it.
            // Queued log lines (written now if the oldest is due): look without sleeping too,
            // and write them if nothing is ready (the next iteration sleeps).
            let logQueued = log.writeQueued(dueAt: now)
            do {
                let sleep = backlog.isEmpty && !logQueued
                let ready = try loop.wait(until: deadlines.earliest, sleep: sleep) { token, readiness in
                    dispatch(token, readiness)
                }
                flushPending()
                if logQueued && ready == 0 { log.writeQueued() }
            } catch {
                logger.critical("event loop failed", metadata: ["error": "\(error)"])
                outcome = .brokerError("\(error)")
                killAll()
                break
            }
        }
        closeControlSocket()
        // A level above info drops the line below, which would otherwise write the queue.
        log.writeQueued()
        logger.info("broker stopped", metadata: [
            "outcome": "\(outcome)", "requests": "\(counters.requestsAccepted)",
            "final_replies": "\(counters.finalReplies)", "abandoned": "\(counters.abandoned)",
        ])
        return outcome
    }

    private func dispatch(_ token: LoopToken, _ readiness: Readiness) {
        switch token.kind {
        case .signal:
            if let signalFD { for signal in readSignals(signalFD) { handleSignal(signal) } }
        case .helperSocket:
            guard let helper = helper(for: token) else { return }
            if !readiness.isDisjoint(with: [.writable]) { flushOutput(helper) }
            if helper.paused && !readiness.isDisjoint(with: .hangup) {
                // Gone while we were not reading it: what it still had queued was never accepted.
                disconnect(helper, reason: "hung up while paused")
            } else if !readiness.isDisjoint(with: [.readable, .hangup]) {
                readFrom(helper, hungUp: !readiness.isDisjoint(with: .hangup))
            }
        case .helperStdout, .helperStderr:
            guard let helper = helper(for: token) else { return }
            drainOutput(helper, stream: token.kind)
        case .helperPidfd:
            guard let helper = helper(for: token) else { return }
            processExited(helper)
        case .control:
            acceptControlClients()
        case .controlClient:
            if let client = controlClient(for: token) { serviceControlClient(client, readiness) }
        }
    }

    /// The helper a token names, if the token is for its current process.
    private func helper(for token: LoopToken) -> Helper? {
        guard Int(token.index) < helpers.count else { return nil }
        let helper = helpers[Int(token.index)]
        return helper.generation == token.generation ? helper : nil
    }

    func token(_ kind: LoopToken.Kind, _ helper: Helper) -> LoopToken {
        LoopToken(kind: kind, index: UInt32(helper.slot), generation: helper.generation)
    }

    private func fireDueDeadlines(now: Int64) {
        for action in deadlines.popDue(now: now) {
            switch action {
            case .requestSweep: sweepRequests()
            case .restart(let slot, let generation): restartDue(slot: slot, generation: generation)
            case .helloTimeout(let slot, let generation): helloTimedOut(slot: slot, generation: generation)
            case .rateRefilled(let slot, let generation): rateRefilled(slot: slot, generation: generation)
            case .controlAccept: resumeControlAccept()
            case .stallCheck(let slot, let generation, let flushedBytes):
                stallCheck(slot: slot, generation: generation, flushedBytes: flushedBytes)
            case .shutdownPhase: advanceShutdown()
            }
        }
    }

    func count(error code: ErrorCode) {
        counters.errorsByCode[code.rawValue, default: 0] += 1
    }
}
