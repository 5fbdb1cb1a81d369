// The engine behind PrivSepClient: one I/O thread owns the socket; tasks talk to it through a
// mutex-guarded state and an eventfd.
//
// Why a thread and not a task: reading is a blocking poll/recvmsg loop, and parking it on the
// cooperative pool would take one of its few threads for the life of the helper. The thread
// owns the Connection outright (it is confined to one thread), so no socket call ever races.
// Tasks hand it outgoing messages through a bounded queue and get replies back through
// continuations; nothing user-supplied ever runs on the thread, and no continuation is resumed
// while the mutex is held (a stream's onTermination takes the mutex again).

import Glibc
import PrivSepJSON
import PrivSepWire
import Synchronization
import SystemPackage

/// A message ready for the I/O thread: validated, sized, its descriptors duplicated.
struct Outgoing: Sendable {
    var envelope: Envelope
    /// Duplicates owned by the queue; closed once the connection has taken (or refused) them.
    var fds: [OwnedFD]
    /// The frame body size, checked against max_frame when queued.
    var size: Int
}

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
        var outbox: [Outgoing] = []
        var outboxHead = 0
        var outboxBytes = 0
        /// Body bytes the peer accepts per frame (max_frame from the hello reply).
        var sendLimit = WireLimits.defaultMaxFrame
        /// Set once no more messages may be queued: close() was called or the connection ended.
        var failure: PrivSepError?
        var stopping = false
        var finished = false
        var wakePending = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
        var droppedEvents = 0
    }

    let options: ClientOptions
    let state = Mutex(State())
    let incoming: AsyncStream<IncomingMessage>
    private let incomingSink: AsyncStream<IncomingMessage>.Continuation
    /// A self-pipe that wakes the I/O thread from poll; closed only when the core goes away,
    /// so a late signal() can never write to a reused descriptor number.
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
        do {
            try connection.setNonBlocking(true)
        } catch {
            connection.close()
            throw PrivSepError(error)
        }
        try startThread { [self] in self.run(connection) }
    }

    deinit {
        Glibc.close(wakeFD)
        Glibc.close(wakeWriteFD)
    }

    // MARK: Called by tasks

    /// Encodes, sizes and takes the descriptors of a message about to be queued.
    func prepare(_ envelope: Envelope, fds: [FileDescriptor]) throws(PrivSepError) -> Outgoing {
        guard fds.count <= WireLimits.maxFdsPerFrame else {
            throw .local(.tooLarge, "\(fds.count) descriptors on one message; at most \(WireLimits.maxFdsPerFrame)")
        }
        var message = envelope
        message.fds = fds.count
        let size = message.jsonValue.serialized().count
        let limit = state.withLock { $0.sendLimit }
        guard size <= limit else {
            throw .local(.tooLarge, "message of \(size) bytes exceeds max_frame \(limit)")
        }
        var copies: [OwnedFD] = []
        for fd in fds {
            let copy = fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0)
            guard copy >= 0 else { throw .local(.internal, "fcntl(\(fd.rawValue), F_DUPFD_CLOEXEC): errno \(errno)") }
            copies.append(OwnedFD(adopting: copy))
        }
        return Outgoing(envelope: message, fds: copies, size: size)
    }

    /// Queues a message that expects no reply.
    func enqueue(_ outgoing: Outgoing) throws(PrivSepError) {
        let wake = try state.withLock { (state) throws(PrivSepError) -> Bool in
            try push(outgoing, into: &state)
        }
        if wake { signal() }
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

    /// Attaches the waiter of request `id` and queues the request. If the request was cancelled
    /// or the client closed meanwhile, or the queue is full, the waiter fails instead.
    func attach(_ id: Int64, _ waiter: Waiter, sending outgoing: Outgoing) {
        enum Outcome { case queued(wake: Bool), failed(any Error) }
        let outcome = state.withLock { state -> Outcome in
            guard case .unattached? = state.pending[id] else {
                return .failed(state.failure ?? CancellationError())
            }
            do throws(PrivSepError) {
                let wake = try push(outgoing, into: &state)
                state.pending[id] = waiter
                return .queued(wake: wake)
            } catch {
                state.pending[id] = nil
                return .failed(error)
            }
        }
        switch outcome {
        case .queued(let wake): if wake { signal() }
        case .failed(let error): waiter.fail(error)
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
        let outgoing = try prepare(envelope, fds: fds)
        let id = try register()
        var message = outgoing
        message.envelope.id = id
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Reply, any Error>) in
                attach(id, .single(continuation), sending: message)
            }
        } onCancel: {
            forget(id)
        }
    }

    /// Sends a request whose replies arrive as a stream, ending after the final one.
    func streamingRequest(_ envelope: Envelope, fds: [FileDescriptor]) throws -> AsyncThrowingStream<Reply, any Error> {
        let outgoing = try prepare(envelope, fds: fds)
        let id = try register()
        var message = outgoing
        message.envelope.id = id
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: Reply.self, bufferingPolicy: .bufferingOldest(options.maxBufferedReplies))
        continuation.onTermination = { [weak self] _ in self?.forget(id) }
        attach(id, .stream(continuation), sending: message)
        return stream
    }

    func setSendLimit(_ maxFrame: Int) {
        state.withLock { $0.sendLimit = min(max(maxFrame, WireLimits.minFrame), WireLimits.maxFrameCeiling) }
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
            if finished { continuation.resume() } else { signal() }
        }
    }

    /// Asks the I/O thread to stop without waiting for it (used when the client goes away).
    func stopSoon() {
        state.withLock { requestStop(&$0) }
        signal()
    }

    private func requestStop(_ state: inout State) {
        guard !state.stopping else { return }
        state.stopping = true
        if state.failure == nil { state.failure = .local(.unavailable, "the client was closed") }
    }

    /// Appends to the outbox; true when the I/O thread needs a wake-up. A message always fits
    /// an empty queue, so one frame of any legal size can be sent.
    private func push(_ outgoing: Outgoing, into state: inout State) throws(PrivSepError) -> Bool {
        if let failure = state.failure { throw failure }
        if state.outboxBytes > 0, state.outboxBytes + outgoing.size > options.maxQueuedBytes {
            throw .local(.unavailable, "outgoing queue full (\(state.outboxBytes) bytes queued, limit \(options.maxQueuedBytes)): the broker is not reading")
        }
        state.outbox.append(outgoing)
        state.outboxBytes += outgoing.size
        let wake = !state.wakePending
        state.wakePending = true
        return wake
    }

    private func signal() {
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
            try drainOutbox(into: connection)
            let (stopping, readBlocked, outboxEmpty) = state.withLock {
                ($0.stopping, $0.outboxBytes > options.maxQueuedBytes, $0.outboxHead >= $0.outbox.count)
            }
            var timeout: Int32 = -1
            if stopping {
                if outboxEmpty, !connection.hasPendingOutput { return }
                if lingerUntil == 0 { lingerUntil = monotonicMilliseconds() + Int64(options.closeLingerMilliseconds) }
                let left = lingerUntil - monotonicMilliseconds()
                if left <= 0 { return }
                timeout = Int32(left)
            }
            var events: Int16 = 0
            if !stopping, !readBlocked { events |= Int16(POLLIN) }
            if connection.hasPendingOutput { events |= Int16(POLLOUT) }
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
            if revents & Int16(POLLOUT) != 0 { _ = try connection.flush() }
            if stopping { continue }
            if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                if try !readAvailable(connection) { return }
            }
        }
    }

    /// Hands queued messages to the connection while it can write them without queuing there
    /// (its own queue's overflow is fatal; ours is bounded and refuses politely).
    private func drainOutbox(into connection: Connection) throws(WireError) {
        while !connection.hasPendingOutput {
            let next = state.withLock { state -> Outgoing? in
                guard state.outboxHead < state.outbox.count else {
                    state.outbox = []
                    state.outboxHead = 0
                    return nil
                }
                let item = state.outbox[state.outboxHead]
                state.outbox[state.outboxHead].fds = []
                state.outboxHead += 1
                state.outboxBytes -= item.size
                if state.outboxHead > 64, state.outboxHead * 2 > state.outbox.count {
                    state.outbox.removeFirst(state.outboxHead)
                    state.outboxHead = 0
                }
                return item
            }
            guard let next else { return }
            do {
                try connection.send(next.envelope, fds: next.fds.map(\.descriptor))
            } catch where !error.isFatal {
                failRequest(next.envelope.id, PrivSepError(error))
            }
            for fd in next.fds { fd.close() }
        }
    }

    private func failRequest(_ id: Int64?, _ error: PrivSepError) {
        guard let id else { return }
        let waiter = state.withLock { $0.pending.removeValue(forKey: id) }
        waiter?.fail(error)
    }

    /// Reads until the socket is drained (bounded per round so writes get their turn); false
    /// once the peer closed the connection.
    private func readAvailable(_ connection: Connection) throws(WireError) -> Bool {
        for _ in 0 ..< 16 {
            switch try connection.read() {
            case .wouldBlock: return true
            case .endOfStream: return false
            case .frames(let outcomes): for outcome in outcomes { dispatch(outcome) }
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

    /// Queues an error reply from the I/O thread itself, past the byte bound: the bound stops
    /// reading when exceeded, so these cannot pile up without limit.
    private func internalReply(_ envelope: Envelope) {
        let size = envelope.jsonValue.serialized().count
        state.withLock { state in
            guard !state.stopping else { return }
            state.outbox.append(Outgoing(envelope: envelope, fds: [], size: size))
            state.outboxBytes += size
        }
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
            state.outbox = []
            state.outboxHead = 0
            state.outboxBytes = 0
            let waiters = Array(state.pending.values)
            state.pending = [:]
            let finishWaiters = state.finishWaiters
            state.finishWaiters = []
            return (waiters, finishWaiters)
        }
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
