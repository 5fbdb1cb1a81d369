#define _GNU_SOURCE
#include "cprivsep_broker.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>

int cprivsep_pidfd_open(pid_t pid, unsigned int flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

int cprivsep_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int cprivsep_dup_cloexec_min(int fd, int minimum)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, minimum);
}

int cprivsep_pipe_cloexec(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

int cprivsep_peer_uid(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -1;
	*uid = cred.uid;
	return 0;
}

int cprivsep_accept(int fd)
{
	return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}
