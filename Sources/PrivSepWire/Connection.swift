// One end of a privsep socket: recvmsg into a FrameReceiver, frames out with sendmsg.
//
// Each outgoing frame is one sendmsg: a frame with descriptors carries them in SCM_RIGHTS on
// the sendmsg that starts at its length prefix, and only after everything queued before it has
// been written, so no earlier byte shares that sendmsg. On a non-blocking socket EAGAIN leaves
// the rest in a bounded queue (descriptors duplicated, so the caller may close its own at once);
// `flush()` continues it when the socket is writable.

import CPrivSep
import Glibc
import PrivSepJSON
import SystemPackage

/// The result of one read.
public enum ReadStatus: Sendable {
    /// The read completed these frames (possibly none).
    case frames([Incoming])
    /// Non-blocking socket, nothing to read now.
    case wouldBlock
    /// The peer closed its end after whole frames only.
    case endOfStream
}

/// The result of a send.
public enum SendStatus: Sendable, Equatable {
    /// Every byte went to the kernel.
    case sent
    /// Some or all of the frame waits in the queue; call `flush()` when writable.
    case queued
}

/// A connected AF_UNIX SOCK_STREAM socket speaking wire protocol v1.
///
/// Confined to one thread at a time. Closing (or dropping) the connection closes the socket
/// and every descriptor received but not handed out or queued for sending.
public final class Connection: @unchecked Sendable {
    private struct Pending {
        var bytes: [UInt8]
        var sent: Int
        /// Duplicates owned by the queue; sent with the first byte of `bytes`.
        var fds: [OwnedFD]
    }

    /// The socket, owned.
    public let socket: OwnedFD
    /// Limits for both directions.
    public let limits: WireLimits
    private var receiver: FrameReceiver
    private var queue: [Pending] = []
    private var queueHead = 0
    private var queuedBytes = 0
    private var queuedFds = 0
    private var inbox: [Incoming] = []
    private var inboxHead = 0
    private var readBuffer: [UInt8]
    private var fdSlots = [Int32](repeating: -1, count: WireLimits.maxFdsPerFrame + 2)

    /// Wraps `socket` (ownership moves in). `peer` is who writes to the other end.
    public init(socket: OwnedFD, peer: Sender, limits: WireLimits = .default) {
        self.socket = socket
        self.limits = limits
        self.receiver = FrameReceiver(sender: peer, limits: limits)
        self.readBuffer = [UInt8](repeating: 0, count: limits.readChunk)
    }

    /// A connected pair of close-on-exec sockets, e.g. broker end and helper end.
    public static func socketPair(nonBlocking: Bool = false) throws(WireError) -> (OwnedFD, OwnedFD) {
        var pair: [Int32] = [-1, -1]
        guard cps_wire_socketpair(&pair, nonBlocking ? 1 : 0) == 0 else { throw .system("socketpair", errno: errno) }
        return (OwnedFD(adopting: pair[0]), OwnedFD(adopting: pair[1]))
    }

    /// The helper's end from the environment: PRIVSEP_FD (must be 3), PRIVSEP_PROTOCOL (must
    /// be 1). The descriptor is made close-on-exec so the helper's own children do not get it.
    public static func helperEnd(limits: WireLimits = .default) throws(WireError) -> Connection {
        guard let fdText = getenv("PRIVSEP_FD").map({ String(cString: $0) }), fdText == "3" else {
            throw WireError(code: .protocol, reason: .badEnvironment, message: "PRIVSEP_FD is not 3", isFatal: true)
        }
        guard let version = getenv("PRIVSEP_PROTOCOL").map({ String(cString: $0) }), version == "1" else {
            throw WireError(code: .protocol, reason: .badEnvironment, message: "PRIVSEP_PROTOCOL is not 1", isFatal: true)
        }
        guard cps_wire_set_cloexec(3, 1) == 0 else { throw .system("fcntl(3, F_SETFD)", errno: errno) }
        return Connection(socket: OwnedFD(adopting: 3), peer: .broker, limits: limits)
    }

    /// Switches the socket between blocking and non-blocking use.
    public func setNonBlocking(_ on: Bool) throws(WireError) {
        guard cps_wire_set_nonblocking(socket.rawValue, on ? 1 : 0) == 0 else {
            throw .system("fcntl(O_NONBLOCK)", errno: errno)
        }
    }

    /// Bytes waiting in the outgoing queue.
    public var pendingOutputBytes: Int { queuedBytes }

    /// Whether output is queued (poll for POLLOUT and call `flush()`).
    public var hasPendingOutput: Bool { queueHead < queue.count }

    /// Descriptors received and not yet claimed by a complete frame.
    public var pendingInputFds: Int { receiver.pendingFdCount }

    /// Closes the socket and every descriptor held (received or queued).
    public func close() {
        receiver.closeAll()
        for index in queueHead ..< queue.count { for fd in queue[index].fds { fd.close() } }
        queue = []
        queueHead = 0
        queuedBytes = 0
        queuedFds = 0
        inbox = []
        inboxHead = 0
        socket.close()
    }

    deinit { close() }

    // MARK: Receiving

    /// One recvmsg: the frames it completed, `.wouldBlock`, or `.endOfStream`.
    /// Protocol errors and failed system calls are thrown; the connection must then be closed.
    public func read() throws(WireError) -> ReadStatus {
        if let failure = receiver.error { throw failure }
        var fdCount: Int32 = 0
        var truncated: Int32 = 0
        let capacity = readBuffer.count
        var count = 0
        repeat {
            count = readBuffer.withUnsafeMutableBytes { buffer in
                cps_wire_recv(socket.rawValue, buffer.baseAddress, capacity, Int32(WireLimits.maxFdsPerFrame),
                              &fdSlots, &fdCount, &truncated)
            }
        } while count < 0 && errno == EINTR
        if count < 0 {
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
            throw .system("recvmsg", errno: code)
        }
        let fds = fdSlots.prefix(Int(fdCount)).map { OwnedFD(adopting: $0) }
        if truncated != 0 { throw receiver.controlTruncated(closing: fds) }
        if count == 0 {
            for fd in fds { fd.close() }
            try receiver.finish()
            return .endOfStream
        }
        var result: Result<[Incoming], WireError> = .success([])
        readBuffer.withUnsafeBytes { buffer in
            do throws(WireError) {
                result = .success(try receiver.receive(UnsafeRawBufferPointer(rebasing: buffer[0 ..< count]), fds: fds))
            } catch {
                result = .failure(error)
            }
        }
        return .frames(try result.get())
    }

    /// The next complete frame's outcome, reading (and on EAGAIN polling) as needed; nil when
    /// the peer closed the connection cleanly.
    public func receive() throws(WireError) -> Incoming? {
        while true {
            if inboxHead < inbox.count {
                let next = inbox[inboxHead]
                inboxHead += 1
                if inboxHead == inbox.count { inbox = []; inboxHead = 0 }
                return next
            }
            switch try read() {
            case .frames(let outcomes): inbox = outcomes; inboxHead = 0
            case .endOfStream: return nil
            case .wouldBlock: try wait(for: Int16(POLLIN))
            }
        }
    }

    // MARK: Sending

    /// Sends `envelope` with `fds` attached (borrowed: the caller keeps and closes its own).
    /// `envelope.fds` is set from `fds.count`. Returns `.queued` when a non-blocking socket
    /// took only part; throws send_queue_full when the queue bound would be passed.
    @discardableResult
    public func send(_ envelope: Envelope, fds: [FileDescriptor] = []) throws(WireError) -> SendStatus {
        guard fds.count <= WireLimits.maxFdsPerFrame else {
            throw WireError(code: .tooLarge, reason: .unsendable,
                            message: "\(fds.count) descriptors on one frame; at most 8", isFatal: false)
        }
        var message = envelope
        message.fds = fds.count
        let bytes = try message.encodeFrame(maxFrame: limits.maxFrame)
        if hasPendingOutput { _ = try flush() }
        if hasPendingOutput { try enqueue(bytes, sent: 0, fds: fds); return .queued }
        let sent = try write(bytes, from: 0, fds: fds.map(\.rawValue))
        if sent == bytes.count { return .sent }
        try enqueue(bytes, sent: sent, fds: sent == 0 ? fds : [])
        return .queued
    }

    /// Writes queued output; true once the queue is empty.
    @discardableResult
    public func flush() throws(WireError) -> Bool {
        while queueHead < queue.count {
            let pending = queue[queueHead]
            let sent = try write(pending.bytes, from: pending.sent, fds: pending.fds.map(\.rawValue))
            if sent > pending.sent, !pending.fds.isEmpty {
                for fd in pending.fds { fd.close() }
                queuedFds -= pending.fds.count
                queue[queueHead].fds = []
            }
            queuedBytes -= sent - pending.sent
            queue[queueHead].sent = sent
            guard sent == pending.bytes.count else { return false }
            queueHead += 1
        }
        queue = []
        queueHead = 0
        return true
    }

    /// Sends and then flushes until everything is written, polling when the socket is full.
    public func sendAll(_ envelope: Envelope, fds: [FileDescriptor] = []) throws(WireError) {
        try send(envelope, fds: fds)
        while try !flush() { try wait(for: Int16(POLLOUT)) }
    }

    /// Writes `bytes[offset...]` until done or EAGAIN; returns the new offset. The descriptors
    /// go on the first sendmsg only, which starts at `offset` (the frame's first byte).
    private func write(_ bytes: [UInt8], from offset: Int, fds: [Int32]) throws(WireError) -> Int {
        var position = offset
        var attached = fds
        while position < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                attached.withUnsafeBufferPointer { fdBuffer in
                    cps_wire_send(socket.rawValue, buffer.baseAddress! + position, buffer.count - position,
                                  fdBuffer.baseAddress, Int32(fdBuffer.count))
                }
            }
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { break }
                if code == EPIPE || code == ECONNRESET {
                    throw WireError(code: .unavailable, reason: .connectionClosed,
                                    message: "peer closed the connection (\(describeErrno(code)))", isFatal: true, errno: code)
                }
                throw .system("sendmsg", errno: code)
            }
            position += count
            attached = []
        }
        return position
    }

    private func enqueue(_ bytes: [UInt8], sent: Int, fds: [FileDescriptor]) throws(WireError) {
        let remaining = bytes.count - sent
        guard queuedBytes + remaining <= limits.maxQueuedBytes, queuedFds + fds.count <= limits.maxQueuedFds else {
            throw WireError(code: .unavailable, reason: .sendQueueFull,
                            message: "outgoing queue full (\(queuedBytes) bytes, \(queuedFds) fds queued); the peer is not reading",
                            isFatal: true)
        }
        var copies: [OwnedFD] = []
        for fd in fds {
            let copy = cps_wire_dup_cloexec(fd.rawValue)
            guard copy >= 0 else { throw .system("fcntl(F_DUPFD_CLOEXEC)", errno: errno) }
            copies.append(OwnedFD(adopting: copy))
        }
        queue.append(Pending(bytes: bytes, sent: sent, fds: copies))
        queuedBytes += remaining
        queuedFds += copies.count
    }

    private func wait(for events: Int16) throws(WireError) {
        var entry = pollfd(fd: socket.rawValue, events: events, revents: 0)
        while true {
            let ready = poll(&entry, 1, -1)
            if ready >= 0 { return }
            if errno != EINTR { throw .system("poll", errno: errno) }
        }
    }
}
