/*
 * relay: a sandboxed stand-in that hands its broker connection to the test.
 *
 * The broker spawns it like any helper (sandboxed, socket at fd 3). It connects to the test's
 * unix socket ($RELAY_SOCKET), sends "NAME PID\n" with fd 3 attached (SCM_RIGHTS), closes its
 * own fd 3, and waits. The test then speaks the protocol on the broker connection directly.
 * A byte from the test is an exit status to exit with; EOF means exit 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "relay: %s: %s\n", what, strerror(errno));
	exit(111);
}

int main(void)
{
	const char *path = getenv("RELAY_SOCKET");
	const char *name = getenv("PRIVSEP_HELPER");
	struct sockaddr_un address = { .sun_family = AF_UNIX };
	char line[128];
	char control[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr message = { 0 };
	struct cmsghdr *cmsg;
	int fd = 3, sock, length;
	unsigned char status;
	ssize_t n;

	if (path == NULL || name == NULL || strlen(path) >= sizeof(address.sun_path)) {
		fprintf(stderr, "relay: RELAY_SOCKET and PRIVSEP_HELPER must be set\n");
		return 111;
	}
	strcpy(address.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		fail("socket");
	if (connect(sock, (struct sockaddr *)&address, sizeof(address)) != 0)
		fail("connect");

	length = snprintf(line, sizeof(line), "%s %d\n", name, (int)getpid());
	iov.iov_base = line;
	iov.iov_len = (size_t)length;
	message.msg_iov = &iov;
	message.msg_iovlen = 1;
	message.msg_control = control;
	message.msg_controllen = sizeof(control);
	cmsg = CMSG_FIRSTHDR(&message);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	if (sendmsg(sock, &message, MSG_NOSIGNAL) != length)
		fail("sendmsg");
	close(3);

	do {
		n = read(sock, &status, 1);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? status : 0;
}
