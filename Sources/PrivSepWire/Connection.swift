// One end of a privsep socket: recvmsg into a FrameReceiver, frames out with sendmsg.
//
// Outgoing frames are encoded back to back into one buffer and written with as few sendmsg calls
// as possible. A frame with descriptors carries them in SCM_RIGHTS on a sendmsg of its own that
// starts at its length prefix, after everything queued before it has been written, and ends with
// it, so no other frame's bytes share that sendmsg. On a non-blocking socket EAGAIN leaves the
// rest in a bounded queue (descriptors duplicated, so the caller may close its own at once);
// `flush()` continues it when the socket is writable.

import CPrivSep
import Glibc
import PrivSepJSON
import SystemPackage

/// The result of one read.
public enum ReadStatus: Sendable {
    /// The read completed this many frames (possibly none); their outcomes were appended.
    case frames(Int)
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
    // The properties marked `@exclusivity(unchecked)` are on the per-message path. A connection
    // is confined to one thread and never holds an access to one across a call that reaches it
    // again, so the runtime's dynamic exclusivity checks (a thread-local access set, entered
    // and left on every access) only cost time: part of the 7% of the broker's CPU per message
    // that they took (perf).

    /// A queued frame that carries descriptors: where it lies in `output`, and duplicates of
    /// its descriptors owned by the queue.
    private struct FDFrame {
        var start: Int
        var end: Int
        var fds: [OwnedFD]
    }

    /// The socket, owned.
    public let socket: OwnedFD
    /// Limits for both directions.
    public let limits: WireLimits
    @exclusivity(unchecked) private var receiver: FrameReceiver
    /// Outgoing frames back to back; bytes before `outputStart` are written.
    @exclusivity(unchecked) private var output: [UInt8] = []
    @exclusivity(unchecked) private var outputStart = 0
    @exclusivity(unchecked) private var fdFrames: [FDFrame] = []
    @exclusivity(unchecked) private var queuedFds = 0
    @exclusivity(unchecked) private var inbox: [Incoming] = []
    @exclusivity(unchecked) private var inboxHead = 0
    @exclusivity(unchecked) private var readBuffer: [UInt8]
    @exclusivity(unchecked) private var fdSlots = [Int32](repeating: -1, count: WireLimits.maxFdsPerFrame + 2)

    /// Wraps `socket` (ownership moves in). `peer` is who writes to the other end.
    public init(socket: OwnedFD, peer: Sender, limits: WireLimits = .default) {
        self.socket = socket
        self.limits = limits
        self.receiver = FrameReceiver(sender: peer, limits: limits)
        // Uninitialised: pages become resident only as reads fill them, so a hundred idle
        // connections do not cost a hundred zeroed read buffers.
        let chunk = limits.readChunk
        self.readBuffer = [UInt8](unsafeUninitializedCapacity: chunk) { _, count in count = chunk }
    }

    /// The broker's checks of bodies by type, for the frames read from now on (nil: parse all).
    public func setBodyChecks(_ checks: BodyBytesChecks?) {
        receiver.bodyChecks = checks
    }

    /// The check of the body of the reply to `re` (see `FrameReceiver.expectReply`).
    public func expectReply(to re: Int64, check: BodyBytesCheck?) {
        receiver.expectReply(to: re, check: check)
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
    public var pendingOutputBytes: Int { output.count - outputStart }

    /// Descriptors waiting in the outgoing queue (at most `limits.maxQueuedFds`).
    public var pendingOutputFds: Int { queuedFds }

    /// Whether output is queued (poll for POLLOUT and call `flush()`).
    public var hasPendingOutput: Bool { outputStart < output.count }

    /// Whether the last read returned less than a full buffer: the socket is (for now) drained,
    /// so a non-blocking reader can wait for readiness instead of reading again into EAGAIN.
    @exclusivity(unchecked) public private(set) var lastReadWasShort = false

    /// Descriptors received and not yet claimed by a complete frame.
    public var pendingInputFds: Int { receiver.pendingFdCount }

    /// Closes the socket and every descriptor held (received or queued).
    public func close() {
        receiver.closeAll()
        for frame in fdFrames { for fd in frame.fds { fd.close() } }
        fdFrames = []
        output = []
        outputStart = 0
        queuedFds = 0
        inbox = []
        inboxHead = 0
        socket.close()
    }

    deinit { close() }

    // MARK: Receiving

    /// One recvmsg: appends the outcome of each frame it completed to `incoming` (the caller's
    /// queue, so a read costs no list of its own), or `.wouldBlock`, or `.endOfStream`.
    /// Protocol errors and failed system calls are thrown; the connection must then be closed.
    public func read(into incoming: inout [Incoming]) throws(WireError) -> ReadStatus {
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
        lastReadWasShort = count < capacity
        let fds = fdSlots.prefix(Int(fdCount)).map { OwnedFD(adopting: $0) }
        if truncated != 0 { throw receiver.controlTruncated(closing: fds) }
        if count == 0 {
            for fd in fds { fd.close() }
            try receiver.finish()
            return .endOfStream
        }
        let before = incoming.count
        var failure: WireError?
        readBuffer.withUnsafeBytes { buffer in
            do throws(WireError) {
                try receiver.receive(UnsafeRawBufferPointer(rebasing: buffer[0 ..< count]), fds: fds, into: &incoming)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return .frames(incoming.count - before)
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
            inbox.removeAll(keepingCapacity: true)
            inboxHead = 0
            switch try read(into: &inbox) {
            case .frames: continue
            case .endOfStream: return nil
            case .wouldBlock: try wait(for: Int16(POLLIN))
            }
        }
    }

    // MARK: Sending

    /// Appends one frame to the outgoing buffer without writing it, so that everything queued
    /// for this peer leaves in as few system calls as possible (`flush()`). `fds` are
    /// borrowed: the queue keeps duplicates, so the caller may close its own at once. Throws
    /// too_large over max_frame, and send_queue_full when the queue bound would be passed;
    /// either way nothing is queued.
    public func enqueue(_ envelope: Envelope, fds: [FileDescriptor] = [])
        throws(WireError)
    {
        let start = try appendFrame(envelope, fdCount: fds.count)
        guard !fds.isEmpty else { return }
        var copies: [OwnedFD] = []
        for fd in fds {
            let copy = cps_wire_dup_cloexec(fd.rawValue)
            guard copy >= 0 else {
                output.removeSubrange(start...)
                throw .system("fcntl(F_DUPFD_CLOEXEC)", errno: errno)
            }
            copies.append(OwnedFD(adopting: copy))
        }
        fdFrames.append(FDFrame(start: start, end: output.count, fds: copies))
        queuedFds += copies.count
    }

    /// `enqueue`, keeping the descriptors themselves instead of duplicates: for descriptors the
    /// caller has no further use for (one the broker just opened for a helper). The queue closes
    /// them once sent, so the caller must not close them; on a throw nothing is kept.
    public func enqueue(_ envelope: Envelope, handing fds: [OwnedFD])
        throws(WireError)
    {
        let start = try appendFrame(envelope, fdCount: fds.count)
        guard !fds.isEmpty else { return }
        fdFrames.append(FDFrame(start: start, end: output.count, fds: fds))
        queuedFds += fds.count
    }

    /// Appends one frame's bytes (length prefix and JSON) and returns where it starts; nothing
    /// is appended when it throws.
    private func appendFrame(_ envelope: Envelope, fdCount: Int) throws(WireError) -> Int {
        guard fdCount <= WireLimits.maxFdsPerFrame else {
            throw WireError(code: .tooLarge, reason: .unsendable,
                            message: "\(fdCount) descriptors on one frame; at most 8", isFatal: false)
        }
        let start = output.count
        let length = envelope.appendFrame(to: &output, fds: fdCount)
        guard length <= limits.maxFrame else {
            output.removeSubrange(start...)
            throw WireError(code: .tooLarge, reason: .unsendable,
                            message: "message of \(length) bytes exceeds max_frame \(limits.maxFrame)", isFatal: false)
        }
        guard pendingOutputBytes <= limits.maxQueuedBytes, queuedFds + fdCount <= limits.maxQueuedFds else {
            output.removeSubrange(start...)
            throw WireError(code: .unavailable, reason: .sendQueueFull,
                            message: "outgoing queue full (\(pendingOutputBytes) bytes, \(queuedFds) fds queued); the peer is not reading",
                            isFatal: true)
        }
        return start
    }

    /// Queues `envelope` (see `enqueue`) and writes what the socket takes now. Returns
    /// `.queued` when a non-blocking socket took only part.
    @discardableResult
    public func send(_ envelope: Envelope, fds: [FileDescriptor] = []) throws(WireError) -> SendStatus {
        try enqueue(envelope, fds: fds)
        return try flush() ? .sent : .queued
    }

    /// Writes queued output; true once the queue is empty. Frames without descriptors go
    /// together in one sendmsg; a frame with descriptors goes alone, in a sendmsg that starts at
    /// its length prefix and ends with it, so the receiver can tell whose descriptors they are.
    @discardableResult
    public func flush() throws(WireError) -> Bool {
        while outputStart < output.count {
            var end = fdFrames.first?.start ?? output.count
            var attached: [OwnedFD] = []
            if let frame = fdFrames.first, frame.start == outputStart {
                end = frame.end
                attached = frame.fds
            }
            let sent = try writeOnce(outputStart, end, fds: attached)
            guard sent > 0 else {
                compactOutput()
                return false
            }
            if !attached.isEmpty {
                // The descriptors went with the frame's first bytes; the rest of it is plain data.
                let frame = fdFrames.removeFirst()
                for fd in frame.fds { fd.close() }
                queuedFds -= frame.fds.count
            }
            outputStart += sent
        }
        output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
        outputStart = 0
        return true
    }

    /// Sends and then flushes until everything is written, polling when the socket is full.
    public func sendAll(_ envelope: Envelope, fds: [FileDescriptor] = []) throws(WireError) {
        try send(envelope, fds: fds)
        while try !flush() { try wait(for: Int16(POLLOUT)) }
    }

    /// One sendmsg of `output[from..<to]`; the bytes written, 0 when the socket is full.
    private func writeOnce(_ from: Int, _ to: Int, fds: [OwnedFD]) throws(WireError) -> Int {
        while true {
            // The numbers on the stack: no array per frame sent.
            let count = withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(fds.count, 1)) { numbers in
                for (slot, fd) in fds.enumerated() { numbers[slot] = fd.rawValue }
                return output.withUnsafeBytes { buffer in
                    cps_wire_send(socket.rawValue, buffer.baseAddress! + from, to - from, numbers.baseAddress,
                                  Int32(fds.count))
                }
            }
            if count >= 0 { return count }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return 0 }
            if code == EPIPE || code == ECONNRESET {
                throw WireError(code: .unavailable, reason: .connectionClosed,
                                message: "peer closed the connection (\(describeErrno(code)))", isFatal: true, errno: code)
            }
            throw .system("sendmsg", errno: code)
        }
    }

    /// Drops written bytes from the front once they are most of the buffer.
    private func compactOutput() {
        guard outputStart > 64 << 10, outputStart * 2 > output.count else { return }
        output.removeSubrange(0..<outputStart)
        for index in fdFrames.indices {
            fdFrames[index].start -= outputStart
            fdFrames[index].end -= outputStart
        }
        outputStart = 0
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
