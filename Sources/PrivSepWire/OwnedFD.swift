// A file descriptor with exactly one owner.
//
// Received descriptors are wrapped the moment recvmsg returns them, so every path that drops the
// wrapper (an error, a refused message, a closed connection) closes the descriptor; nothing can
// leak by forgetting. The application takes a descriptor out with `take()` when it keeps it.

import Glibc
import SystemPackage

/// An open file descriptor closed when its owner lets go of it.
///
/// A class rather than a non-copyable struct so that frames can hold arrays of them; it is
/// `@unchecked Sendable` because ownership moves between threads by handing the object over, and
/// only the current holder calls `take()` or `close()`.
public final class OwnedFD: @unchecked Sendable, CustomStringConvertible {
    /// The descriptor number, or -1 once taken or closed.
    public private(set) var rawValue: Int32

    /// Takes ownership of `rawValue`; it is closed on `close()` or when the object goes away.
    public init(adopting rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// Takes ownership of a SystemPackage descriptor.
    public convenience init(adopting descriptor: FileDescriptor) {
        self.init(adopting: descriptor.rawValue)
    }

    /// The descriptor, borrowed: valid only while this object owns it.
    public var descriptor: FileDescriptor { FileDescriptor(rawValue: rawValue) }

    /// Whether the object still owns an open descriptor.
    public var isOpen: Bool { rawValue >= 0 }

    /// Gives up ownership: the caller now closes the returned descriptor. Nil if already gone.
    public func take() -> FileDescriptor? {
        guard rawValue >= 0 else { return nil }
        defer { rawValue = -1 }
        return FileDescriptor(rawValue: rawValue)
    }

    /// Closes the descriptor now (idempotent).
    public func close() {
        guard rawValue >= 0 else { return }
        // Linux releases the descriptor even when close reports EINTR; never retry.
        _ = Glibc.close(rawValue)
        rawValue = -1
    }

    deinit { close() }

    public var description: String { rawValue >= 0 ? "fd \(rawValue)" : "fd (closed)" }
}
