// The one lock type of the client and the broker.
//
// Why not Synchronization.Mutex: on Linux a contended Mutex is handed from one thread to the
// next by the kernel (FUTEX_LOCK_PI / FUTEX_UNLOCK_PI) and by a spin loop inside the
// uninstrumented Synchronization library, so the thread sanitizer sees no ordering between the
// two critical sections and reports every contended one as a data race. A pthread mutex costs
// the same here (glibc takes it with one atomic when uncontended) and the sanitizer intercepts
// it, so a race it reports is a real one.

import Glibc

/// A value that is only read or changed while holding a mutex.
///
/// `@unchecked Sendable`: the value is reachable only through `withLock`, which holds the mutex
/// for the whole access.
package final class Locked<State>: @unchecked Sendable {
    /// On the heap: a pthread mutex must not move once initialised.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Exclusivity is what the mutex guarantees; the runtime check would only add a call.
    @exclusivity(unchecked) private var state: State

    package init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        // Default attributes cannot fail to initialise (no allocation on Linux).
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the mutex held. `body` must not take this lock again (a default mutex
    /// deadlocks rather than recursing).
    @inline(__always)
    package func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
