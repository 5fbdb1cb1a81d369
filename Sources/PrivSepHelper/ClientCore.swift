// The engine behind PrivSepClient: one I/O thread reads the socket; tasks write it directly.
//
// Why a thread and not a task: reading is a blocking poll/recvmsg loop, and parking it on the
// cooperative pool would take one of its few threads for the life of the helper. The socket has
// two Connection objects over duplicates of one descriptor, each confined as Connection requires:
// the reading one belongs to the I/O thread alone; the writing one is used under a mutex by
// whichever task sends (a sendmsg on a non-blocking socket, so the mutex is held briefly). When
// the kernel buffer is full the writer queues the rest (bounded) and the I/O thread flushes it on
// POLLOUT. Replies reach tasks through continuations; nothing user-supplied runs on the thread,
// and no continuation is resumed while a mutex is held (a stream's onTermination takes it again).

import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage

/// Who waits for the replies to one of our requests.
enum Waiter: Sendable {
    /// Registered, continuation not attached yet (it is, before the request is queued).
    case unattached
    case single(CheckedContinuation<Reply, any Error>)
    case stream(AsyncThrowingStream<Reply, any Error>.Continuation)

    func fail(_ error: any Error) {
        switch self {
        case .unattached: break
        case .single(let continuation): continuation.resume(throwing: error)
        case .stream(let continuation): continuation.finish(throwing: error)
        }
    }
}

final class ClientCore: Sendable {
    struct State: Sendable {
        var nextId: Int64 = 1
        var pending: [Int64: Waiter] = [:]
        /// Set once no more messages may be sent: close() was called or the connection ended.
        var failure: PrivSepError?
        var stopping = false
        var finished = false
        var wakePending = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
        var droppedEvents = 0
    }

    let options: ClientOptions
    let state = Locked(State())
    /// The writing half. Lock order: `writer` before `state`, never the reverse.
    private let writer: Locked<Connection>
    let incoming: AsyncStream<IncomingMessage>
    private let incomingSink: AsyncStream<IncomingMessage>.Continuation
    /// A self-pipe that wakes the I/O thread from poll; closed only when the core goes away,
    /// so a late wake() can never write to a reused descriptor number.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32

    /// Starts the I/O thread on `connection` (ownership moves to the thread).
    init(connection: Connection, options: ClientOptions) throws(PrivSepError) {
        self.options = options
        (incoming, incomingSink) = AsyncStream.makeStream(
            of: IncomingMessage.self, bufferingPolicy: .bufferingOldest(options.maxBufferedMessages))
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            connection.close()
            throw .local(.internal, "pipe: errno \(errno)")
        }
        (wakeFD, wakeWriteFD) = (ends[0], ends[1])
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        var copy: Int32 = -1
        do throws(WireError) {
            try connection.setNonBlocking(true)
            copy = fcntl(connection.socket.rawValue, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { throw WireError.system("fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
        } catch {
            connection.close()
            for end in ends { Glibc.close(end) }
            throw PrivSepError(error)
        }
        writer = Locked(ClientCore.writerConnection(OwnedFD(adopting: copy), maxFrame: WireLimits.defaultMaxFrame, options: options))
        try startThread { [self] in self.run(connection) }
    }

    deinit {
        Glibc.close(wakeFD)
        Glibc.close(wakeWriteFD)
    }

    // MARK: Called by tasks

    /// A writer over `socket` for frames up to `maxFrame`; its queue holds what the kernel did
    /// not take, up to the configured bound.
    private static func writerConnection(_ socket: OwnedFD, maxFrame: Int, options: ClientOptions) -> Connection {
        Connection(socket: socket, peer: .broker, limits: WireLimits(maxFrame: maxFrame, maxQueuedBytes: options.maxQueuedBytes))
    }

    /// Writes `envelope` (descriptors borrowed: the writer duplicates what it must queue).
    /// Refusals that leave the stream intact (too large, too many descriptors, queue full) are
    /// thrown as local errors; a broken transport also ends the client.
    func send(_ envelope: Envelope, fds: [FileDescriptor]) throws(PrivSepError) {
        let queued = try writer.withLock { (writer) throws(PrivSepError) -> Bool in
            if let failure = state.withLock({ $0.failure }) { throw failure }
            let wasQueuing = writer.hasPendingOutput
            do throws(WireError) {
                return try writer.send(envelope, fds: fds) == .queued
            } catch where !error.isFatal {
                throw PrivSepError(error)
            } catch where error.reason == .sendQueueFull && wasQueuing {
                // Nothing of this frame was written: the stream is intact.
                throw .local(.unavailable, "outgoing queue full (\(writer.pendingOutputBytes) bytes queued, limit \(options.maxQueuedBytes)): the broker is not reading")
            } catch {
                // Part of a frame may be out: the stream is broken. Wake the reader with EOF.
                _ = shutdown(writer.socket.rawValue, Int32(SHUT_RDWR))
                let failure = PrivSepError(error)
                state.withLock { if $0.failure == nil { $0.failure = failure } }
                throw failure
            }
        }
        if queued { wakeForOutput() }
    }

    /// Reserves a request id, or throws when the client is closed or too many are in flight.
    func register() throws(PrivSepError) -> Int64 {
        try state.withLock { (state) throws(PrivSepError) -> Int64 in
            if let failure = state.failure { throw failure }
            guard state.pending.count < options.maxPendingRequests else {
                throw .local(.tooLarge, "\(state.pending.count) requests already in flight (limit \(options.maxPendingRequests))")
            }
            var id = state.nextId
            while state.pending[id] != nil { id = id >= WireLimits.maxId ? 1 : id + 1 }
            state.nextId = id >= WireLimits.maxId ? 1 : id + 1
            state.pending[id] = .unattached
            return id
        }
    }

    /// Attaches the waiter of request `id` and sends the request. If the request was cancelled
    /// or the client closed meanwhile, or the send is refused, the waiter fails instead.
    func attach(_ id: Int64, _ waiter: Waiter, sending envelope: Envelope, fds: [FileDescriptor]) {
        let refusal = state.withLock { state -> (any Error)? in
            guard case .unattached? = state.pending[id] else { return state.failure ?? CancellationError() }
            state.pending[id] = waiter
            return nil
        }
        if let refusal {
            waiter.fail(refusal)
            return
        }
        do {
            try send(envelope, fds: fds)
        } catch {
            let registered = state.withLock { $0.pending.removeValue(forKey: id) }
            registered?.fail(error)
        }
    }

    /// Forgets request `id` (cancelled, or its stream's consumer went away); a waiting
    /// continuation is resumed with CancellationError. A late reply is dropped on arrival.
    func forget(_ id: Int64) {
        let waiter = state.withLock { $0.pending.removeValue(forKey: id) }
        waiter?.fail(CancellationError())
    }

    /// Sends a request and waits for its final reply (partial `more` replies are dropped).
    func request(_ envelope: Envelope, fds: [FileDescriptor]) async throws -> Reply {
        let id = try register()
        var message = envelope
        message.id = id
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Reply, any Error>) in
                attach(id, .single(continuation), sending: message, fds: fds)
            }
        } onCancel: {
            forget(id)
        }
    }

    /// Sends a request whose replies arrive as a stream, ending after the final one.
    func streamingRequest(_ envelope: Envelope, fds: [FileDescriptor]) throws -> AsyncThrowingStream<Reply, any Error> {
        let id = try register()
        var message = envelope
        message.id = id
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: Reply.self, bufferingPolicy: .bufferingOldest(options.maxBufferedReplies))
        continuation.onTermination = { [weak self] _ in self?.forget(id) }
        attach(id, .stream(continuation), sending: message, fds: fds)
        return stream
    }

    /// Holds what this helper sends to `maxFrame` (from the hello reply). The writer is replaced
    /// while idle, which it is right after the handshake.
    func setSendLimit(_ maxFrame: Int) throws(PrivSepError) {
        try writer.withLock { (writer) throws(PrivSepError) in
            // Already closed (the broker hung up right after the hello): nothing left to limit.
            guard writer.socket.isOpen else { return }
            guard !writer.hasPendingOutput else { throw .local(.internal, "output still queued after the handshake") }
            let copy = fcntl(writer.socket.rawValue, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { throw .local(.internal, "fcntl(F_DUPFD_CLOEXEC): errno \(errno)") }
            writer.close()
            writer = ClientCore.writerConnection(OwnedFD(adopting: copy), maxFrame: maxFrame, options: options)
        }
    }

    /// Stops taking messages, flushes what is queued (up to the linger time), closes the socket
    /// and returns once the I/O thread has finished.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = state.withLock { state -> Bool in
                if state.finished { return true }
                state.finishWaiters.append(continuation)
                requestStop(&state)
                return false
            }
            if finished { continuation.resume() } else { wake() }
        }
    }

    /// Asks the I/O thread to stop without waiting for it (used when the client goes away).
    func stopSoon() {
        state.withLock { requestStop(&$0) }
        wake()
    }

    private func requestStop(_ state: inout State) {
        guard !state.stopping else { return }
        state.stopping = true
        if state.failure == nil { state.failure = .local(.unavailable, "the client was closed") }
    }

    /// Wakes the I/O thread so it polls for POLLOUT too (the writer queued output).
    private func wakeForOutput() {
        let needed = state.withLock { state -> Bool in
            defer { state.wakePending = true }
            return !state.wakePending
        }
        if needed { wake() }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWriteFD, &one, 1)
    }

    // MARK: The I/O thread

    private func run(_ connection: Connection) {
        var failure: PrivSepError?
        do throws(WireError) {
            try loop(connection)
        } catch {
            failure = PrivSepError(error)
        }
        connection.close()
        finish(failure)
    }

    private func loop(_ connection: Connection) throws(WireError) {
        var lingerUntil: Int64 = 0
        while true {
            let stopping = state.withLock { $0.stopping }
            let queuing = writer.withLock { $0.hasPendingOutput }
            var timeout: Int32 = -1
            if stopping {
                if !queuing { return }
                if lingerUntil == 0 { lingerUntil = monotonicMilliseconds() + Int64(options.closeLingerMilliseconds) }
                let left = lingerUntil - monotonicMilliseconds()
                if left <= 0 { return }
                timeout = Int32(left)
            }
            var events: Int16 = 0
            if !stopping { events |= Int16(POLLIN) }
            if queuing { events |= Int16(POLLOUT) }
            var fds = [
                pollfd(fd: connection.socket.rawValue, events: events, revents: 0),
                pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, 2, timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                throw .system("poll", errno: errno)
            }
            if fds[1].revents != 0 { drainWake() }
            let revents = fds[0].revents
            if revents & Int16(POLLOUT | POLLERR | POLLHUP) != 0, queuing {
                _ = try writer.withLock { (writer) throws(WireError) -> Bool in try writer.flush() }
            }
            if stopping { continue }
            if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                if try !readAvailable(connection) { return }
            }
        }
    }

    /// Reads until the socket is drained (bounded per round so queued output gets flushed); false
    /// once the peer closed the connection.
    private func readAvailable(_ connection: Connection) throws(WireError) -> Bool {
        var outcomes: [Incoming] = []
        for _ in 0 ..< 16 {
            outcomes.removeAll(keepingCapacity: true)
            switch try connection.read(into: &outcomes) {
            case .wouldBlock: return true
            case .endOfStream: return false
            case .frames: for outcome in outcomes { dispatch(outcome) }
            }
        }
        return true
    }

    private func dispatch(_ outcome: Incoming) {
        switch outcome {
        case .refused(let refused):
            // The broker sent something malformed; tell it when it asked for an answer.
            if let id = refused.replyTo {
                internalReply(.errorReply(to: id, code: refused.error.code, message: refused.error.message))
            }
        case .message(let received):
            if received.envelope.kind == .reply {
                deliverReply(received.envelope, received.fds)
            } else {
                deliverIncoming(IncomingMessage(envelope: received.envelope, fds: received.fds))
            }
        }
    }

    private func deliverReply(_ envelope: Envelope, _ fds: [OwnedFD]) {
        guard let re = envelope.re else { return }
        let final = !envelope.more
        let waiter = state.withLock { state -> Waiter? in
            switch state.pending[re] {
            case .single?:
                // A plain request keeps only its final reply.
                return final ? state.pending.removeValue(forKey: re) : nil
            case .stream(let continuation)?:
                if final { state.pending[re] = nil }
                return .stream(continuation)
            case .unattached?, nil:
                return nil
            }
        }
        guard let waiter else { return }  // unmatched (cancelled, or not ours): fds close with it
        if let error = envelope.error {
            waiter.fail(PrivSepError(code: error.code, message: error.message, data: error.data))
            return
        }
        let reply = Reply(envelope: envelope, fds: fds)
        switch waiter {
        case .unattached: break
        case .single(let continuation): continuation.resume(returning: reply)
        case .stream(let continuation):
            if case .dropped = continuation.yield(reply) {
                // onTermination forgets the request; its later parts are dropped on arrival.
                continuation.finish(throwing: PrivSepError.local(
                    .tooLarge, "streaming reply to request \(re) overflowed \(options.maxBufferedReplies) unread parts"))
            } else if final {
                continuation.finish()
            }
        }
    }

    private func deliverIncoming(_ message: IncomingMessage) {
        let refusal: String
        switch incomingSink.yield(message) {
        case .enqueued: return
        case .dropped: refusal = "the helper's incoming queue is full (\(options.maxBufferedMessages) messages)"
        case .terminated: refusal = "the helper no longer takes messages"
        @unknown default: refusal = "the helper cannot take the message"
        }
        if let id = message.id {
            internalReply(.errorReply(to: id, code: .unavailable, message: refusal))
        } else {
            state.withLock { $0.droppedEvents += 1 }
        }
    }

    /// Sends an error reply from the I/O thread itself. If the writer refuses it (its queue is
    /// full), the requester gets privsep.timeout from the broker instead; nothing piles up here.
    private func internalReply(_ envelope: Envelope) {
        try? send(envelope, fds: [])
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        state.withLock { $0.wakePending = false }
        while Glibc.read(wakeFD, &buffer, buffer.count) > 0 {}
    }

    /// The connection is over: fail every waiter, end the incoming stream, wake close().
    private func finish(_ failure: PrivSepError?) {
        let (waiters, finishWaiters) = state.withLock { state in
            if state.failure == nil || failure != nil && !state.stopping {
                state.failure = failure ?? .local(.unavailable, "the broker closed the connection")
            }
            state.finished = true
            let waiters = Array(state.pending.values)
            state.pending = [:]
            let finishWaiters = state.finishWaiters
            state.finishWaiters = []
            return (waiters, finishWaiters)
        }
        // After `failure` is set, so no task writes to the closed writer.
        writer.withLock { $0.close() }
        let reason = state.withLock { $0.failure } ?? .local(.unavailable, "the connection is closed")
        for waiter in waiters { waiter.fail(reason) }
        incomingSink.finish()
        for waiter in finishWaiters { waiter.resume() }
    }
}

/// Milliseconds on the monotonic clock.
private func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Runs `body` on a new detached POSIX thread.
private func startThread(_ body: @escaping @Sendable () -> Void) throws(PrivSepError) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let result = pthread_create(&thread, &attributes, { raw in
        guard let raw else { return nil }
        Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, box)
    guard result == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw .local(.internal, "pthread_create: errno \(result)")
    }
}
