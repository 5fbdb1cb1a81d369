/* Broker event-loop shims: the Glibc module map does not export these headers. */
#ifndef CPRIVSEP_BROKER_H
#define CPRIVSEP_BROKER_H

#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* pidfd_open(2) has no glibc wrapper on Debian 12. */
int cprivsep_pidfd_open(pid_t pid, unsigned int flags);
/* pidfd_send_signal(2). */
int cprivsep_pidfd_send_signal(int pidfd, int sig);
/* accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): accept4 needs _GNU_SOURCE. */
int cprivsep_accept(int fd);
/* The uid of the peer of a connected AF_UNIX socket (SO_PEERCRED; struct ucred needs _GNU_SOURCE). */
int cprivsep_peer_uid(int fd, uid_t *uid);
/* pipe2(fds, O_CLOEXEC): glibc declares pipe2 only under _GNU_SOURCE. */
int cprivsep_pipe_cloexec(int fds[2]);
/* fcntl(fd, F_DUPFD_CLOEXEC, minimum): fcntl is variadic. */
int cprivsep_dup_cloexec_min(int fd, int minimum);

#endif
