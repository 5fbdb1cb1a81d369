// The broker's single-threaded readiness loop: epoll plus a monotonic clock.
//
// One thread, level-triggered epoll, every fd non-blocking. Each registration carries a token
// (the broker's own id for the source) so dispatch never has to map fds back to owners, and a
// closed fd reused by the kernel cannot be confused with its predecessor.

import CPrivSep
import Glibc

/// What a registered fd belongs to; stored in epoll's data word.
public struct LoopToken: Hashable, Sendable {
    /// The source kind, so the broker knows which handler to call.
    public enum Kind: UInt8, Sendable {
        case helperSocket = 1, helperStdout, helperStderr, helperPidfd, signal, control, controlClient
    }

    public let kind: Kind
    /// An index that the owner of `kind` interprets (a helper slot, a client number).
    public let index: UInt32
    /// Generation of the slot, so a stale event for a recycled slot is ignored.
    public let generation: UInt16

    public init(kind: Kind, index: UInt32, generation: UInt16 = 0) {
        self.kind = kind
        self.index = index
        self.generation = generation
    }

    var packed: UInt64 {
        UInt64(kind.rawValue) << 56 | UInt64(generation) << 32 | UInt64(index)
    }

    init?(packed: UInt64) {
        guard let kind = Kind(rawValue: UInt8(truncatingIfNeeded: packed >> 56)) else { return nil }
        self.init(
            kind: kind, index: UInt32(truncatingIfNeeded: packed),
            generation: UInt16(truncatingIfNeeded: packed >> 32))
    }
}

/// The readiness a source asks for or reports.
public struct Readiness: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = Readiness(rawValue: EPOLLIN.rawValue)
    public static let writable = Readiness(rawValue: EPOLLOUT.rawValue)
    /// Peer hung up or the fd is in error; reported whether asked for or not.
    public static let hangup = Readiness(rawValue: EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue)
}

/// A system call that failed, named, with its errno.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// An epoll instance and the events of the last wait.
public final class EventLoop {
    /// Upper bound on events taken per wait, so one busy wakeup cannot starve the timers.
    public static let maxEventsPerWait = 256

    private let epollFD: Int32
    // Filled by epoll_wait and read before the handlers run, which never reach it: the dynamic
    // exclusivity check on every access would only cost time (see Broker).
    @exclusivity(unchecked) private var events: [epoll_event]

    public init() throws(SystemCallError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SystemCallError("epoll_create1") }
        epollFD = fd
        events = [epoll_event](repeating: epoll_event(), count: EventLoop.maxEventsPerWait)
    }

    deinit { close(epollFD) }

    /// Starts watching `fd` for `interest`.
    public func add(_ fd: Int32, token: LoopToken, interest: Readiness) throws(SystemCallError) {
        try control(EPOLL_CTL_ADD, fd, token: token, interest: interest)
    }

    /// Changes what `fd` is watched for.
    public func modify(_ fd: Int32, token: LoopToken, interest: Readiness) throws(SystemCallError) {
        try control(EPOLL_CTL_MOD, fd, token: token, interest: interest)
    }

    /// Stops watching `fd`. Closing an fd removes it too; this is for fds that stay open.
    public func remove(_ fd: Int32) {
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
    }

    private func control(_ operation: Int32, _ fd: Int32, token: LoopToken, interest: Readiness)
        throws(SystemCallError)
    {
        var event = epoll_event()
        // Half-close is only news to a reader; a paused source asking for it would spin.
        event.events = interest.contains(.readable) ? interest.rawValue | EPOLLRDHUP.rawValue : interest.rawValue
        event.data.u64 = token.packed
        guard epoll_ctl(epollFD, operation, fd, &event) == 0 else { throw SystemCallError("epoll_ctl") }
    }

    /// Waits for readiness, at most `timeoutNanoseconds` (nil: no limit), and calls `handle` for
    /// each ready source; returns how many were ready. EINTR is a wakeup with no events.
    @discardableResult
    public func wait(timeoutNanoseconds: Int64?, _ handle: (LoopToken, Readiness) -> Void) throws(SystemCallError) -> Int {
        var timeoutMilliseconds: Int32 = -1
        if let timeoutNanoseconds {
            // Round up so a deadline 0.3 ms away does not spin with a zero timeout.
            let milliseconds = (max(timeoutNanoseconds, 0) + 999_999) / 1_000_000
            timeoutMilliseconds = Int32(min(milliseconds, Int64(Int32.max)))
        }
        let count = events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(epollFD, buffer.baseAddress, Int32(buffer.count), timeoutMilliseconds)
        }
        if count < 0 {
            if errno == EINTR { return 0 }
            throw SystemCallError("epoll_wait")
        }
        for i in 0..<Int(count) {
            let event = events[i]
            guard let token = LoopToken(packed: event.data.u64) else { continue }
            handle(token, Readiness(rawValue: event.events))
        }
        return Int(count)
    }
}

/// Monotonic time in nanoseconds; never goes backwards, unaffected by clock changes.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
