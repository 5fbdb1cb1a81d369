// The test-support child process type itself: bounded waits, killed children, closed descriptors.

import Glibc
import Testing

struct SpawnedTests {
    @Test func runCollectsStatusAndBothStreams() throws {
        let run = try Spawned.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout: 30)
        #expect(run.status == 3)
        #expect(run.output == "out\n")
        #expect(run.errors == "err\n")
    }

    @Test func aWaitThatRunsOutKillsTheChildAndSaysSo() throws {
        let child = try Spawned(["/bin/sleep", "600"])
        #expect {
            try child.wait(timeout: 0.2)
        } throws: { error in
            "\(error)".contains("/bin/sleep 600: did not exit within 0.2 s (killed)")
        }
        // Reaped: the pid names no process (and no zombie) any more.
        #expect(kill(child.pid, 0) == -1 && errno == ESRCH)
    }

    @Test func aRunWhoseOutputNeverEndsIsBounded() throws {
        #expect {
            try Spawned.run(["/bin/sleep", "600"], timeout: 0.2)
        } throws: { error in
            "\(error)".contains("its output did not end within 0.2 s (killed)")
        }
        #expect {
            try Spawned.run(["/bin/sh", "-c", "head -c 5000 /dev/zero"], timeout: 30, limit: 4096)
        } throws: { error in
            "\(error)".contains("wrote more than 4096 bytes to stdout")
        }
    }

    @Test func aSignalledChildReportsTheShellsStatus() throws {
        let child = try Spawned(["/bin/sleep", "600"])
        child.signal(SIGTERM)
        #expect(try child.wait(timeout: 30) == 128 + SIGTERM)
    }

    @Test func theChildInheritsNoDescriptorBeyondStderr() throws {
        // A descriptor the test process holds without close-on-exec, as other code may.
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let run = try Spawned.run(["/bin/sh", "-c", "ls /proc/$$/fd; exit $?"], timeout: 30)
        #expect(run.status == 0)
        #expect(run.output.split(separator: "\n").sorted() == ["0", "1", "2"])
    }
}
