// Requests routed between helpers and not yet finally answered.
//
// The broker gives every forwarded request its own id, so a serving helper never sees (and can
// never forge a reply to) another helper's ids, and two requesters that both use id 1 cannot
// collide. The table is what keeps the promise: every entry leaves it exactly once, by the final
// reply, a timeout, or the death of the serving helper, and each way out sends one final reply.

/// A helper slot and the generation of the process that filled it.
struct HelperRef: Hashable {
    let slot: Int
    let generation: UInt16
}

/// One routed request.
struct InFlightRequest {
    let brokerID: Int64
    let requester: HelperRef
    /// The id the requester chose; replies are sent back under it.
    let requesterID: Int64
    /// The serving slot, and the generation the request was (or will be) delivered to.
    var server: HelperRef
    let routed: RoutedType
    var type: String { routed.name }
    /// When the request times out; pushed back by each partial (`more`) reply.
    var deadline: Int64
}

/// The routed requests, indexed by broker id and by requester.
struct InFlightTable {
    private var byBrokerID: [Int64: InFlightRequest] = [:]
    /// By requester slot: the ids it has in flight, to refuse duplicates. An array, grown to the
    /// highest slot that made a request: slots are few and small, and an Int key was hashed three
    /// times a request.
    private var idsByRequester: [Set<Int64>] = []
    private var nextBrokerID: Int64 = 1

    var count: Int { byBrokerID.count }

    /// The number of requests `slot` has in flight as a requester.
    func countFrom(_ slot: Int) -> Int { slot < idsByRequester.count ? idsByRequester[slot].count : 0 }

    /// Whether `slot` already has a request with `id` in flight.
    func contains(requester slot: Int, id: Int64) -> Bool {
        slot < idsByRequester.count && idsByRequester[slot].contains(id)
    }

    /// Records a request and returns the broker id it is forwarded under.
    mutating func insert(requester: HelperRef, requesterID: Int64, server: HelperRef, routed: RoutedType,
                         deadline: Int64) -> Int64
    {
        let brokerID = nextBrokerID
        // 2^53 - 1 ids at one per nanosecond last over a hundred days; wrap rather than trap.
        nextBrokerID = nextBrokerID >= (1 << 53) - 1 ? 1 : nextBrokerID + 1
        byBrokerID[brokerID] = InFlightRequest(
            brokerID: brokerID, requester: requester, requesterID: requesterID, server: server,
            routed: routed, deadline: deadline)
        if requester.slot >= idsByRequester.count {
            idsByRequester.append(contentsOf: repeatElement([], count: requester.slot + 1 - idsByRequester.count))
        }
        idsByRequester[requester.slot].insert(requesterID)
        return brokerID
    }

    subscript(brokerID: Int64) -> InFlightRequest? { byBrokerID[brokerID] }

    /// A request held while its server restarted goes to the new process.
    mutating func reassign(brokerID: Int64, to server: HelperRef) {
        byBrokerID[brokerID]?.server = server
    }

    mutating func extendDeadline(brokerID: Int64, to deadline: Int64) {
        byBrokerID[brokerID]?.deadline = deadline
    }

    /// Removes the requests whose deadline is at or before `now` (oldest first) and returns them
    /// with the earliest deadline left. O(requests in flight), which per-helper caps bound.
    mutating func removeExpired(now: Int64) -> (expired: [InFlightRequest], next: Int64?) {
        var expiredIDs: [Int64] = []
        var next: Int64?
        for request in byBrokerID.values {
            if request.deadline <= now {
                expiredIDs.append(request.brokerID)
            } else if request.deadline < next ?? .max {
                next = request.deadline
            }
        }
        return (expiredIDs.sorted().compactMap { remove(brokerID: $0) }, next)
    }

    /// Removes and returns the request; nil if it already left the table.
    @discardableResult
    mutating func remove(brokerID: Int64) -> InFlightRequest? {
        guard let request = byBrokerID.removeValue(forKey: brokerID) else { return nil }
        // An emptied set stays (one per slot), so the next request does not allocate again.
        idsByRequester[request.requester.slot].remove(request.requesterID)
        return request
    }

    /// How many requests each server slot has to answer.
    func countsByServer() -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for request in byBrokerID.values { counts[request.server.slot, default: 0] += 1 }
        return counts
    }

    /// Removes and returns every request served by `slot`, oldest first.
    mutating func removeAll(servedBy slot: Int) -> [InFlightRequest] {
        let ids = byBrokerID.values.filter { $0.server.slot == slot }.map(\.brokerID).sorted()
        return ids.compactMap { remove(brokerID: $0) }
    }

    /// Removes every request made by `slot`: nobody is left to answer.
    mutating func removeAll(requestedBy slot: Int) -> [InFlightRequest] {
        let ids = byBrokerID.values.filter { $0.requester.slot == slot }.map(\.brokerID).sorted()
        return ids.compactMap { remove(brokerID: $0) }
    }
}
