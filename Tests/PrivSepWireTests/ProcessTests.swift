// Two processes over a socketpair, descriptors passed both ways. The peer is a small C program
// compiled here, an independent implementation of the framing and SCM_RIGHTS layout, started
// with posix_spawn (never fork) with its end at fd 3 as a helper would be.

import Glibc
import PrivSepJSON
import PrivSepWire
import Testing

/// The peer: reads one request carrying one fd, reads the file through it, answers with a
/// frame carrying a pipe that holds "helper saw: <content>", then expects end of stream.
/// Exit status 0 only if every step held.
private let peerSource = #"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int received_fd = -1;

static int fill(int s, unsigned char *buf, size_t want) {
    size_t have = 0;
    while (have < want) {
        union { char b[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr a; } control;
        struct iovec iov = { buf + have, want - have };
        struct msghdr msg = { 0 };
        msg.msg_iov = &iov; msg.msg_iovlen = 1;
        msg.msg_control = control.b; msg.msg_controllen = sizeof(control.b);
        ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
        if (n <= 0) return -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
                if (received_fd != -1) return -1;
                memcpy(&received_fd, CMSG_DATA(c), sizeof(int));
            } else {
                return -1;
            }
        }
        have += (size_t)n;
    }
    return 0;
}

int main(void) {
    unsigned char header[4], body[4096], content[1024];
    if (fill(3, header, 4)) return 10;
    size_t len = (size_t)header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
    if (len < 2 || len >= sizeof(body)) return 11;
    if (fill(3, body, len)) return 12;
    body[len] = 0;
    if (received_fd < 0 || !strstr((char *)body, "\"fds\":1")) return 13;
    char *id = strstr((char *)body, "\"id\":");
    if (!id) return 14;
    long request = strtol(id + 5, NULL, 10);
    ssize_t n = read(received_fd, content, sizeof(content) - 1);
    if (n < 0) return 15;
    content[n] = 0;
    close(received_fd);
    int p[2];
    if (pipe(p)) return 16;
    char text[1100];
    int tl = snprintf(text, sizeof(text), "helper saw: %s", (char *)content);
    if (write(p[1], text, (size_t)tl) != tl) return 17;
    close(p[1]);
    char reply[256];
    int rl = snprintf(reply + 4, sizeof(reply) - 4, "{\"re\":%ld,\"body\":{\"length\":%zd},\"fds\":1}", request, n);
    reply[0] = 0; reply[1] = 0; reply[2] = 0; reply[3] = (char)rl;
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr a; } control;
    memset(&control, 0, sizeof(control));
    struct iovec iov = { reply, (size_t)rl + 4 };
    struct msghdr msg = { 0 };
    msg.msg_iov = &iov; msg.msg_iovlen = 1;
    msg.msg_control = control.b; msg.msg_controllen = sizeof(control.b);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    if (sendmsg(3, &msg, MSG_NOSIGNAL) != rl + 4) return 18;
    close(p[0]);
    unsigned char tail;
    if (read(3, &tail, 1) != 0) return 19;
    return 0;
}
"""#

/// Compiles the peer into a fresh directory; returns its path.
private func buildPeer() throws -> String {
    let directory = try makeTempDirectory()
    let source = directory + "/peer.c"
    let binary = directory + "/peer"
    let fd = open(source, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw TestFailure("create \(source)") }
    let bytes = Array(peerSource.utf8)
    let written = write(fd, bytes, bytes.count)
    close(fd)
    guard written == bytes.count else { throw TestFailure("write \(source)") }
    let status = waitExit(try spawn(["cc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-o", binary, source]))
    guard status == 0 else { throw TestFailure("cc exited \(status)") }
    return binary
}

@Suite struct ProcessTests {
    @Test func fdsBothWaysBetweenTwoProcesses() throws {
        let peer = try buildPeer()
        let (parentEnd, childEnd) = try Connection.socketPair()
        let pid = try spawn([peer], environment: ["PRIVSEP_FD=3", "PRIVSEP_HELPER=peer", "PRIVSEP_PROTOCOL=1"],
                            fdMap: [(child: 3, parent: childEnd.rawValue)])
        childEnd.close()
        let connection = Connection(socket: parentEnd, peer: .helper)
        let content = "content passed by descriptor \(getpid())"
        let file = try makeTempFile(content)
        try connection.sendAll(.request("test.read", id: 42), fds: [file.descriptor])
        file.close()
        let incoming = try connection.receive()
        guard case .message(let reply)? = incoming else {
            Issue.record("no reply: \(String(describing: incoming))")
            _ = waitExit(pid)
            return
        }
        #expect(reply.envelope.kind == .reply)
        #expect(reply.envelope.re == 42)
        #expect(reply.envelope.body["length"]?.int64Value == Int64(content.utf8.count))
        #expect(reply.fds.count == 1)
        if let pipe = reply.fds.first {
            #expect(String(decoding: readToEnd(pipe.rawValue), as: UTF8.self) == "helper saw: " + content)
        }
        connection.close()
        #expect(waitExit(pid) == 0)
    }
}
