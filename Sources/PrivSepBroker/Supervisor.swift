// Helper processes: spawn through the sandbox launcher, watch, reap, restart with backoff, and
// stop everything in order on SIGTERM/SIGINT (notice, grace, SIGTERM, grace, SIGKILL).
//
// A helper's connection and its process end separately: a protocol error closes the connection
// and kills the process; an exit closes the connection. Either way its in-flight requests are
// answered privsep.unavailable at once, and the exit (reaped through its pidfd) decides restart.

import CPrivSep
import Glibc
import Logging
import PrivSepJSON
import PrivSepSandbox
import PrivSepWire

extension Broker {
    // MARK: Spawning

    func spawn(_ helper: Helper) {
        helper.generation &+= 1
        helper.enforce(helper.config.policy, types: types)
        helper.violations = 0
        helper.killReason = nil
        helper.flushedBytes = 0
        helper.stallCheckScheduled = false
        do {
            try startProcess(helper)
        } catch {
            logger.error("cannot start helper: \(error)", metadata: ["helper": "\(helper.name)"])
            helper.phase = .backoff
            scheduleRestartOrGiveUp(helper, failed: true)
            return
        }
        helper.phase = .starting
        deadlines.schedule(
            at: monotonicNanoseconds() + helper.config.limits.helloTimeoutMs * 1_000_000,
            .helloTimeout(slot: helper.slot, generation: helper.generation))
    }

    private func startProcess(_ helper: Helper) throws(SpawnError) {
        let (brokerEnd, helperEnd) = try wrap("socketpair") { () throws(WireError) in try Connection.socketPair() }
        let stdout = try wrap("pipe") { () throws(SystemCallError) in try makeOutputPipe() }
        let stderr = try wrap("pipe") { () throws(SystemCallError) in try makeOutputPipe() }
        let launched = try HelperLauncher.launch(
            launcher: setup.launcherPath, plan: helper.plan, socket: helperEnd.rawValue,
            stdout: stdout.write.rawValue, stderr: stderr.write.rawValue)
        // The child has its copies; ours would keep the pipes and socket open after it exits.
        helperEnd.close()
        stdout.write.close()
        stderr.write.close()
        guard cps_wire_set_nonblocking(brokerEnd.rawValue, 1) == 0 else {
            throw discard(launched, helper, SpawnError(step: "fcntl(O_NONBLOCK)", errno: errno))
        }

        var wireLimits = WireLimits(
            maxFrame: helper.config.limits.maxFrame,
            maxQueuedBytes: helper.config.limits.queueBytes * 2 + helper.config.limits.maxFrame + 4)
        // 16 KiB: a read is parsed whole before any turn budget applies, so its size bounds what
        // one flooding helper costs the others; large frames still arrive over several reads.
        wireLimits.readChunk = 16 << 10
        let connection = Connection(socket: brokerEnd, peer: .helper, limits: wireLimits)
        connection.setBodyChecks(bodyBytesChecks)
        helper.connection = connection
        helper.paused = false
        helper.interest = .readable
        helper.throttled = false
        helper.throttles = 0
        helper.rateAllowance = Double(helper.rateBurst)
        helper.rateUpdatedAt = monotonicNanoseconds()
        helper.process = HelperProcess(
            pid: launched.pid, pidfd: launched.pidfd, stdout: LineReader(fd: stdout.read),
            stderr: LineReader(fd: stderr.read), errorPipe: launched.errorPipe, startedAt: monotonicNanoseconds())
        let watched = [connection.socket.rawValue, stdout.read.rawValue, stderr.read.rawValue, launched.pidfd.rawValue]
        do {
            try loop.add(watched[0], token: token(.helperSocket, helper), interest: .readable)
            try loop.add(watched[1], token: token(.helperStdout, helper), interest: .readable)
            try loop.add(watched[2], token: token(.helperStderr, helper), interest: .readable)
            try loop.add(watched[3], token: token(.helperPidfd, helper), interest: .readable)
        } catch {
            for fd in watched { loop.remove(fd) }
            connection.close()
            helper.connection = nil
            helper.process = nil
            throw discard(launched, helper, SpawnError(step: error.call, errno: error.errno))
        }
        logger.info("helper started", metadata: [
            "helper": "\(helper.name)", "pid": "\(launched.pid)", "uid": "\(helper.uid)",
            "command": "\(helper.config.command.joined(separator: " "))",
        ])
    }

    /// A child started but not taken into the loop: killed and reaped at once, so a failed start
    /// never leaves a process running untracked (the restart policy then starts a new one).
    private func discard(_ launched: LaunchedHelper, _ helper: Helper, _ error: SpawnError) -> SpawnError {
        _ = cprivsep_pidfd_send_signal(launched.pidfd.rawValue, SIGKILL)
        var status: Int32 = 0
        while waitpid(launched.pid, &status, 0) < 0 && errno == EINTR {}
        logger.warning("killed a helper process whose start failed", metadata: [
            "helper": "\(helper.name)", "pid": "\(launched.pid)",
        ])
        return error
    }

    // MARK: Output lines

    func drainOutput(_ helper: Helper, stream: LoopToken.Kind) {
        guard var process = helper.process else { return }
        let reader = stream == .helperStdout ? process.stdout : process.stderr
        guard let reader else { return }
        let (lines, eof) = reader.drain()
        for line in lines {
            logger.info("\(line)", metadata: ["helper": "\(helper.name)", "stream": stream == .helperStdout ? "stdout" : "stderr"])
        }
        if eof {
            loop.remove(reader.fd.rawValue)
            reader.fd.close()
            if stream == .helperStdout { process.stdout = nil } else { process.stderr = nil }
            helper.process = process
        }
    }

    // MARK: Ending

    /// Closes the helper's connection and answers everything waiting on it.
    func disconnect(_ helper: Helper, reason: String) {
        guard let connection = helper.connection else { return }
        logger.info("connection closed: \(reason)", metadata: ["helper": "\(helper.name)"])
        // Best effort, never blocking: a last error reply (privsep.protocol, the request that
        // crossed max_violations) is worth delivering if the socket takes it.
        _ = try? connection.flush()
        loop.remove(connection.socket.rawValue)
        connection.close()
        helper.connection = nil
        if helper.phase == .ready || helper.phase == .starting { helper.phase = .starting }
        helper.dropHeld()
        helper.paused = false
        helper.throttled = false
        helper.waitingRequests = []
        answerServedRequests(of: helper) { "helper \(helper.name) ended before answering \($0)" }
        counters.abandoned += inFlight.removeAll(requestedBy: helper.slot).count
        for other in helpers { other.blockedSenders.remove(helper.slot) }
        resumeBlockedSenders(of: helper)
    }

    /// Closes the connection and SIGKILLs the process for `reason`; the exit is handled when its
    /// pidfd fires, and counts as a failure for the restart policy.
    func kill(_ helper: Helper, reason: String) {
        if helper.killReason == nil { helper.killReason = reason }
        logger.warning("killing helper: \(reason)", metadata: ["helper": "\(helper.name)"])
        disconnect(helper, reason: reason)
        if let process = helper.process { _ = cprivsep_pidfd_send_signal(process.pidfd.rawValue, SIGKILL) }
    }

    /// The exit can be seen before the last bytes the process wrote: its final reply or event,
    /// or the frame it cut short, is still in the socket. Handles that before the connection
    /// closes, within what a socket buffer can hold.
    private func readWhatIsLeft(_ helper: Helper) {
        var reads = 0
        while helper.connection != nil, !helper.paused {
            // Every held message first, a turn's budget at a time (each turn handles at least
            // one or pauses the helper, so this ends): reading waits for them.
            if !processHeld(helper) { continue }
            guard reads < Broker.readsAfterExit, readFrom(helper, hungUp: true) else { return }
            reads += 1
        }
    }

    func processExited(_ helper: Helper) {
        guard let process = helper.process, let status = reap(process.pid) else { return }
        let failure = SandboxLaunchOutcome.read(from: process.errorPipe)
        loop.remove(process.pidfd.rawValue)
        for (reader, stream) in [(process.stdout, "stdout"), (process.stderr, "stderr")] {
            guard let reader else { continue }
            for line in reader.drain().lines {
                logger.info("\(line)", metadata: ["helper": "\(helper.name)", "stream": "\(stream)"])
            }
            loop.remove(reader.fd.rawValue)
        }
        helper.process = nil
        readWhatIsLeft(helper)
        disconnect(helper, reason: "process ended")
        var metadata: Logger.Metadata = [
            "helper": "\(helper.name)", "pid": "\(process.pid)", "status": "\(status)",
            "ran_ms": "\((monotonicNanoseconds() - process.startedAt) / 1_000_000)",
        ]
        if let reason = helper.killReason { metadata["killed_because"] = "\(reason)" }
        if let failure {
            logger.error("sandbox setup failed, program not started: \(failure)", metadata: metadata)
        } else if status.isSuccess {
            logger.info("helper exited", metadata: metadata)
        } else {
            logger.warning("helper exited", metadata: metadata)
        }
        if phase != .running {
            helper.phase = .stopped
            finishShutdownIfDone()
            return
        }
        if helper.restartRequested {
            helper.restartRequested = false
            helper.restarts += 1
            spawn(helper)
            return
        }
        let failed = failure != nil || !status.isSuccess || helper.killReason != nil
        scheduleRestartOrGiveUp(helper, failed: failed)
    }

    // MARK: Restart

    /// Applies the restart policy: `always`, `on-failure` (non-zero exit, signal, or killed by the
    /// broker) or `never`; exponential backoff; give up after too many restarts in the window.
    func scheduleRestartOrGiveUp(_ helper: Helper, failed: Bool) {
        let policy = helper.config.restart
        let wanted = policy.mode == .always || (policy.mode == .onFailure && failed)
        guard wanted else {
            helper.phase = .stopped
            logger.info("helper will not be restarted (restart: \(policy.mode.rawValue))", metadata: ["helper": "\(helper.name)"])
            giveUpIfRequired(helper)
            return
        }
        let now = monotonicNanoseconds()
        helper.restartTimes.removeAll { now - $0 > policy.windowMs * 1_000_000 }
        guard helper.restartTimes.count < policy.maxRestarts else {
            helper.phase = .failed
            logger.error("giving up on helper: \(helper.restartTimes.count) restarts within \(policy.windowMs) ms",
                         metadata: ["helper": "\(helper.name)"])
            answerWaitingRequests(helper)
            giveUpIfRequired(helper)
            return
        }
        helper.consecutiveFailures = failed ? helper.consecutiveFailures + 1 : 0
        let exponent = min(max(helper.consecutiveFailures - 1, 0), 30)
        let delay = min(policy.initialBackoffMs << exponent, policy.maxBackoffMs)
        helper.phase = .backoff
        helper.restartTimes.append(now)
        logger.info("restarting helper in \(delay) ms", metadata: ["helper": "\(helper.name)"])
        deadlines.schedule(at: now + delay * 1_000_000, .restart(slot: helper.slot, generation: helper.generation))
    }

    func restartDue(slot: Int, generation: UInt16) {
        let helper = helpers[slot]
        guard helper.generation == generation, helper.phase == .backoff, phase == .running else { return }
        helper.restarts += 1
        spawn(helper)
    }

    func helloTimedOut(slot: Int, generation: UInt16) {
        let helper = helpers[slot]
        guard helper.generation == generation, helper.phase == .starting, helper.connection != nil else { return }
        kill(helper, reason: "no privsep.hello within \(helper.config.limits.helloTimeoutMs) ms")
    }

    /// Requests held for a helper that will not come back are answered now.
    private func answerWaitingRequests(_ helper: Helper) {
        answerServedRequests(of: helper) { _ in "helper \(helper.name) is not running" }
    }

    /// Answers privsep.unavailable to every request `helper` was to serve (the message is made
    /// from the request's type); a requester that is gone itself counts as abandoned.
    private func answerServedRequests(of helper: Helper, _ message: (String) -> String) {
        for request in inFlight.removeAll(servedBy: helper.slot) {
            let requester = helpers[request.requester.slot]
            guard requester.ref == request.requester else {
                counters.abandoned += 1
                continue
            }
            reply(to: requester, re: request.requesterID, error: ErrorBody(code: .unavailable, message: message(request.type)))
        }
    }

    private func giveUpIfRequired(_ helper: Helper) {
        guard helper.config.required, phase == .running else { return }
        logger.critical("required helper \(helper.name) is gone: stopping the broker", metadata: ["helper": "\(helper.name)"])
        outcome = .requiredHelperFailed(helper.name)
        beginShutdown()
    }

    // MARK: Shutdown

    func handleSignal(_ signal: Int32) {
        logger.notice("received \(signalName(signal))")
        switch phase {
        case .running: beginShutdown()
        // A second signal skips the wait.
        case .draining, .terminating: advanceShutdown()
        case .killing, .finished: break
        }
    }

    /// privsep.shutdown to every ready helper, then a grace period for them to exit.
    func beginShutdown() {
        guard phase == .running else { return }
        phase = .draining
        logger.info("shutting down", metadata: ["grace_ms": "\(config.shutdownGraceMs)"])
        for helper in helpers {
            switch helper.phase {
            case .ready: sendShutdownNotice(to: helper, graceMs: config.shutdownGraceMs)
            case .backoff: helper.phase = .stopped
            default: break
            }
            answerWaitingRequests(helper)
        }
        deadlines.schedule(at: monotonicNanoseconds() + config.shutdownGraceMs * 1_000_000, .shutdownPhase)
        finishShutdownIfDone()
    }

    /// Grace over: SIGTERM what is left, then after another grace SIGKILL.
    func advanceShutdown() {
        switch phase {
        case .draining:
            phase = .terminating
            signalRemaining(SIGTERM)
            deadlines.schedule(at: monotonicNanoseconds() + config.shutdownGraceMs * 1_000_000, .shutdownPhase)
        case .terminating:
            phase = .killing
            if outcome == .clean { outcome = .forced }
            signalRemaining(SIGKILL)
        default:
            break
        }
        finishShutdownIfDone()
    }

    private func signalRemaining(_ signal: Int32) {
        for helper in helpers {
            guard let process = helper.process else { continue }
            logger.info("sending \(signalName(signal))", metadata: ["helper": "\(helper.name)"])
            _ = cprivsep_pidfd_send_signal(process.pidfd.rawValue, signal)
        }
    }

    func finishShutdownIfDone() {
        guard phase != .running, phase != .finished, helpers.allSatisfy({ $0.process == nil }) else { return }
        phase = .finished
    }

    /// Last resort when the loop itself fails: no helper may outlive the broker.
    func killAll() {
        for helper in helpers {
            guard let process = helper.process else { continue }
            _ = cprivsep_pidfd_send_signal(process.pidfd.rawValue, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(process.pid, &status, 0)
        }
    }
}

/// A helper could not be started: the step and errno.
struct SpawnError: Error, CustomStringConvertible {
    let step: String
    let errno: Int32

    var description: String { "\(step): \(String(cString: strerror(errno)))" }
}

private func wrap<T, E: Error>(_ step: String, _ body: () throws(E) -> T) throws(SpawnError) -> T {
    do {
        return try body()
    } catch let error as WireError {
        throw SpawnError(step: step, errno: error.errno)
    } catch let error as SystemCallError {
        throw SpawnError(step: error.call, errno: error.errno)
    } catch {
        throw SpawnError(step: step, errno: EIO)
    }
}
