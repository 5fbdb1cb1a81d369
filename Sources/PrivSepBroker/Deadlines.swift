// Timers for the event loop: request timeouts, restart backoff, shutdown grace.
//
// A binary min-heap with lazy cancellation: a fired entry is checked against its owner's current
// state (is the request still in flight? is the helper still waiting to restart?) before acting,
// so cancelling costs nothing and the heap never needs a search. Its size is bounded by what can
// be pending: a few entries per helper, and request sweeps (one per new earliest request deadline;
// requests do not get an entry each, see `Broker.scheduleSweep`).

/// What a deadline is for.
enum DeadlineAction: Equatable {
    /// Routed requests may have timed out: sweep the in-flight table.
    case requestSweep
    /// A helper waiting out its restart backoff.
    case restart(slot: Int, generation: UInt16)
    /// The current shutdown phase's grace period ended.
    case shutdownPhase
    /// The handshake of a spawned helper did not arrive in time.
    case helloTimeout(slot: Int, generation: UInt16)
    /// A helper's outgoing queue was full; if it has flushed nothing since, it is stalled.
    case stallCheck(slot: Int, generation: UInt16, flushedBytes: Int)
    /// Accepting control clients may resume after running out of descriptors.
    case controlAccept
    /// A helper over its `max_rate` may be read again.
    case rateRefilled(slot: Int, generation: UInt16)
}

struct Deadline {
    let at: Int64
    let sequence: UInt64
    let action: DeadlineAction

    func precedes(_ other: Deadline) -> Bool {
        at != other.at ? at < other.at : sequence < other.sequence
    }
}

/// A min-heap of deadlines ordered by time, then by insertion.
struct DeadlineQueue {
    private var heap: [Deadline] = []
    private var nextSequence: UInt64 = 0

    var count: Int { heap.count }

    /// The earliest deadline, if any.
    var earliest: Int64? { heap.first?.at }

    mutating func schedule(at time: Int64, _ action: DeadlineAction) {
        heap.append(Deadline(at: time, sequence: nextSequence, action: action))
        nextSequence &+= 1
        siftUp(heap.count - 1)
    }

    /// Removes and returns every action due at or before `now`, earliest first.
    mutating func popDue(now: Int64) -> [DeadlineAction] {
        var due: [DeadlineAction] = []
        while let first = heap.first, first.at <= now {
            due.append(first.action)
            removeFirst()
        }
        return due
    }

    private mutating func removeFirst() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        siftDown(0)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count, heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
