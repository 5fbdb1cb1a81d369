// The broker's single-threaded readiness loop: epoll plus a monotonic clock.
//
// One thread, level-triggered epoll, every fd non-blocking. Each registration carries a token
// (the broker's own id for the source) so dispatch never has to map fds back to owners, and a
// closed fd reused by the kernel cannot be confused with its predecessor.
//
// Deadlines wake the loop through a timerfd in the epoll set, not through epoll_wait's timeout:
// a timeout arms a kernel timer at every sleep, which on this VM cost the privsep.ping round
// trip about 0.25 us (docs/performance.md, eleventh round), while the timerfd is set again only
// when the earliest deadline changes, a few times per helper's life.

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
    /// The deadline timer (CLOCK_MONOTONIC, absolute), registered with `timerData`.
    private let timerFD: Int32
    /// When `timerFD` fires, if it is set; nil while it is not.
    private var timerAt: Int64?
    /// epoll's data word for `timerFD`: no token packs to 0 (kinds start at 1).
    private static let timerData: UInt64 = 0
    // Filled by epoll_wait and read before the handlers run, which never reach it: the dynamic
    // exclusivity check on every access would only cost time (see Broker).
    @exclusivity(unchecked) private var events: [epoll_event]

    public init() throws(SystemCallError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SystemCallError("epoll_create1") }
        let timer = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        guard timer >= 0 else {
            let error = SystemCallError("timerfd_create")
            close(fd)
            throw error
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = EventLoop.timerData
        guard epoll_ctl(fd, EPOLL_CTL_ADD, timer, &event) == 0 else {
            let error = SystemCallError("epoll_ctl")
            close(timer)
            close(fd)
            throw error
        }
        epollFD = fd
        timerFD = timer
        events = [epoll_event](repeating: epoll_event(), count: EventLoop.maxEventsPerWait)
    }

    deinit {
        close(timerFD)
        close(epollFD)
    }

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

    /// Waits for readiness and calls `handle` for each ready source; returns how many sources
    /// were ready (the deadline counts as one). With `sleep` false it only looks; else it sleeps
    /// until a source is ready or `deadline` (monotonic nanoseconds, nil: none) has passed.
    /// EINTR is a wakeup with no events.
    @discardableResult
    public func wait(until deadline: Int64?, sleep: Bool = true, _ handle: (LoopToken, Readiness) -> Void)
        throws(SystemCallError) -> Int
    {
        if sleep && deadline != timerAt { try setTimer(deadline) }
        let count = events.withUnsafeMutableBufferPointer { buffer in
            epoll_wait(epollFD, buffer.baseAddress, Int32(buffer.count), sleep ? -1 : 0)
        }
        if count < 0 {
            if errno == EINTR { return 0 }
            throw SystemCallError("epoll_wait")
        }
        for i in 0..<Int(count) {
            let event = events[i]
            if event.data.u64 == EventLoop.timerData {
                expireTimer()
                continue
            }
            guard let token = LoopToken(packed: event.data.u64) else { continue }
            handle(token, Readiness(rawValue: event.events))
        }
        return Int(count)
    }

    /// Sets the timer to fire at `deadline`, or stops it (nil). A deadline already past fires at once.
    private func setTimer(_ deadline: Int64?) throws(SystemCallError) {
        var value = itimerspec()
        if let deadline {
            // An all-zero value would stop the timer instead of firing it.
            let at = max(deadline, 1)
            value.it_value = timespec(tv_sec: Int(at / 1_000_000_000), tv_nsec: Int(at % 1_000_000_000))
        }
        guard timerfd_settime(timerFD, Int32(TFD_TIMER_ABSTIME), &value, nil) == 0 else {
            throw SystemCallError("timerfd_settime")
        }
        timerAt = deadline
    }

    /// Takes the timer's expiry count, so it is no longer readable; the caller's next wait sets it again.
    private func expireTimer() {
        var expirations: UInt64 = 0
        _ = read(timerFD, &expirations, MemoryLayout<UInt64>.size)
        timerAt = nil
    }
}

/// Monotonic time in nanoseconds; never goes backwards, unaffected by clock changes.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
