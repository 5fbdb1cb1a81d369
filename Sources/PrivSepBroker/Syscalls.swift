// The few raw system calls the broker makes outside the wire and sandbox modules.

import CPrivSep
import Glibc
import PrivSepWire

/// read(2), retried on EINTR.
func readFD(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    while true {
        let result = read(fd, buffer, count)
        if result < 0 && errno == EINTR { continue }
        return result
    }
}

/// Whether the last failed read only means "nothing now".
func isRetryableReadError() -> Bool {
    errno == EAGAIN || errno == EWOULDBLOCK
}

/// A close-on-exec pipe whose read end is non-blocking (the broker's end); the write end is
/// handed to the launcher by posix_spawn file actions.
func makeOutputPipe() throws(SystemCallError) -> (read: OwnedFD, write: OwnedFD) {
    var ends: [Int32] = [-1, -1]
    guard cprivsep_pipe_cloexec(&ends) == 0 else { throw SystemCallError("pipe2") }
    let readEnd = OwnedFD(adopting: ends[0])
    let writeEnd = OwnedFD(adopting: ends[1])
    guard cps_wire_set_nonblocking(readEnd.rawValue, 1) == 0 else { throw SystemCallError("fcntl(O_NONBLOCK)") }
    return (readEnd, writeEnd)
}

/// How a process ended, as waitpid reported it.
enum ExitStatus: Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus status: Int32) {
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    var isSuccess: Bool { self == .exited(0) }

    var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signaled(let signal): return "killed by signal \(signal) (\(signalName(signal)))"
        }
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGKILL: return "SIGKILL"
    case SIGTERM: return "SIGTERM"
    case SIGSEGV: return "SIGSEGV"
    case SIGABRT: return "SIGABRT"
    case SIGSYS: return "SIGSYS"
    case SIGINT: return "SIGINT"
    case SIGHUP: return "SIGHUP"
    case SIGPIPE: return "SIGPIPE"
    case SIGBUS: return "SIGBUS"
    case SIGILL: return "SIGILL"
    case SIGFPE: return "SIGFPE"
    default: return "signal \(signal)"
    }
}

/// Reaps `pid` if it has exited; nil while it is still running.
func reap(_ pid: Int32) -> ExitStatus? {
    var status: Int32 = 0
    while true {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return ExitStatus(waitStatus: status) }
        if result < 0 && errno == EINTR { continue }
        return nil
    }
}

/// The signals the broker takes through its signalfd instead of handlers.
let brokerSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

/// Blocks `brokerSignals` (and ignores SIGPIPE) and returns a signalfd for them.
///
/// Called before any helper is spawned; the launcher resets its own mask and handlers.
func makeSignalFD() throws(SystemCallError) -> OwnedFD {
    signal(SIGPIPE, SIG_IGN)
    var mask = sigset_t()
    sigemptyset(&mask)
    for signal in brokerSignals { sigaddset(&mask, signal) }
    guard sigprocmask(SIG_BLOCK, &mask, nil) == 0 else { throw SystemCallError("sigprocmask") }
    let fd = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
    guard fd >= 0 else { throw SystemCallError("signalfd") }
    return OwnedFD(adopting: fd)
}

/// Reads pending signals from a signalfd.
func readSignals(_ fd: OwnedFD) -> [Int32] {
    var signals: [Int32] = []
    var info = signalfd_siginfo()
    let size = MemoryLayout<signalfd_siginfo>.size
    while withUnsafeMutableBytes(of: &info, { readFD(fd.rawValue, $0.baseAddress, size) }) == size {
        signals.append(Int32(bitPattern: info.ssi_signo))
    }
    return signals
}

/// The number of open descriptors in this process (for status and leak checks).
func openDescriptorCount() -> Int {
    Int(cps_wire_count_open_fds())
}
