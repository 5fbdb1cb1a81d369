// The event loop's deadline timer (a timerfd in the epoll set), with a real epoll instance and a
// real pipe: a sleeping wait ends at its deadline and not before, a nearer deadline replaces a
// farther one, a deadline already past ends the wait at once, and no deadline stops the timer.

import Glibc
import Testing

@testable import PrivSepBroker

@Suite struct EventLoopTests {
    /// A pipe whose read end is readable (one byte written); both ends closed by `close`.
    private struct ReadablePipe {
        let readEnd: Int32
        let writeEnd: Int32

        init() throws {
            var ends: [Int32] = [0, 0]
            try #require(pipe(&ends) == 0)
            readEnd = ends[0]
            writeEnd = ends[1]
            var byte: UInt8 = 1
            try #require(write(writeEnd, &byte, 1) == 1)
        }

        func close() {
            _ = Glibc.close(readEnd)
            _ = Glibc.close(writeEnd)
        }
    }

    private static let pipeToken = LoopToken(kind: .control, index: 7)

    /// Waits once, sleeping; returns the sources the handler saw and the wait's return value.
    private func waitOnce(_ loop: EventLoop, until deadline: Int64?) throws -> (tokens: [LoopToken], ready: Int) {
        var tokens: [LoopToken] = []
        let ready = try loop.wait(until: deadline) { token, _ in tokens.append(token) }
        return (tokens, ready)
    }

    @Test func aSleepingWaitEndsAtItsDeadlineAndNotBefore() throws {
        let loop = try EventLoop()
        let deadline = monotonicNanoseconds() + 20_000_000
        let (tokens, ready) = try waitOnce(loop, until: deadline)
        #expect(monotonicNanoseconds() >= deadline)
        // The timer is the loop's own: counted as ready, never handed to the handler.
        #expect(ready == 1)
        #expect(tokens.isEmpty)
    }

    @Test func aNearerDeadlineReplacesAFartherOne() throws {
        let loop = try EventLoop()
        let readable = try ReadablePipe()
        defer { readable.close() }
        try loop.add(readable.readEnd, token: Self.pipeToken, interest: .readable)
        // The pipe ends this wait at once; the timer stays set 30 s ahead.
        let first = try waitOnce(loop, until: monotonicNanoseconds() + 30_000_000_000)
        #expect(first.tokens == [Self.pipeToken])
        loop.remove(readable.readEnd)
        let start = monotonicNanoseconds()
        let deadline = start + 20_000_000
        let second = try waitOnce(loop, until: deadline)
        let end = monotonicNanoseconds()
        #expect(end >= deadline)
        // Not the farther deadline's 30 s: a wide margin, for a loaded machine.
        #expect(end - start < 10_000_000_000)
        #expect(second.ready == 1 && second.tokens.isEmpty)
    }

    @Test func aDeadlineAlreadyPastEndsTheWaitAtOnce() throws {
        let loop = try EventLoop()
        let (tokens, ready) = try waitOnce(loop, until: monotonicNanoseconds() - 1)
        #expect(ready == 1)
        #expect(tokens.isEmpty)
        // Taken: the next look finds nothing.
        #expect(try loop.wait(until: nil, sleep: false) { _, _ in } == 0)
    }

    @Test func noDeadlineStopsTheTimer() throws {
        let loop = try EventLoop()
        let readable = try ReadablePipe()
        defer { readable.close() }
        try loop.add(readable.readEnd, token: Self.pipeToken, interest: .readable)
        let deadline = monotonicNanoseconds() + 1_000_000
        #expect(try waitOnce(loop, until: deadline).tokens == [Self.pipeToken])
        // Past the deadline the timer has fired; a wait with no deadline must not report it.
        while monotonicNanoseconds() < deadline + 1_000_000 {}
        let (tokens, ready) = try waitOnce(loop, until: nil)
        #expect(tokens == [Self.pipeToken])
        #expect(ready == 1)
    }
}
