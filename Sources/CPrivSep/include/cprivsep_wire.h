/* Wire shims: socketpair with flags, sendmsg/recvmsg with SCM_RIGHTS.
 *
 * Swift cannot expand the CMSG_* macros, so the control-message layout lives here and nowhere
 * else. Every function returns -1 with errno set on failure, as the syscalls do. */
#ifndef CPRIVSEP_WIRE_H
#define CPRIVSEP_WIRE_H

#include <stddef.h>
#include <sys/types.h>

/* The most descriptors one frame may carry (wire protocol v1: fds is 1..8). */
#define CPS_WIRE_MAX_FDS 8

/* The most descriptors cps_wire_send accepts. Above the protocol limit on purpose: tests send
 * more than a receiver accepts to provoke MSG_CTRUNC. Connection enforces CPS_WIRE_MAX_FDS. */
#define CPS_WIRE_SEND_MAX_FDS 32

/* socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC [| SOCK_NONBLOCK]). */
int cps_wire_socketpair(int sv[2], int nonblocking);

/* pipe2(fds, O_CLOEXEC): both ends close-on-exec atomically, so a concurrent posix_spawn
 * in another thread cannot inherit them. */
int cps_wire_pipe_cloexec(int fds[2]);

/* Sets or clears O_NONBLOCK (fcntl is variadic). */
int cps_wire_set_nonblocking(int fd, int on);

/* Sets or clears FD_CLOEXEC. */
int cps_wire_set_cloexec(int fd, int on);

/* fcntl(fd, F_DUPFD_CLOEXEC, 3). */
int cps_wire_dup_cloexec(int fd);

/* One sendmsg(2) with MSG_NOSIGNAL of `len` bytes; when nfds > 0 the message carries those
 * descriptors in one SCM_RIGHTS control message (nfds <= CPS_WIRE_SEND_MAX_FDS, else EINVAL). */
ssize_t cps_wire_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* One recvmsg(2) with MSG_CMSG_CLOEXEC into buf. The control buffer has room for `maxfds`
 * descriptors (1..CPS_WIRE_MAX_FDS). Every descriptor the kernel installed is stored in fds[],
 * which must hold CPS_WIRE_MAX_FDS + 2 entries (CMSG alignment can admit one more than asked),
 * and counted in *nfds. *truncated is set when MSG_CTRUNC was reported or a control message
 * was not SCM_RIGHTS; the caller must then close what it got and treat the stream as broken. */
ssize_t cps_wire_recv(int sock, void *buf, size_t len, int maxfds, int *fds, int *nfds,
                      int *truncated);

/* The number of descriptors currently open in this process (entries of /proc/self/fd, minus
 * the one used to list them), or -1. Used by tests that prove nothing leaks. */
int cps_wire_count_open_fds(void);

#endif
