/*
 * Broker benchmarks (not tests): the raw socketpair baselines and the helpers that
 * run under the real broker, in one program so both sides use the same framing code.
 *
 *   brokerbench raw-rtt N REPS           ping-pong over a socketpair with a forked peer
 *   brokerbench raw-fd N REPS            the same, one SCM_RIGHTS descriptor each way
 *   brokerbench raw-oneway N REPS        per-frame writes from a forked writer, msg/s
 * The floor, a zero-work broker in C (epoll, recvmsg, frames split by their prefix, one
 * sendmsg per peer per wakeup, no JSON) between forked processes, no privsep involved:
 *   brokerbench floor-rtt N REPS         the raw-rtt client; the relay answers a canned reply
 *   brokerbench floor-routed N REPS      the raw-rtt client; the relay forwards to the raw peer
 *   brokerbench floor-oneway N REPS      the raw-oneway writer and reader, through the relay
 *   brokerbench floor-fd N REPS [PATH]   floor-rtt, the relay opening PATH (/etc/hostname) for
 *                                        each reply and sending it (SCM_RIGHTS, one per round trip)
 * FLOOR_SPIN_NS=W makes the relay compute for W ns per frame (a clock loop in user space): a
 * broker's own work per message without its code, to see what that much work costs a round trip.
 * FLOOR_RELAY_CPU=C moves the relay to CPU C as it starts (sched_setaffinity); run the caller
 * pinned to another CPU and the relay is alone on its CPU, its peers together on theirs.
 * FLOOR_AUDIT=LOG makes floor-fd make the system calls privsep makes per file.open instead of
 * one open: openat2 beneath PATH's directory (O_NONBLOCK), fstat, fcntl(F_SETFL), and a
 * 300-byte audit line written to LOG (opened as bench.py opens the broker's log) with one write.
 * Under the broker (PRIVSEP_FD set), the result lines go to stdout, which the broker logs:
 *   brokerbench ping N REPS lib|tree|raw privsep.ping round trips: libprivsep with each body
 *                                        packed into the frame (privsep_request_pack), libprivsep
 *                                        with each body a json_t (json_pack, privsep_request), or
 *                                        raw frames
 *   brokerbench routed N REPS lib|tree|raw
 *                                        bench.broker.echo round trips, served by another helper
 *   brokerbench events N REPS            bench.broker.tick events, pipelined, then one bench.broker.echo
 *   brokerbench fileopen N REPS lib|raw PATH
 *                                        privsep.file.open of PATH for reading (libprivsep: the
 *                                        body packed, privsep_request_pack); the descriptor
 *                                        comes with the reply (SCM_RIGHTS) and is closed at once
 *   brokerbench server lib|raw           serves bench.broker.echo, swallows bench.broker.tick
 *   brokerbench idle                     hello, then waits for privsep.shutdown
 *   brokerbench load N                   hello, N pings, then waits for privsep.shutdown
 * Result lines: "BENCH <figure> <rep> <value>" (ns per round trip, or msg/s), and
 * "BENCH <figure> done". Every frame in a round trip is 120 bytes with its prefix
 * (the reply of the raw peer has the broker's shape: re, body, from).
 */
#define _GNU_SOURCE	/* memmem */

#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "privsep.h"

#define FRAME_BYTES	120	/* length prefix + JSON */
#define RBUF_BYTES	(64 * 1024)

static const char filler[] =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "brokerbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A read that found the end of the stream (errno says nothing then) or failed. */
static void
die_peer(const char *fig)
{
	if (errno == 0)
		fprintf(stderr, "brokerbench: %s: the peer closed the socket\n", fig);
	else
		fprintf(stderr, "brokerbench: %s: read: %s\n", fig, strerror(errno));
	exit(1);
}

/* --- Framing shared by the baselines and the raw helpers ----------------- */

/* A buffered frame reader: whole frames out of large reads. */
struct reader {
	int	fd;
	size_t	start, end;
	char	buf[RBUF_BYTES];
};

/* The next frame's body (not NUL-terminated: use find()) and its length; -1 at EOF. */
static int
next_frame(struct reader *r, char **body, size_t *len)
{
	size_t n;
	ssize_t got;
	unsigned char *p;

	for (;;) {
		if (r->end - r->start >= 4) {
			p = (unsigned char *)r->buf + r->start;
			n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
			if (n + 5 > sizeof(r->buf)) {
				fprintf(stderr, "brokerbench: frame of %zu bytes\n", n);
				exit(1);
			}
			if (r->end - r->start >= 4 + n) {
				*body = r->buf + r->start + 4;
				*len = n;
				r->start += 4 + n;
				return 0;
			}
		}
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		got = read(r->fd, r->buf + r->end, sizeof(r->buf) - r->end);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		r->end += (size_t)got;
	}
}

/* needle within body[0..len), or NULL. */
static const char *
find(const char *body, size_t len, const char *needle)
{
	return memmem(body, len, needle, strlen(needle));
}

/* Writes one frame with one write (or sendmsg with fd when fd >= 0). */
static void
write_frame(int sock, const char *json, size_t n, int fd)
{
	char buf[512], cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t w;

	buf[0] = (char)(n >> 24);
	buf[1] = (char)(n >> 16);
	buf[2] = (char)(n >> 8);
	buf[3] = (char)n;
	memcpy(buf + 4, json, n);
	iov.iov_base = buf;
	iov.iov_len = n + 4;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		w = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (w == -1 && errno == EINTR);
	if (w != (ssize_t)(n + 4))
		die("sendmsg");
}

/* Receives one whole small frame and the descriptor sent with it (closed at once). */
static int
recv_frame_fd(int sock, char *buf, size_t cap)
{
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	size_t got = 0, need = 4;
	ssize_t n;
	int fd, fds = 0;

	while (got < need) {
		iov.iov_base = buf + got;
		iov.iov_len = need - got;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		if ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) <= 0)
			return -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
				close(fd);
				fds++;
			}
		got += (size_t)n;
		if (got == 4 && need == 4) {
			need = 4 + ((size_t)(unsigned char)buf[0] << 24 | (size_t)(unsigned char)buf[1] << 16 |
			    (size_t)(unsigned char)buf[2] << 8 | (unsigned char)buf[3]);
			if (need > cap)
				return -1;
		}
	}
	return fds;
}

/* The JSON of a 120-byte ping-shaped request of the given type and id (116 bytes). */
static size_t
request_json(char *out, size_t cap, const char *type, long id)
{
	int base, pad;

	base = snprintf(out, cap, "{\"type\":\"%s\",\"id\":%ld,\"body\":{\"seq\":%ld,\"payload\":\"\"}}",
	    type, id, id);
	pad = FRAME_BYTES - 4 - base;
	if (pad < 0)
		pad = 0;
	return (size_t)snprintf(out, cap, "{\"type\":\"%s\",\"id\":%ld,\"body\":{\"seq\":%ld,\"payload\":\"%.*s\"}}",
	    type, id, id, pad, filler);
}

/* An event of the same shape and size (no id; the padding makes up for it). */
static size_t
event_json(char *out, size_t cap, const char *type, long seq)
{
	int base, pad;

	base = snprintf(out, cap, "{\"type\":\"%s\",\"body\":{\"seq\":%ld,\"payload\":\"\"}}", type, seq);
	pad = FRAME_BYTES - 4 - base;
	if (pad < 0)
		pad = 0;
	return (size_t)snprintf(out, cap, "{\"type\":\"%s\",\"body\":{\"seq\":%ld,\"payload\":\"%.*s\"}}",
	    type, seq, pad, filler);
}

/* The id of a request frame body ("id":N), 0 when it has none. */
static long
frame_id(const char *body, size_t len)
{
	const char *p = find(body, len, "\"id\":");

	return p == NULL ? 0 : strtol(p + 5, NULL, 10);
}

/* --- Raw baselines ------------------------------------------------------ */

/* The raw peer: answers each request with a reply of the broker's shape. */
static void
echo_peer(int sock, int with_fd)
{
	static struct reader r;
	char reply[256], buf[512], *body;
	size_t len;
	long id;
	int n, devnull = -1;

	if (with_fd && (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		die("open /dev/null");
	r.fd = sock;
	for (;;) {
		if (with_fd) {
			if (recv_frame_fd(sock, buf, sizeof(buf) - 1) != 1)
				_exit(0);
			body = buf + 4;
			len = (size_t)(unsigned char)buf[0] << 24 | (size_t)(unsigned char)buf[1] << 16 |
			    (size_t)(unsigned char)buf[2] << 8 | (unsigned char)buf[3];
		} else if (next_frame(&r, &body, &len) == -1)
			_exit(0);
		id = frame_id(body, len);
		n = snprintf(reply, sizeof(reply), "{\"re\":%ld,\"body\":{\"seq\":%ld,\"payload\":\"%.*s\"},\"from\":\"broker\"}",
		    id, id, 58, filler);
		write_frame(sock, reply, (size_t)n, devnull);
	}
}

static pid_t
fork_peer(int sv[2], void (*peer)(int, int), int arg)
{
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		die("socketpair");
	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		peer(sv[1], arg);
		_exit(0);
	}
	close(sv[1]);
	return pid;
}

/*
 * The client of every ping-pong figure: N round trips of 120-byte frames a rep (rep 0 warms
 * up), ns per round trip. fd >= 0 goes with each request; fd_back: one comes with each reply.
 */
static void
rtt_rounds(int sock, const char *fig, long n, int reps, int fd, int fd_back)
{
	static struct reader r;
	char req[256], buf[512], *body;
	size_t len;
	double t0;
	long i, id = 1;
	int rep;

	r.fd = sock;
	r.start = r.end = 0;
	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++, id++) {
			len = request_json(req, sizeof(req), "privsep.ping", id);
			write_frame(sock, req, len, fd);
			errno = 0;
			if (fd_back) {
				if (recv_frame_fd(sock, buf, sizeof(buf)) != 1)
					die_peer(fig);
			} else if (next_frame(&r, &body, &len) == -1)
				die_peer(fig);
		}
		if (rep > 0)
			printf("BENCH %s %d %.1f\n", fig, rep, (now_ns() - t0) / (double)n);
	}
}

static int
raw_rtt(long n, int reps, int with_fd)
{
	int sv[2], devnull = -1;
	pid_t pid = fork_peer(sv, echo_peer, with_fd);

	if (with_fd && (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		die("open /dev/null");
	rtt_rounds(sv[0], with_fd ? "raw-fd" : "raw-rtt", n, reps, devnull, with_fd);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return 0;
}

/* The one-way writers: on each "go", N frames with one write each. */
static long oneway_n;

static void
write_events(int sock, long *seq)
{
	char ev[256];
	size_t len;
	long i;

	for (i = 0; i < oneway_n; i++) {
		len = event_json(ev, sizeof(ev), "bench.broker.tick", (*seq)++);
		write_frame(sock, ev, len, -1);
	}
}

/* The raw writer's "go" is one byte. */
static void
oneway_writer(int sock, int unused)
{
	char go;
	long seq = 0;

	(void)unused;
	for (;;) {
		if (read(sock, &go, 1) != 1)
			_exit(0);
		write_events(sock, &seq);
	}
}

static int
raw_oneway(long n, int reps)
{
	static struct reader r;
	char *body;
	size_t len;
	double t0;
	long i;
	int sv[2], rep;
	pid_t pid;

	oneway_n = n;
	pid = fork_peer(sv, oneway_writer, 0);
	r.fd = sv[0];
	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		if (write(sv[0], "g", 1) != 1)
			die("write");
		for (i = 0; i < n; i++)
			if (next_frame(&r, &body, &len) == -1)
				die("read");
		if (rep > 0)
			printf("BENCH raw-oneway %d %.0f\n", rep, (double)n * 1e9 / (now_ns() - t0));
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return 0;
}

/* --- The floor: a zero-work broker in C --------------------------------- */

/*
 * What any broker must do for a message, and nothing else: a third process woken by epoll,
 * one recvmsg per readable socket into a 64 KiB buffer, frames split by their length prefix,
 * and one sendmsg per destination per wakeup carrying everything queued for it. It parses
 * no JSON: it forwards frames as they are, or (with one socket) answers each with a canned
 * reply of the ping reply's size, plus a descriptor of floor_path when that is set.
 */
#define RELAY_FDS	16	/* descriptors in one sendmsg at most */

struct relay_end {
	int		  fd;
	uint32_t	  events;	/* what epoll watches it for */
	struct relay_end *to;		/* where its frames go; itself when the relay answers */
	size_t		  start, end;	/* input not yet consumed */
	char		  in[RBUF_BYTES];
	size_t		  outlen;	/* queued for the next sendmsg */
	char		  out[RBUF_BYTES];
	int		  fds[RELAY_FDS];
	int		  nfds;
};

static const char *floor_path;		/* floor-fd: the file opened for each request */
static long floor_spin_ns;		/* FLOOR_SPIN_NS: user-space work per frame */
static int floor_relay_cpu = -1;	/* FLOOR_RELAY_CPU: the relay's CPU, or -1 (any) */
static int floor_audit_fd = -1;		/* FLOOR_AUDIT: the audit log, or -1 */
static int floor_dir_fd = -1;		/* FLOOR_AUDIT: floor_path's directory */
static const char *floor_name;		/* FLOOR_AUDIT: floor_path's last component */
static char floor_line[300];		/* FLOOR_AUDIT: the audit line, x... and a newline */

/* Opens floor_path as privsep's file service does, or with a plain open(2). */
static int
floor_open(void)
{
	struct open_how how;
	struct stat st;
	int fd;

	if (floor_audit_fd == -1)
		return open(floor_path, O_RDONLY | O_CLOEXEC);
	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
	if ((fd = (int)syscall(SYS_openat2, floor_dir_fd, floor_name, &how, sizeof(how))) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, O_RDONLY) == -1 ||
	    write(floor_audit_fd, floor_line, sizeof(floor_line)) != (ssize_t)sizeof(floor_line))
		die("floor audit");
	return fd;
}

/* Stands for a broker's work on one frame: floor_spin_ns of computing, no system call. */
static void
relay_spin(void)
{
	double until;

	if (floor_spin_ns <= 0)
		return;
	until = now_ns() + (double)floor_spin_ns;
	while (now_ns() < until)
		;
}
static char canned[FRAME_BYTES];	/* the answering relay's reply, prefix included */

static void
canned_reply(void)
{
	char json[256];
	int base, n;

	base = snprintf(json, sizeof(json), "{\"re\":0,\"body\":{\"seq\":0,\"payload\":\"\"},\"from\":\"broker\"}");
	n = snprintf(json, sizeof(json), "{\"re\":0,\"body\":{\"seq\":0,\"payload\":\"%.*s\"},\"from\":\"broker\"}",
	    FRAME_BYTES - 4 - base, filler);
	if (n != FRAME_BYTES - 4) {
		fprintf(stderr, "brokerbench: canned reply of %d bytes\n", n);
		exit(1);
	}
	canned[0] = canned[1] = 0;
	canned[2] = (char)(n >> 8);
	canned[3] = (char)n;
	memcpy(canned + 4, json, (size_t)n);
}

/* The size of e's next whole frame with its prefix; 0 while it is incomplete. */
static size_t
relay_next(struct relay_end *e)
{
	unsigned char *p = (unsigned char *)e->in + e->start;
	size_t n;

	if (e->end - e->start < 4)
		return 0;
	n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (n > sizeof(e->in) - 4) {
		fprintf(stderr, "brokerbench: relay: frame of %zu bytes\n", n);
		exit(1);
	}
	return e->end - e->start >= 4 + n ? 4 + n : 0;
}

/* One recvmsg into e's buffer; 0 when the peer is gone (the relay's work is over). */
static int
relay_read(struct relay_end *e)
{
	struct iovec iov;
	struct msghdr msg;
	ssize_t got;

	if (e->start > 0) {
		memmove(e->in, e->in + e->start, e->end - e->start);
		e->end -= e->start;
		e->start = 0;
	}
	if (e->end == sizeof(e->in))
		return 1;	/* a whole frame waits for room in its destination */
	iov.iov_base = e->in + e->end;
	iov.iov_len = sizeof(e->in) - e->end;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	got = recvmsg(e->fd, &msg, MSG_CMSG_CLOEXEC);
	if (got == -1 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (got == -1 && errno != ECONNRESET)
		die("relay recvmsg");
	if (got <= 0)
		return 0;
	e->end += (size_t)got;
	return 1;
}

/* Queues e's whole frames for their destination while they fit: as they are, or answered. */
static void
relay_frames(struct relay_end *e)
{
	struct relay_end *to = e->to;
	const char *src;
	size_t len, outn;
	int fd;

	while ((len = relay_next(e)) > 0) {
		relay_spin();
		src = to == e ? canned : e->in + e->start;
		outn = to == e ? sizeof(canned) : len;
		if (to->outlen + outn > sizeof(to->out) || to->nfds == RELAY_FDS)
			break;
		if (to == e && floor_path != NULL) {
			if ((fd = floor_open()) == -1)
				die(floor_path);
			to->fds[to->nfds++] = fd;
		}
		memcpy(to->out + to->outlen, src, outn);
		to->outlen += outn;
		e->start += len;
	}
}

/* One sendmsg of all that is queued for e, with its descriptors; the rest stays queued. */
static void
relay_flush(struct relay_end *e)
{
	char cbuf[CMSG_SPACE(RELAY_FDS * sizeof(int))];
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t sent;
	int i;

	iov.iov_base = e->out;
	iov.iov_len = e->outlen;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (e->nfds > 0) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE((size_t)e->nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)e->nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), e->fds, (size_t)e->nfds * sizeof(int));
	}
	sent = sendmsg(e->fd, &msg, MSG_NOSIGNAL);
	if (sent == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (sent == -1 && (errno == EPIPE || errno == ECONNRESET))
		_exit(0);
	if (sent == -1)
		die("relay sendmsg");
	/* The descriptors went with the first byte: the relay's copies are done with. */
	for (i = 0; i < e->nfds; i++)
		close(e->fds[i]);
	e->nfds = 0;
	memmove(e->out, e->out + sent, e->outlen - (size_t)sent);
	e->outlen -= (size_t)sent;
}

/* Reads a socket only while its destination's queue is empty; waits to write while its own is not. */
static void
relay_watch(int ep, struct relay_end *e)
{
	struct epoll_event ev;
	uint32_t want;

	want = (e->to->outlen == 0 ? EPOLLIN : 0) | (e->outlen > 0 ? EPOLLOUT : 0);
	if (want == e->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = e;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev) == -1)
		die("epoll_ctl");
	e->events = want;
}

/* The relay between a and b, or answering a alone (b == -1); returns when a peer is gone. */
static void
relay_run(int a, int b)
{
	static struct relay_end ends[2];
	struct epoll_event ev, evs[2];
	cpu_set_t cpus;
	int count = b == -1 ? 1 : 2, ep, i, n, timeout;

	if (floor_relay_cpu >= 0) {
		CPU_ZERO(&cpus);
		CPU_SET(floor_relay_cpu, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus) == -1)
			die("sched_setaffinity");
	}
	canned_reply();
	ends[0].fd = a;
	ends[1].fd = b;
	ends[0].to = &ends[count - 1];
	ends[1].to = &ends[0];
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	for (i = 0; i < count; i++) {
		if (fcntl(ends[i].fd, F_SETFL, fcntl(ends[i].fd, F_GETFL) | O_NONBLOCK) == -1)
			die("fcntl");
		memset(&ev, 0, sizeof(ev));
		ev.events = ends[i].events = EPOLLIN;
		ev.data.ptr = &ends[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, ends[i].fd, &ev) == -1)
			die("epoll_ctl");
	}
	for (;;) {
		/* A whole frame left behind for lack of room is taken without waiting. */
		timeout = -1;
		for (i = 0; i < count; i++)
			if (relay_next(&ends[i]) > 0 && ends[i].to->outlen == 0)
				timeout = 0;
		if ((n = epoll_wait(ep, evs, 2, timeout)) == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			if (evs[i].events & EPOLLIN) {
				if (relay_read(evs[i].data.ptr) == 0)
					return;
			} else if (evs[i].events & (EPOLLHUP | EPOLLERR))
				return;
		}
		for (i = 0; i < count; i++)
			relay_frames(&ends[i]);
		for (i = 0; i < count; i++)
			if (ends[i].outlen > 0)
				relay_flush(&ends[i]);
		for (i = 0; i < count; i++)
			relay_watch(ep, &ends[i]);
	}
}

/* Forks fn(a, b) holding only a and b of fds: a copy of a peer's end would hide its close. */
static pid_t
fork_with(const int *fds, int nfds, void (*fn)(int, int), int a, int b)
{
	pid_t pid;
	int i;

	if ((pid = fork()) == -1)
		die("fork");
	if (pid == 0) {
		for (i = 0; i < nfds; i++)
			if (fds[i] != -1 && fds[i] != a && fds[i] != b)
				close(fds[i]);
		fn(a, b);
		_exit(0);
	}
	return pid;
}

/*
 * The caller's socket to a forked relay, and behind the relay (when far is set) a forked far
 * end: the server or the writer. pids[] gets the children, -1 for none.
 */
static int
floor_setup(void (*far)(int, int), pid_t pids[2])
{
	int sv[4] = { -1, -1, -1, -1 };	/* caller, relay near, relay far, far end */

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    (far != NULL && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv + 2) == -1))
		die("socketpair");
	pids[1] = far != NULL ? fork_with(sv, 4, far, sv[3], -1) : -1;
	pids[0] = fork_with(sv, 4, relay_run, sv[1], sv[2]);
	close(sv[1]);
	if (far != NULL) {
		close(sv[2]);
		close(sv[3]);
	}
	return sv[0];
}

/* Closing the caller's end stops the relay, whose exit stops the far end. */
static void
floor_teardown(int sock, pid_t pids[2])
{
	close(sock);
	if (waitpid(pids[0], NULL, 0) == -1)
		die("waitpid");
	if (pids[1] != -1 && waitpid(pids[1], NULL, 0) == -1)
		die("waitpid");
}

/* The routed server is the raw peer: it answers in the broker's shape. */
static void
floor_server(int sock, int unused)
{
	(void)unused;
	echo_peer(sock, 0);
}

/* The writer behind the relay: its "go" is a frame, which came through the relay. */
static void
floor_writer(int sock, int unused)
{
	static struct reader r;
	char *body;
	size_t len;
	long seq = 0;

	(void)unused;
	r.fd = sock;
	while (next_frame(&r, &body, &len) == 0)
		write_events(sock, &seq);
}

/* floor-rtt, floor-routed: the raw-rtt client, through the relay (to the relay's own answer). */
static int
floor_rtt(long n, int reps, int routed)
{
	pid_t pids[2];
	int sock = floor_setup(routed ? floor_server : NULL, pids);

	rtt_rounds(sock, routed ? "floor-routed" : "floor-rtt", n, reps, -1, 0);
	floor_teardown(sock, pids);
	return 0;
}

/*
 * floor-fd: the relay opens path for each request and sends the descriptor with its reply;
 * the client closes it. One descriptor per round trip, as file.open (raw-fd sends one each way).
 */
static int
floor_fd(long n, int reps, const char *path)
{
	pid_t pids[2];
	int sock;

	if (access(path, R_OK) == -1)
		die(path);
	floor_path = path;
	if (getenv("FLOOR_AUDIT") != NULL) {
		const char *slash = strrchr(path, '/');
		char dir[4096];

		if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
			die("FLOOR_AUDIT needs an absolute PATH");
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		floor_name = slash + 1;
		memset(floor_line, 'x', sizeof(floor_line) - 1);
		floor_line[sizeof(floor_line) - 1] = '\n';
		if ((floor_dir_fd = open(slash == path ? "/" : dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    (floor_audit_fd = open(getenv("FLOOR_AUDIT"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
			die("FLOOR_AUDIT");
	}
	sock = floor_setup(NULL, pids);
	rtt_rounds(sock, "floor-fd", n, reps, -1, 1);
	floor_teardown(sock, pids);
	return 0;
}

/* floor-oneway: raw-oneway's reader, the writer behind the relay. */
static int
floor_oneway(long n, int reps)
{
	static struct reader r;
	char go[256], *body;
	size_t len;
	double t0;
	long i;
	pid_t pids[2];
	int rep;

	oneway_n = n;
	r.fd = floor_setup(floor_writer, pids);
	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		len = request_json(go, sizeof(go), "bench.floor.go", rep + 1);
		write_frame(r.fd, go, len, -1);
		errno = 0;
		for (i = 0; i < n; i++)
			if (next_frame(&r, &body, &len) == -1)
				die_peer("floor-oneway");
		if (rep > 0)
			printf("BENCH floor-oneway %d %.0f\n", rep, (double)n * 1e9 / (now_ns() - t0));
	}
	floor_teardown(r.fd, pids);
	return 0;
}

/* --- Helpers under the broker ------------------------------------------- */

static struct privsep *
lib_connect(void)
{
	struct privsep_error err;
	struct privsep *ps;

	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "brokerbench/1", NULL, &err) == -1) {
		fprintf(stderr, "brokerbench: hello: %s: %s\n", err.code, err.message);
		exit(1);
	}
	return ps;
}

/* The raw helpers say hello themselves, so nothing that follows is buffered elsewhere. */
static int
raw_connect(struct reader *r)
{
	static const char hello[] = "{\"type\":\"privsep.hello\",\"id\":1,\"body\":{\"protocol\":1,\"client\":\"brokerbench/1\"}}";
	char *body;
	size_t len;
	const char *env = getenv("PRIVSEP_FD");
	int fd = env != NULL ? atoi(env) : 3;

	r->fd = fd;
	r->start = r->end = 0;
	write_frame(fd, hello, sizeof(hello) - 1, -1);
	if (next_frame(r, &body, &len) == -1 || find(body, len, "\"error\"") != NULL) {
		fprintf(stderr, "brokerbench: hello refused\n");
		exit(1);
	}
	return fd;
}

/* The line the driver waits for: this helper's figures are all out. */
static void
say_done(const char *fig)
{
	printf("BENCH %s done\n", fig);
	fflush(stdout);
}

/* After the figures: stay connected until the broker says privsep.shutdown (or closes). */
static void __attribute__((noreturn))
raw_wait_shutdown(struct reader *r)
{
	char *body;
	size_t len;

	while (next_frame(r, &body, &len) == 0)
		if (find(body, len, "\"privsep.shutdown\"") != NULL)
			break;
	exit(0);
}

static void
lib_wait_shutdown(struct privsep *ps)
{
	struct privsep_error err;
	struct privsep_msg *m;
	const char *type;
	int stop;

	for (;;) {
		if (privsep_recv(ps, &m, 24 * 3600 * 1000, &err) == -1)
			break;
		type = privsep_msg_type(m);
		stop = type != NULL && strcmp(type, "privsep.shutdown") == 0;
		privsep_msg_free(m);
		if (stop)
			break;
	}
	privsep_close(ps);
	exit(0);
}

/* tree: each body is a json_t (json_pack), else packed straight into the frame. */
static void
lib_rounds(struct privsep *ps, const char *fig, const char *type, long n, int reps, int tree)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body;
	char req[256];
	double t0;
	long i, seq = 1;
	int rep, pad, r;

	/* The payload that makes the library's frame 120 bytes, as the raw one. */
	request_json(req, sizeof(req), type, 1000000);
	pad = (int)strlen(strstr(req, "\"payload\":\"") + 11) - 3;
	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++, seq++) {
			if (tree) {
				body = json_pack("{s:I,s:s#}", "seq", (json_int_t)seq, "payload", filler, pad);
				r = privsep_request(ps, type, body, NULL, 0, &m, -1, &err);
				json_decref(body);
			} else
				r = privsep_request_pack(ps, type, NULL, 0, &m, -1, &err, "{s:I,s:s#}", "seq",
				    (json_int_t)seq, "payload", filler, pad);
			if (r == -1) {
				fprintf(stderr, "brokerbench: %s: %s: %s\n", type, err.code, err.message);
				exit(1);
			}
			if (privsep_msg_error_code(m) != NULL) {
				fprintf(stderr, "brokerbench: %s: error reply %s\n", type, privsep_msg_error_code(m));
				exit(1);
			}
			privsep_msg_free(m);
		}
		if (rep > 0)
			printf("BENCH %s %d %.1f\n", fig, rep, (now_ns() - t0) / (double)n);
		fflush(stdout);
	}
}

static void
raw_rounds(struct reader *r, const char *fig, const char *type, long n, int reps)
{
	char req[256], *body;
	size_t len;
	double t0;
	long i, id = 1000000;
	int rep;

	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++, id++) {
			len = request_json(req, sizeof(req), type, id);
			write_frame(r->fd, req, len, -1);
			if (next_frame(r, &body, &len) == -1)
				die("read");
			if (find(body, len, "\"error\"") != NULL) {
				fprintf(stderr, "brokerbench: %s: %.*s\n", type, (int)len, body);
				exit(1);
			}
		}
		if (rep > 0)
			printf("BENCH %s %d %.1f\n", fig, rep, (now_ns() - t0) / (double)n);
		fflush(stdout);
	}
}

static int
helper_rounds(const char *fig, const char *type, long n, int reps, const char *variant)
{
	static struct reader r;
	struct privsep *ps;
	char name[64];

	snprintf(name, sizeof(name), "%s-%s", fig, variant);
	if (strcmp(variant, "raw") == 0) {
		raw_connect(&r);
		raw_rounds(&r, name, type, n, reps);
		say_done(name);
		raw_wait_shutdown(&r);
	}
	ps = lib_connect();
	lib_rounds(ps, name, type, n, reps, strcmp(variant, "tree") == 0);
	say_done(name);
	lib_wait_shutdown(ps);
	return 0;
}

static int
helper_events(long n, int reps)
{
	static struct reader r;
	char ev[256], req[256], *body;
	size_t len;
	double t0;
	long i, seq = 0, id = 1;
	int rep;

	raw_connect(&r);
	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			len = event_json(ev, sizeof(ev), "bench.broker.tick", seq++);
			write_frame(r.fd, ev, len, -1);
		}
		/* The server answers this after every event before it: all were delivered. */
		len = request_json(req, sizeof(req), "bench.broker.echo", id++);
		write_frame(r.fd, req, len, -1);
		if (next_frame(&r, &body, &len) == -1)
			die("read");
		if (find(body, len, "\"error\"") != NULL) {
			fprintf(stderr, "brokerbench: events: %.*s\n", (int)len, body);
			exit(1);
		}
		if (rep > 0)
			printf("BENCH events %d %.0f\n", rep, (double)n * 1e9 / (now_ns() - t0));
		fflush(stdout);
	}
	printf("BENCH events done\n");
	fflush(stdout);
	raw_wait_shutdown(&r);
	return 0;
}

/*
 * privsep.file.open round trips: one request, one reply with the file's descriptor, which is
 * closed before the next request (the helper's side of what the raw-fd baseline does). Raw
 * frames read with recvmsg, as the baseline does; or libprivsep, taking the fd from the reply.
 */
static void
raw_file_rounds(struct reader *r, const char *fig, const char *path, long n, int reps)
{
	char req[4200 + 128], buf[8192];
	size_t len;
	double t0;
	long i, id = 1000000;
	int rep, got;

	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++, id++) {
			len = (size_t)snprintf(req, sizeof(req),
			    "{\"type\":\"privsep.file.open\",\"id\":%ld,\"body\":{\"path\":\"%s\",\"access\":[\"read\"]}}",
			    id, path);
			write_frame(r->fd, req, len, -1);
			/* The broker sends a frame with descriptors alone, so this reads exactly it. */
			if ((got = recv_frame_fd(r->fd, buf, sizeof(buf) - 1)) != 1) {
				buf[sizeof(buf) - 1] = '\0';
				fprintf(stderr, "brokerbench: %s: %d fds with the reply: %s\n", fig, got,
				    got < 0 ? "(read failed)" : buf + 4);
				exit(1);
			}
		}
		if (rep > 0)
			printf("BENCH %s %d %.1f\n", fig, rep, (now_ns() - t0) / (double)n);
		fflush(stdout);
	}
}

static void
lib_file_rounds(struct privsep *ps, const char *fig, const char *path, long n, int reps)
{
	struct privsep_error err;
	struct privsep_msg *m;
	double t0;
	long i;
	int rep, fd;

	for (rep = 0; rep <= reps; rep++) {
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			if (privsep_request_pack(ps, "privsep.file.open", NULL, 0, &m, -1, &err, "{s:s,s:[s]}",
			    "path", path, "access", "read") == -1) {
				fprintf(stderr, "brokerbench: %s: %s: %s\n", fig, err.code, err.message);
				exit(1);
			}
			if (privsep_msg_error_code(m) != NULL || (fd = privsep_msg_take_fd(m, 0)) == -1) {
				fprintf(stderr, "brokerbench: %s: no descriptor (%s)\n", fig,
				    privsep_msg_error_code(m) != NULL ? privsep_msg_error_code(m) : "no error");
				exit(1);
			}
			close(fd);
			privsep_msg_free(m);
		}
		if (rep > 0)
			printf("BENCH %s %d %.1f\n", fig, rep, (now_ns() - t0) / (double)n);
		fflush(stdout);
	}
}

static int
helper_fileopen(long n, int reps, int raw, const char *path)
{
	static struct reader r;
	struct privsep *ps;
	const char *fig = raw ? "fileopen-raw" : "fileopen-lib";

	if (strlen(path) > 4096) {
		fprintf(stderr, "brokerbench: fileopen: path too long\n");
		return 2;
	}
	if (raw) {
		raw_connect(&r);
		raw_file_rounds(&r, fig, path, n, reps);
		say_done(fig);
		raw_wait_shutdown(&r);
	}
	ps = lib_connect();
	lib_file_rounds(ps, fig, path, n, reps);
	say_done(fig);
	lib_wait_shutdown(ps);
	return 0;
}

/* Serves bench.broker.echo (echoing the body) and counts bench.broker.tick events. */
static int
helper_server(int raw)
{
	static struct reader r;
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	const char *type;
	char reply[256], *body, *payload;
	size_t len;
	long id, seq;
	int n;

	if (raw) {
		raw_connect(&r);
		while (next_frame(&r, &body, &len) == 0) {
			if ((id = frame_id(body, len)) == 0) {
				if (find(body, len, "\"privsep.shutdown\"") != NULL)
					break;
				continue;	/* an event */
			}
			payload = (char *)find(body, len, "\"seq\":");
			seq = payload != NULL ? strtol(payload + 6, NULL, 10) : 0;
			n = snprintf(reply, sizeof(reply), "{\"re\":%ld,\"body\":{\"seq\":%ld,\"payload\":\"%.*s\"}}",
			    id, seq, 68, filler);
			write_frame(r.fd, reply, (size_t)n, -1);
		}
		return 0;
	}
	ps = lib_connect();
	for (;;) {
		if (privsep_recv(ps, &m, 24 * 3600 * 1000, &err) == -1)
			break;
		type = privsep_msg_type(m);
		if (privsep_msg_kind(m) == PRIVSEP_REQUEST) {
			if (privsep_reply(ps, m, privsep_msg_body(m), NULL, 0, 0, &err) == -1) {
				fprintf(stderr, "brokerbench: reply: %s: %s\n", err.code, err.message);
				exit(1);
			}
		} else if (type != NULL && strcmp(type, "privsep.shutdown") == 0) {
			privsep_msg_free(m);
			break;
		}
		privsep_msg_free(m);
	}
	privsep_close(ps);
	return 0;
}

static int
helper_load(long n)
{
	struct privsep *ps = lib_connect();

	if (n > 0)
		lib_rounds(ps, "load", "privsep.ping", n, 1, 0);
	printf("BENCH load done\n");
	fflush(stdout);
	lib_wait_shutdown(ps);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long n = argc > 2 ? atol(argv[2]) : 10000;
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	const char *variant = argc > 4 ? argv[4] : "lib";
	int raw = strcmp(variant, "raw") == 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("FLOOR_SPIN_NS") != NULL)
		floor_spin_ns = atol(getenv("FLOOR_SPIN_NS"));
	if (getenv("FLOOR_RELAY_CPU") != NULL)
		floor_relay_cpu = atoi(getenv("FLOOR_RELAY_CPU"));
	if (strcmp(mode, "raw-rtt") == 0)
		return raw_rtt(n, reps, 0);
	if (strcmp(mode, "raw-fd") == 0)
		return raw_rtt(n, reps, 1);
	if (strcmp(mode, "raw-oneway") == 0)
		return raw_oneway(n, reps);
	if (strcmp(mode, "floor-rtt") == 0)
		return floor_rtt(n, reps, 0);
	if (strcmp(mode, "floor-routed") == 0)
		return floor_rtt(n, reps, 1);
	if (strcmp(mode, "floor-oneway") == 0)
		return floor_oneway(n, reps);
	if (strcmp(mode, "floor-fd") == 0)
		return floor_fd(n, reps, argc > 4 ? argv[4] : "/etc/hostname");
	if (strcmp(mode, "ping") == 0)
		return helper_rounds("ping", "privsep.ping", n, reps, variant);
	if (strcmp(mode, "routed") == 0)
		return helper_rounds("routed", "bench.broker.echo", n, reps, variant);
	if (strcmp(mode, "events") == 0)
		return helper_events(n, reps);
	if (strcmp(mode, "fileopen") == 0 && argc > 5)
		return helper_fileopen(n, reps, raw, argv[5]);
	if (strcmp(mode, "server") == 0)
		return helper_server(argc > 2 && strcmp(argv[2], "raw") == 0);
	if (strcmp(mode, "idle") == 0)
		return helper_load(0);
	if (strcmp(mode, "load") == 0)
		return helper_load(n);
	fprintf(stderr, "usage: brokerbench raw-rtt|raw-fd|raw-oneway|ping|routed|events N REPS [lib|tree|raw]\n"
	    "       brokerbench floor-rtt|floor-routed|floor-oneway N REPS | floor-fd N REPS [PATH]\n"
	    "       brokerbench fileopen N REPS lib|raw PATH\n"
	    "       brokerbench server lib|raw | idle | load N\n");
	return 2;
}
