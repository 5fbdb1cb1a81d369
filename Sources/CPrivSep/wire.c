/* Wire shims: the CMSG layout for SCM_RIGHTS, kept in C because Swift cannot call the macros. */
#define _GNU_SOURCE
#include "cprivsep_wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int
cps_wire_socketpair(int sv[2], int nonblocking)
{
	int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);

	return socketpair(AF_UNIX, type, 0, sv);
}

int
cps_wire_pipe_cloexec(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

int
cps_wire_set_nonblocking(int fd, int on)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags == -1)
		return -1;
	flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, flags);
}

int
cps_wire_set_cloexec(int fd, int on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags == -1)
		return -1;
	flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, flags);
}

int
cps_wire_dup_cloexec(int fd)
{
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

ssize_t
cps_wire_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * CPS_WIRE_SEND_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cmsg;

	if (nfds < 0 || nfds > CPS_WIRE_SEND_MAX_FDS || (nfds > 0 && fds == NULL)) {
		errno = EINVAL;
		return -1;
	}
	/* Without descriptors send(2) does: the kernel then copies no msghdr and no iovec. */
	if (nfds == 0)
		return send(sock, buf, len, MSG_NOSIGNAL);
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	memset(&control, 0, sizeof(control));
	msg.msg_control = control.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
	memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
	return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

ssize_t
cps_wire_recv(int sock, void *buf, size_t len, int maxfds, int *fds, int *nfds,
    int *truncated)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * CPS_WIRE_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cmsg;
	ssize_t n;
	size_t i, count;
	int fd;

	*nfds = 0;
	*truncated = 0;
	if (maxfds < 1 || maxfds > CPS_WIRE_MAX_FDS) {
		errno = EINVAL;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = buf;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control.buf;
	msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)maxfds);
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n == -1)
		return -1;
	if (msg.msg_flags & MSG_CTRUNC)
		*truncated = 1;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
			/* Credentials or anything else were not asked for. */
			*truncated = 1;
			continue;
		}
		count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < count; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
			if (*nfds < CPS_WIRE_MAX_FDS + 2) {
				fds[(*nfds)++] = fd;
			} else {
				/* Cannot happen with the buffer above; never leak if it does. */
				close(fd);
				*truncated = 1;
			}
		}
	}
	return n;
}

int
cps_wire_count_open_fds(void)
{
	DIR *dir;
	struct dirent *entry;
	int count = 0;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] != '.')
			count++;
	}
	closedir(dir);
	return count - 1;
}
