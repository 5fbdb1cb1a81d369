/*
 * The connection: framing, fd passing, output queue, blocking and
 * non-blocking use.
 *
 * Every read and write that must not wait passes MSG_DONTWAIT. A blocking call
 * waits for input with one recvmsg(2) bounded by SO_RCVTIMEO while the socket
 * is in blocking mode (the default) and the process could use more than one
 * CPU when the connection was opened, else with epoll_wait(2) (below), and
 * with poll(2) while output is queued; always until a deadline, so every wait
 * is bounded. The socket is O_NONBLOCK in non-blocking mode, for the
 * application's event loop.
 *
 * Why the CPUs matter: a task asleep in recvmsg(2) on an AF_UNIX stream socket
 * is woken when the peer reads the frame it sent (the freed buffer space wakes
 * every sleeper on the socket; poll(2) filters that wakeup by event, recvmsg
 * does not). Across CPUs that early wakeup helps: it brings the idle CPU out
 * of its halt before the reply comes, and waiting in poll(2) was measured
 * slower. On one CPU it costs a pair of context switches per round trip, since
 * the woken task preempts the broker to find nothing: there poll(2) was
 * measured faster (docs/performance.md, seventh round).
 *
 * On one CPU the wait for input is epoll_wait(2) without a timeout on a set of
 * the socket and a timerfd, made at the first such wait. A timeout given to
 * poll(2) arms a kernel timer at every sleep, which cost this VM's privsep.ping
 * round trip about 0.2-0.5 us (docs/performance.md, eleventh round); the timer
 * is set again only when it would fire after a wait's deadline or has fired,
 * so waits with the default timeout set it once in 30 s. If the set cannot be
 * made (no fds left, a seccomp filter without epoll or timerfd), such waits
 * poll(2) with a timeout.
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "privsep_int.h"

#define READ_CHUNK	65536u

static int	fail(struct privsep *, struct privsep_error *, const char *, const char *,
		    const char *, ...) __attribute__((format(printf, 5, 6)));

static void
close_batches(struct privsep *ps)
{
	size_t i, j;

	for (i = 0; i < ps->nbatches; i++)
		for (j = 0; j < ps->batches[i].n; j++)
			close(ps->batches[i].fds[j]);
	ps->nbatches = 0;
}

/* Makes the connection's failure final, closes every fd it holds, and reports it. */
static int
fail(struct privsep *ps, struct privsep_error *err, const char *code, const char *reason,
    const char *fmt, ...)
{
	va_list ap;

	if (!ps->failed) {
		ps->failed = 1;
		memset(&ps->failure, 0, sizeof(ps->failure));
		snprintf(ps->failure.code, sizeof(ps->failure.code), "%s", code);
		snprintf(ps->failure.reason, sizeof(ps->failure.reason), "%s", reason);
		ps->failure.fatal = 1;
		va_start(ap, fmt);
		vsnprintf(ps->failure.message, sizeof(ps->failure.message), fmt, ap);
		va_end(ap);
		close_batches(ps);
	}
	if (err != NULL)
		*err = ps->failure;
	return -1;
}

/* The broker closed the connection: nothing more will come (frames already buffered excepted). */
static int
closed_error(struct privsep_error *err, const char *message)
{
	privsep_seterr(err, PRIVSEP_E_UNAVAILABLE, "connection_closed", "%s", message);
	if (err != NULL)
		err->fatal = 1;
	return -1;
}

/* Adopts a fatal error reported by a decoding function. */
static int
fail_with(struct privsep *ps, struct privsep_error *err, const struct privsep_error *cause)
{
	return fail(ps, err, cause->code, cause->reason, "%s", cause->message);
}

static int
failed(const struct privsep *ps, struct privsep_error *err)
{
	if (err != NULL)
		*err = ps->failure;
	return -1;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
deadline_at(const struct privsep *ps, int64_t now, int timeout_ms)
{
	return now + (timeout_ms < 0 ? ps->timeout_ms : timeout_ms);
}

static int64_t
deadline_of(const struct privsep *ps, int timeout_ms)
{
	return deadline_at(ps, now_ms(), timeout_ms);
}

/*
 * Waits for events on the socket until the deadline, now being the clock as
 * the caller last read it: 1 ready, 0 timed out, -1 error.
 */
static int
wait_fd(struct privsep *ps, short events, int64_t now, int64_t deadline, short *revents,
    struct privsep_error *err)
{
	struct pollfd pfd;
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now;
		if (left < 0)
			left = 0;
		pfd.fd = ps->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0) {
			*revents = pfd.revents;
			return 1;
		}
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "poll: %s", strerror(errno));
		now = now_ms();
	}
}

/* Whether this process may run on one CPU only (an affinity of one CPU, or one CPU online). */
static int
one_cpu(void)
{
	cpu_set_t set;

	return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1;
}

int
privsep_open_fd(struct privsep **psp, int fd, const char *helper, struct privsep_error *err)
{
	struct privsep *ps;
	int flags;

	*psp = NULL;
	if (fd < 0)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "open: fd %d is not valid", fd);
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "open: fd %d: %s", fd,
		    strerror(errno));
	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (ps->helper = strdup(helper != NULL ? helper : "")) == NULL) {
		free(ps);
		return privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "open: out of memory");
	}
	ps->fd = fd;
	ps->max_frame = PRIVSEP_FRAME_DEFAULT;
	ps->timeout_ms = PRIVSEP_TIMEOUT_DEFAULT;
	ps->next_id = 1;
	ps->poll_wait = one_cpu();
	ps->epfd = ps->timerfd = -1;
	ps->pending_tail = &ps->pending;
	ps->out_tail = &ps->out;
	*psp = ps;
	return 0;
}

int
privsep_open_env(struct privsep **psp, struct privsep_error *err)
{
	const char *s, *proto;
	socklen_t typelen = sizeof(int);
	struct stat st;
	char *end;
	long fd;
	int type;

	*psp = NULL;
	if ((proto = getenv("PRIVSEP_PROTOCOL")) != NULL && strcmp(proto, "1") != 0)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "environment",
		    "environment: PRIVSEP_PROTOCOL=%.32s, this library speaks 1", proto);
	if ((s = getenv("PRIVSEP_FD")) == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
		    "environment: PRIVSEP_FD is not set (not started by privsep?)");
	errno = 0;
	fd = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || fd < 0 || fd > INT_MAX)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
		    "environment: PRIVSEP_FD=%.32s is not a descriptor number", s);
	if (fstat((int)fd, &st) == -1 || !S_ISSOCK(st.st_mode) ||
	    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &typelen) == -1 || type != SOCK_STREAM)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
		    "environment: PRIVSEP_FD=%ld is not an open stream socket", fd);
	return privsep_open_fd(psp, (int)fd, getenv("PRIVSEP_HELPER"), err);
}

static void
outframe_free(struct outframe *f)
{
	size_t i;

	for (i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	free(f->bytes);
	free(f);
}

void
privsep_close(struct privsep *ps)
{
	struct privsep_msg *m, *mnext;
	struct outframe *f, *fnext;
	short revents;
	int64_t deadline;

	if (ps == NULL)
		return;
	deadline = deadline_of(ps, -1);
	while (!ps->failed && ps->out != NULL && privsep_flush(ps, NULL) == 0 &&
	    wait_fd(ps, POLLOUT, now_ms(), deadline, &revents, NULL) == 1)
		;
	for (f = ps->out; f != NULL; f = fnext) {
		fnext = f->next;
		outframe_free(f);
	}
	for (m = ps->pending; m != NULL; m = mnext) {
		mnext = m->next;
		privsep_msg_free(m);
	}
	close_batches(ps);
	close(ps->fd);
	if (ps->epfd != -1)
		close(ps->epfd);
	if (ps->timerfd != -1)
		close(ps->timerfd);
	free(ps->obuf.p);
	free(ps->in);
	free(ps->helper);
	free(ps);
}

void
privsep_set_timeout(struct privsep *ps, int timeout_ms)
{
	if (timeout_ms > 0)
		ps->timeout_ms = timeout_ms;
}

void
privsep_set_peer_helper(struct privsep *ps, int on)
{
	ps->peer_helper = on != 0;
}

void
privsep_set_nonblocking(struct privsep *ps, int on)
{
	int flags;

	ps->nonblocking = on != 0;
	/* If this fails, waits keep to poll(2) and every read and write to MSG_DONTWAIT. */
	if ((flags = fcntl(ps->fd, F_GETFL)) != -1 &&
	    fcntl(ps->fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) != -1)
		ps->sock_nonblock = on != 0;
	else
		ps->sock_nonblock = 1;
}

const char *
privsep_helper(const struct privsep *ps)
{
	return ps->helper;
}

size_t
privsep_max_frame(const struct privsep *ps)
{
	return ps->max_frame;
}

int
privsep_fd(const struct privsep *ps)
{
	return ps->fd;
}

int
privsep_want_write(const struct privsep *ps)
{
	return ps->out != NULL;
}

/* --- Output ---------------------------------------------------------------- */

/*
 * One send of len bytes, with fds when nfds > 0 (they ride on the frame's
 * first byte); *sent is what the socket took, 0 when it would block.
 */
static int
send_some(struct privsep *ps, const unsigned char *bytes, size_t len, const int *fds,
    size_t nfds, size_t *sent, struct privsep_error *err)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * PRIVSEP_FDS_MAX)];
	} cmsgbuf;
	struct cmsghdr *cmsg;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;

	*sent = 0;
	if (nfds == 0) {
		/* send(2): the kernel copies in no message header */
		do {
			n = send(ps->fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n == -1 && errno == EINTR);
	} else {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = (void *)bytes;
		iov.iov_len = len;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = cmsgbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
		do {
			n = sendmsg(ps->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (n == -1 && errno == EINTR);
	}
	if (n >= 0) {
		*sent = (size_t)n;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (errno == EPIPE || errno == ECONNRESET)
		return fail(ps, err, PRIVSEP_E_UNAVAILABLE, "connection_closed", "send: broker closed the connection");
	return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "send: %s", strerror(errno));
}

/* Writes as much of the head frame as the socket takes: 1 frame done, 0 would block, -1 error. */
static int
write_head(struct privsep *ps, struct privsep_error *err)
{
	struct outframe *f = ps->out;
	size_t n, i;

	if (send_some(ps, f->bytes + f->off, f->len - f->off, f->fds, f->off == 0 ? f->nfds : 0,
	    &n, err) == -1)
		return -1;
	f->off += n;
	if (n > 0 && f->nfds > 0) {
		/* the kernel holds its own references now */
		for (i = 0; i < f->nfds; i++)
			close(f->fds[i]);
		f->nfds = 0;
	}
	if (f->off < f->len)
		return 0;
	ps->out = f->next;
	if (ps->out == NULL)
		ps->out_tail = &ps->out;
	ps->out_bytes -= f->len;
	outframe_free(f);
	return 1;
}

int
privsep_flush(struct privsep *ps, struct privsep_error *err)
{
	int r;

	if (ps->failed)
		return failed(ps, err);
	while (ps->out != NULL) {
		if ((r = write_head(ps, err)) <= 0)
			return r;
	}
	return 1;
}

/* Flushes, waiting until the deadline. */
static int
flush_wait(struct privsep *ps, int64_t deadline, struct privsep_error *err)
{
	short revents;
	int r;

	for (;;) {
		if ((r = privsep_flush(ps, err)) != 0)
			return r == 1 ? 0 : -1;
		if ((r = wait_fd(ps, POLLOUT, now_ms(), deadline, &revents, err)) == -1)
			return -1;
		if (r == 0)
			return privsep_seterr(err, PRIVSEP_E_TIMEOUT, "timeout",
			    "send: the broker did not take the frame in time");
	}
}

/* The largest write buffer kept between frames; a larger one is freed after its frame. */
#define OBUF_KEEP	65536u

/* Starts a frame in the connection's write buffer: room for the length prefix. */
static struct privsep_buf *
frame_begin(struct privsep *ps)
{
	struct privsep_buf *b = &ps->obuf;

	b->len = 0;
	b->status = 0;
	b->limit = 4 + ps->max_frame;
	privsep_buf_put(b, "\0\0\0\0", 4);
	return b;
}

static void
frame_end(struct privsep *ps)
{
	if (ps->obuf.cap > OBUF_KEEP) {
		free(ps->obuf.p);
		ps->obuf.p = NULL;
		ps->obuf.cap = 0;
	}
}

/* Queues bytes[off..len) of a frame (fds not sent yet when off is 0), with our own duplicates. */
static int
enqueue(struct privsep *ps, const unsigned char *bytes, size_t len, size_t off, const int *fds,
    size_t nfds, struct privsep_error *err)
{
	struct outframe *f;
	size_t i;

	if (ps->out_bytes + len - off > PRIVSEP_OUTQ_MAX)
		return privsep_seterr(err, PRIVSEP_E_INTERNAL, "send_queue_full",
		    "send: output queue full (%zu bytes pending)", ps->out_bytes);
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->bytes = malloc(len - off)) == NULL) {
		free(f);
		return privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "send: out of memory");
	}
	memcpy(f->bytes, bytes + off, len - off);
	f->len = len - off;
	/* The caller may close its fds while the frame waits. */
	for (i = 0; off == 0 && i < nfds; i++) {
		if ((f->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) == -1) {
			int saved = errno;
			outframe_free(f);
			return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: fd %d: %s", fds[i],
			    strerror(saved));
		}
		f->nfds++;
	}
	*ps->out_tail = f;
	ps->out_tail = &f->next;
	ps->out_bytes += f->len;
	return 0;
}

/* Names the caller's first closed fd as the old dup did; 0 when all are open. */
static int
bad_fd(const int *fds, size_t nfds, struct privsep_error *err)
{
	size_t i;

	for (i = 0; i < nfds; i++)
		if (fcntl(fds[i], F_GETFD) == -1)
			return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: fd %d: %s",
			    fds[i], strerror(errno));
	return 0;
}

/*
 * Sends the frame in the write buffer: straight to the socket when nothing
 * waits before it (the fds go as they are: the kernel takes its own
 * references), queueing what the socket does not take; then flushes as the
 * mode says.
 */
static int
frame_send(struct privsep *ps, const int *fds, size_t nfds, struct privsep_error *err)
{
	struct privsep_buf *b = &ps->obuf;
	size_t n = b->len - 4, sent = 0;
	int r;

	if (b->status == PRIVSEP_BUF_BAD)
		r = privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: envelope cannot be serialized");
	else if (b->status == PRIVSEP_BUF_NOMEM)
		r = privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "send: out of memory");
	else if (n > ps->max_frame)
		r = privsep_seterr(err, PRIVSEP_E_TOO_LARGE, "unsendable",
		    "send: frame of %zu bytes over max_frame %zu", n, ps->max_frame);
	else {
		b->p[0] = (unsigned char)(n >> 24);
		b->p[1] = (unsigned char)(n >> 16);
		b->p[2] = (unsigned char)(n >> 8);
		b->p[3] = (unsigned char)n;
		r = 0;
		if (ps->out == NULL) {
			if (nfds > 0 && bad_fd(fds, nfds, err) == -1)
				r = -1;
			else
				r = send_some(ps, b->p, b->len, fds, nfds, &sent, err);
		}
		if (r == 0 && sent < b->len)
			r = enqueue(ps, b->p, b->len, sent, fds, nfds, err);
	}
	frame_end(ps);
	if (r == -1)
		return -1;
	if (ps->out == NULL)
		return 0;	/* written through */
	if (ps->nonblocking)
		return privsep_flush(ps, err) == -1 ? -1 : 0;
	return flush_wait(ps, deadline_of(ps, -1), err);
}

int
privsep_send(struct privsep *ps, json_t *env, const int *fds, size_t nfds,
    struct privsep_error *err)
{
	json_t *declared;
	size_t want;

	if (ps->failed)
		return failed(ps, err);
	if (privsep_envelope_check(env, 0, err) == -1) {
		/* our caller's mistake, caught before a byte is written: the connection is fine */
		if (err != NULL) {
			snprintf(err->code, sizeof(err->code), "%s", PRIVSEP_E_INVALID);
			err->fatal = 0;
			err->id = 0;
		}
		return -1;
	}
	declared = json_object_get(env, "fds");
	want = declared == NULL ? 0 : (size_t)json_integer_value(declared);
	if (want != nfds || (nfds > 0 && fds == NULL))
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
		    "send: envelope declares %zu fds, %zu given", want, nfds);
	privsep_buf_json(frame_begin(ps), env, 1);
	return frame_send(ps, fds, nfds, err);
}

static int
check_body_fds(json_t *body, size_t nfds, struct privsep_error *err)
{
	if (body != NULL && !json_is_object(body))
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: body: not an object");
	if (nfds > PRIVSEP_FDS_MAX)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: %zu fds, at most %u per frame",
		    nfds, PRIVSEP_FDS_MAX);
	return 0;
}

/*
 * Writes {type?, id?, re?, body, more?, fds?} straight into a frame and sends
 * it: the members privsep_send() would check are made right here, so only the
 * type needs the check (the same error privsep_send() reports). The body is
 * the json_t, or packed from fmt and ap when fmt is not NULL.
 */
static int
send_envelope(struct privsep *ps, const char *type, int64_t id, int64_t re, json_t *body,
    const char *fmt, va_list *ap, const int *fds, size_t nfds, int more,
    struct privsep_error *err)
{
	struct privsep_buf *b;
	const char *why;
	size_t where;

	if (ps->failed)
		return failed(ps, err);
	if (type != NULL && !privsep_type_valid(type, strlen(type)))
		return privsep_seterr(err, PRIVSEP_E_INVALID, "bad_type", "envelope: member 'type' must match "
		    "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$");
	if (nfds > 0 && fds == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
		    "send: envelope declares %zu fds, %zu given", nfds, nfds);
	b = frame_begin(ps);
	privsep_buf_put(b, "{", 1);
	if (type != NULL) {
		privsep_buf_put(b, "\"type\":", 7);
		privsep_buf_string(b, type, strlen(type));
		privsep_buf_put(b, ",", 1);
	}
	if (id > 0) {
		privsep_buf_put(b, "\"id\":", 5);
		privsep_buf_int(b, id);
		privsep_buf_put(b, ",", 1);
	}
	if (re > 0) {
		privsep_buf_put(b, "\"re\":", 5);
		privsep_buf_int(b, re);
		privsep_buf_put(b, ",", 1);
	}
	privsep_buf_put(b, "\"body\":", 7);
	if (fmt != NULL) {
		if (privsep_buf_vpack(b, 2, fmt, ap, &why, &where) == -1) {
			frame_end(ps);
			if (b->status == PRIVSEP_BUF_NOMEM)
				return privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "send: out of memory");
			return privsep_seterr(err, PRIVSEP_E_INVALID, "argument",
			    "pack: \"%s\" at offset %zu: %s", fmt, where, why);
		}
	} else if (body != NULL)
		privsep_buf_json(b, body, 2);
	else
		privsep_buf_put(b, "{}", 2);
	if (more)
		privsep_buf_put(b, ",\"more\":true", 12);
	if (nfds > 0) {
		privsep_buf_put(b, ",\"fds\":", 7);
		privsep_buf_int(b, (int64_t)nfds);
	}
	privsep_buf_put(b, "}", 1);
	return frame_send(ps, fds, nfds, err);
}

/* privsep_send_request() and its packing form: the body is the json_t unless fmt is given. */
static int
send_request(struct privsep *ps, const char *type, json_t *body, const char *fmt, va_list *ap,
    const int *fds, size_t nfds, int64_t *idp, struct privsep_error *err)
{
	int64_t id;

	if (type == NULL || check_body_fds(body, nfds, err) == -1)
		return type == NULL ? privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: no type") : -1;
	if (fmt == NULL && ap != NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "pack: no format");
	id = ps->next_id;
	ps->next_id = id == PRIVSEP_ID_MAX ? 1 : id + 1;
	if (send_envelope(ps, type, id, 0, body, fmt, ap, fds, nfds, 0, err) == -1)
		return -1;
	if (idp != NULL)
		*idp = id;
	return 0;
}

int
privsep_send_request(struct privsep *ps, const char *type, json_t *body, const int *fds,
    size_t nfds, int64_t *idp, struct privsep_error *err)
{
	return send_request(ps, type, body, NULL, NULL, fds, nfds, idp, err);
}

int
privsep_send_request_pack(struct privsep *ps, const char *type, const int *fds, size_t nfds,
    int64_t *idp, struct privsep_error *err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = send_request(ps, type, NULL, fmt, &ap, fds, nfds, idp, err);
	va_end(ap);
	return r;
}

int
privsep_event(struct privsep *ps, const char *type, json_t *body, const int *fds, size_t nfds,
    struct privsep_error *err)
{
	if (type == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "send: no type");
	if (check_body_fds(body, nfds, err) == -1)
		return -1;
	return send_envelope(ps, type, 0, 0, body, NULL, NULL, fds, nfds, 0, err);
}

int
privsep_reply(struct privsep *ps, const struct privsep_msg *req, json_t *body, const int *fds,
    size_t nfds, int more, struct privsep_error *err)
{
	if (req->kind != PRIVSEP_REQUEST)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "reply: message is not a request");
	if (check_body_fds(body, nfds, err) == -1)
		return -1;
	return send_envelope(ps, NULL, 0, privsep_msg_id(req), body, NULL, NULL, fds, nfds, more, err);
}

static int
send_built(struct privsep *ps, json_t *env, const int *fds, size_t nfds,
    struct privsep_error *err)
{
	int r;

	if (env == NULL)
		return privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "send: out of memory");
	r = privsep_send(ps, env, fds, nfds, err);
	json_decref(env);
	return r;
}

int
privsep_reply_error(struct privsep *ps, const struct privsep_msg *req, const char *code,
    const char *message, json_t *data, struct privsep_error *err)
{
	json_t *env, *e;

	if (req->kind != PRIVSEP_REQUEST)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "reply: message is not a request");
	if (code == NULL || message == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "reply: error needs code and message");
	env = json_pack("{s:I, s:{s:s, s:s}}", "re", (json_int_t)privsep_msg_id(req), "error",
	    "code", code, "message", message);
	if (env != NULL && data != NULL &&
	    ((e = json_object_get(env, "error")) == NULL || json_object_set(e, "data", data) == -1)) {
		json_decref(env);
		env = NULL;
	}
	return send_built(ps, env, NULL, 0, err);
}

int
privsep_log(struct privsep *ps, const char *level, const char *message,
    struct privsep_error *err)
{
	json_t *body;
	int r;

	if (level == NULL || message == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "log: level and message required");
	if ((body = json_pack("{s:s, s:s}", "level", level, "message", message)) == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "log: message is not valid UTF-8");
	r = privsep_event(ps, "privsep.log", body, NULL, 0, err);
	json_decref(body);
	return r;
}

/* --- Input ----------------------------------------------------------------- */

/* Most bytes buffered at once: one largest frame and a read's worth after it. */
static size_t
in_limit(const struct privsep *ps)
{
	return 4 + ps->max_frame + READ_CHUNK;
}

static size_t
frame_length(const unsigned char *p)
{
	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

static int
frame_buffered(const struct privsep *ps)
{
	return ps->in_len >= 4 && ps->in_len - 4 >= frame_length(ps->in);
}

static int
in_reserve(struct privsep *ps, size_t want, struct privsep_error *err)
{
	unsigned char *p;
	size_t cap;

	if (want <= ps->in_cap)
		return 0;
	cap = ps->in_cap == 0 ? READ_CHUNK : ps->in_cap;
	while (cap < want)
		cap *= 2;
	if (cap > in_limit(ps))
		cap = in_limit(ps);
	if ((p = realloc(ps->in, cap)) == NULL)
		return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "receive: out of memory");
	ps->in = p;
	ps->in_cap = cap;
	return 0;
}

static void
close_fds(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * Accounts for one read of len bytes (already appended at stream offset
 * start) and the fds that came with it; takes ownership of the fds.
 */
static int
ingest(struct privsep *ps, uint64_t start, size_t len, const int *fds, size_t nfds,
    struct privsep_error *err)
{
	struct fdbatch *b;
	uint64_t s, end = start + len;
	int64_t owner = -1;
	size_t n;

	if (ps->failed) {
		close_fds(fds, nfds);
		return failed(ps, err);
	}
	if (nfds > 0 && len == 0) {
		close_fds(fds, nfds);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_unclaimed",
		    "receive: %zu fds arrived without data", nfds);
	}
	if (nfds > PRIVSEP_FDS_MAX) {
		close_fds(fds, nfds);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_mismatch",
		    "receive: %zu fds in one read; a frame carries at most %u", nfds, PRIVSEP_FDS_MAX);
	}
	if (nfds > 0 && ps->nbatches == PRIVSEP_BATCHES_MAX) {
		close_fds(fds, nfds);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_unclaimed",
		    "receive: %u reads' fds wait for their frames", PRIVSEP_BATCHES_MAX);
	}
	ps->in_len += len;
	/* Walk the length prefixes to the last frame that starts inside this read. */
	for (s = ps->scan;;) {
		if (s >= start && s < end)
			owner = (int64_t)s;
		if (s + 4 > end)
			break;
		n = frame_length(ps->in + (s - ps->in_off));
		if (n < PRIVSEP_FRAME_MIN || n > ps->max_frame || s + 4 + n > end)
			break;	/* a bad length is reported when that frame is taken */
		s += 4 + n;
	}
	ps->scan = s;
	if (nfds == 0)
		return 0;
	b = &ps->batches[ps->nbatches++];
	memcpy(b->fds, fds, nfds * sizeof(int));
	b->n = nfds;
	b->owner = owner;
	b->read_start = start;
	b->read_end = end;
	return 0;
}

/*
 * One recvmsg: 1 read bytes, 0 nothing read (would block; without
 * MSG_DONTWAIT also SO_RCVTIMEO ran out or a signal came), -1 error or EOF.
 */
static int
read_once(struct privsep *ps, int dontwait, struct privsep_error *err)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * PRIVSEP_FDS_MAX)];
	} cmsgbuf;
	int fds[PRIVSEP_FDS_MAX];
	struct cmsghdr *cmsg;
	struct msghdr msg;
	struct iovec iov;
	size_t nfds = 0, k;
	int foreign = 0;
	ssize_t n;

	if (ps->failed)
		return failed(ps, err);
	if (ps->eof)
		return closed_error(err,
		    "receive: broker closed the connection");
	/* One frame at a time: the buffer stays within in_limit(), fd batches within bounds. */
	if (frame_buffered(ps))
		return 0;
	if (in_reserve(ps, ps->in_len + READ_CHUNK, err) == -1)
		return -1;
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ps->in + ps->in_len;
	iov.iov_len = ps->in_cap - ps->in_len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
	/* A blocking read returns on a signal: the caller recomputes what is left of its wait. */
	do {
		n = recvmsg(ps->fd, &msg, MSG_CMSG_CLOEXEC | dontwait);
	} while (n == -1 && errno == EINTR && dontwait);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		if (errno == ECONNRESET) {
			ps->eof = 1;
			return closed_error(err,
			    "receive: connection reset");
		}
		return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "receive: %s", strerror(errno));
	}
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
			foreign = 1;	/* no descriptors in it; reported below */
			continue;
		}
		k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (k > PRIVSEP_FDS_MAX - nfds)
			k = PRIVSEP_FDS_MAX - nfds;	/* cannot happen: the buffer holds 8 */
		memcpy(fds + nfds, CMSG_DATA(cmsg), k * sizeof(int));
		nfds += k;
	}
	if ((msg.msg_flags & MSG_CTRUNC) || foreign) {
		close_fds(fds, nfds);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "control_truncated",
		    "receive: MSG_CTRUNC (more than %u fds in one read) or a control "
		    "message other than SCM_RIGHTS", PRIVSEP_FDS_MAX);
	}
	if (n == 0 && nfds == 0) {
		ps->eof = 1;
		return closed_error(err,
		    "receive: broker closed the connection");
	}
	if (ingest(ps, ps->in_off + ps->in_len, (size_t)n, fds, nfds, err) == -1)
		return -1;
	return 1;
}

int
privsep_read(struct privsep *ps, struct privsep_error *err)
{
	return read_once(ps, MSG_DONTWAIT, err);
}

int
privsep_feed(struct privsep *ps, const void *data, size_t len, const int *fds, size_t nfds,
    struct privsep_error *err)
{
	if (data == NULL && len == 0 && nfds == 0) {
		ps->eof = 1;	/* the end of the stream */
		return 0;
	}
	if (!ps->failed && ps->in_len + len > in_limit(ps)) {
		close_fds(fds, nfds);
		return privsep_seterr(err, PRIVSEP_E_INTERNAL, "send_queue_full",
		    "feed: input buffer full: take messages first");
	}
	if (!ps->failed && in_reserve(ps, ps->in_len + len, err) == -1) {
		close_fds(fds, nfds);
		return -1;
	}
	if (!ps->failed && len > 0)
		memcpy(ps->in + ps->in_len, data, len);
	return ingest(ps, ps->in_off + ps->in_len, len, fds, nfds, err);
}

/* Frames the next message from the input buffer: 1, 0 (incomplete) or -1. */
static int
take_frame(struct privsep *ps, struct privsep_msg **mp, struct privsep_error *err)
{
	struct envelope_members mb;
	struct envelope_scan scan;
	struct privsep_error cause;
	struct privsep_msg *m = NULL;
	struct fdbatch *head;
	int claimed[PRIVSEP_FDS_MAX];
	size_t n, declared, nclaimed = 0, i;
	uint64_t start = ps->in_off;
	json_t *env;

	*mp = NULL;
	if (ps->failed)
		return failed(ps, err);
	head = ps->nbatches > 0 ? &ps->batches[0] : NULL;
	if (ps->in_len >= 4) {
		n = frame_length(ps->in);
		/* Checked before a single body byte is kept. */
		if (n < PRIVSEP_FRAME_MIN)
			return fail(ps, err, PRIVSEP_E_PROTOCOL, "frame_too_short",
			    "frame at offset %llu: length %zu below %u",
			    (unsigned long long)start, n, PRIVSEP_FRAME_MIN);
		if (n > ps->max_frame)
			return fail(ps, err, PRIVSEP_E_TOO_LARGE, "frame_too_large",
			    "frame at offset %llu: length %zu above max_frame %zu",
			    (unsigned long long)start, n, ps->max_frame);
	} else
		n = SIZE_MAX;
	/* fds from an earlier read where no frame starts can belong to no frame */
	if (head != NULL && head->owner == -1 && head->read_end <= start)
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_unclaimed",
		    "receive: %zu fds arrived in a read where no frame starts (offset %llu)",
		    head->n, (unsigned long long)head->read_start);
	if (n == SIZE_MAX || ps->in_len - 4 < n) {
		/*
		 * Every frame the reads completed is delivered: what still waits must
		 * belong to the frame being assembled, so its read must contain that
		 * frame's start.
		 */
		for (i = 0; i < ps->nbatches; i++) {
			if (!(ps->batches[i].read_start <= start && start < ps->batches[i].read_end))
				return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_unclaimed",
				    "receive: %zu fds arrived in a read where no frame starts "
				    "(offset %llu)", ps->batches[i].n,
				    (unsigned long long)ps->batches[i].read_start);
		}
		if (ps->eof && ps->in_len > 0)
			return fail(ps, err, PRIVSEP_E_PROTOCOL, "truncated_frame",
			    "frame at offset %llu: stream ended after %zu bytes",
			    (unsigned long long)start, ps->in_len);
		return 0;
	}
	env = NULL;
	if (privsep_scan_envelope(ps->in + 4, n, ps->peer_helper, &scan) == 0)
		declared = (size_t)scan.fds;
	else if (privsep_decode_members(ps->in + 4, n, &env, &mb, &cause) == -1 ||
	    privsep_envelope_preflight(&mb, ps->peer_helper, &declared, &cause) == -1) {
		json_decref(env);
		return fail_with(ps, err, &cause);
	}
	if (head != NULL && head->owner == (int64_t)start) {
		if (declared != head->n) {
			json_decref(env);
			return fail(ps, err, PRIVSEP_E_PROTOCOL,
			    declared == 0 ? "fds_unclaimed" : "fds_mismatch",
			    "frame at offset %llu declares %zu fds but %zu arrived with it",
			    (unsigned long long)start, declared, head->n);
		}
		memcpy(claimed, head->fds, head->n * sizeof(int));
		nclaimed = head->n;
		ps->nbatches--;
		memmove(ps->batches, ps->batches + 1, ps->nbatches * sizeof(ps->batches[0]));
	} else if (declared > 0) {
		json_decref(env);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "fds_missing",
		    "frame at offset %llu declares %zu fds but none arrived with its first byte",
		    (unsigned long long)start, declared);
	}
	/* a scanned message copies its frame before the buffer moves on */
	if (env == NULL && (m = privsep_msg_scanned(ps->in + 4, n, &scan)) == NULL) {
		close_fds(claimed, nclaimed);
		return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "receive: out of memory");
	}
	ps->in_len -= 4 + n;
	ps->in_off += 4 + n;
	if (ps->in_len > 0)
		memmove(ps->in, ps->in + 4 + n, ps->in_len);
	if (env != NULL && privsep_envelope_validate(env, &mb, err) == -1) {
		/* refused: the stream is still in step */
		close_fds(claimed, nclaimed);
		json_decref(env);
		return -1;
	}
	if (env != NULL && (m = privsep_msg_new(env, &mb, err)) == NULL) {
		close_fds(claimed, nclaimed);
		return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "receive: out of memory");
	}
	memcpy(m->fds, claimed, nclaimed * sizeof(int));
	m->nfds = nclaimed;
	*mp = m;
	return 1;
}

static struct privsep_msg *
pending_pop(struct privsep *ps, struct privsep_msg **link)
{
	struct privsep_msg *m = *link;

	*link = m->next;
	if (ps->pending_tail == &m->next)
		ps->pending_tail = link;
	m->next = NULL;
	ps->npending--;
	return m;
}

int
privsep_take(struct privsep *ps, struct privsep_msg **mp, struct privsep_error *err)
{
	if (ps->pending != NULL) {
		*mp = pending_pop(ps, &ps->pending);
		return 1;
	}
	return take_frame(ps, mp, err);
}

/*
 * SO_RCVTIMEO counts in jiffies and rounds up: a blocking read is bounded a
 * little short of the deadline, and poll(2) waits out the last stretch.
 */
#define RCVTIMEO_SLACK_MS	10

/* left keeping its 3 leading bits: the same timeout gives the same bound, set once. */
static int64_t
coarse(int64_t left)
{
	int shift = 0;

	while (left >= 8) {
		left >>= 1;
		shift++;
	}
	return left << shift;
}

/*
 * Waits for input with one blocking recvmsg bounded by SO_RCVTIMEO (one system
 * call instead of poll and a read): 1 done (read, or the bound or a signal
 * came first: the caller looks again), 0 when poll(2) must wait instead, -1
 * error.
 */
static int
read_wait(struct privsep *ps, int64_t start, int64_t deadline, struct privsep_error *err)
{
	int64_t left = deadline - start, bound;
	struct timeval tv;
	int r, flags;

	if (left <= 2 * RCVTIMEO_SLACK_MS)
		return 0;
	bound = coarse(left - RCVTIMEO_SLACK_MS);
	if (bound != ps->rcvtimeo_ms) {
		tv.tv_sec = (time_t)(bound / 1000);
		tv.tv_usec = (suseconds_t)(bound % 1000 * 1000);
		if (setsockopt(ps->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1)
			return 0;
		ps->rcvtimeo_ms = bound;
	}
	r = read_once(ps, 0, err);
	/* Nothing, and early: a signal, or the socket was made non-blocking behind our back. */
	if (r == 0 && now_ms() < start + bound &&
	    ((flags = fcntl(ps->fd, F_GETFL)) == -1 || (flags & O_NONBLOCK)))
		ps->sock_nonblock = 1;	/* poll from now on */
	/* On EOF the frames already buffered are still delivered. */
	if (r == -1 && !(ps->eof && !ps->failed))
		return -1;
	return 1;
}

/* Adds fd to the one-CPU wait's epoll set, readable, named by itself. */
static int
watch_input(int epfd, int fd)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = fd;
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * The one-CPU wait's epoll set: 0 made, -1 it cannot be (waits poll(2)
 * instead). Each call the wait makes is tried once here, so that a seccomp
 * filter refusing any of them is found before a wait depends on it.
 */
static int
make_wait_set(struct privsep *ps)
{
	struct itimerspec stopped;
	struct epoll_event ev;

	if (ps->epfd != -1)
		return 0;
	if (ps->epoll_failed)
		return -1;
	memset(&stopped, 0, sizeof(stopped));
	if ((ps->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (ps->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) == -1 ||
	    timerfd_settime(ps->timerfd, TFD_TIMER_ABSTIME, &stopped, NULL) == -1 ||
	    watch_input(ps->epfd, ps->fd) == -1 || watch_input(ps->epfd, ps->timerfd) == -1 ||
	    epoll_wait(ps->epfd, &ev, 1, 0) == -1) {
		if (ps->epfd != -1)
			close(ps->epfd);
		if (ps->timerfd != -1)
			close(ps->timerfd);
		ps->epfd = ps->timerfd = -1;
		ps->epoll_failed = 1;
		return -1;
	}
	return 0;
}

/*
 * Waits for input in the epoll set until the deadline (a deadline passed
 * still looks once): 1 the socket is readable, 0 the deadline passed, -1
 * error. The timer is set again only when it would fire after the deadline or
 * has fired; firing early only wakes the wait to set it again.
 */
static int
epoll_input(struct privsep *ps, int64_t now, int64_t deadline, struct privsep_error *err)
{
	struct epoll_event evs[2];
	struct itimerspec its;
	int i, n, block;

	for (;;) {
		block = now < deadline;
		if (block && (ps->timer_at == 0 || ps->timer_at > deadline || ps->timer_at <= now)) {
			memset(&its, 0, sizeof(its));
			its.it_value.tv_sec = (time_t)(deadline / 1000);
			its.it_value.tv_nsec = (long)(deadline % 1000 * 1000000);
			if (timerfd_settime(ps->timerfd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
				return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "timerfd_settime: %s",
				    strerror(errno));
			ps->timer_at = deadline;
		}
		n = epoll_wait(ps->epfd, evs, 2, block ? -1 : 0);
		if (n == -1 && errno != EINTR)
			return fail(ps, err, PRIVSEP_E_INTERNAL, "system", "epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			if (evs[i].data.fd == ps->fd)
				return 1;
		if (!block)
			return 0;
		now = now_ms();
	}
}

/* A deadline not read from the clock yet. */
#define NO_DEADLINE	INT64_MIN

/*
 * Waits for input (flushing output meanwhile) until the deadline, then reads
 * once. The deadline is fixed at the first wait (*deadline is NO_DEADLINE
 * until then): a message already buffered costs no clock read, and the one
 * read serves both the deadline and the blocking read's bound.
 */
static int
wait_input(struct privsep *ps, int timeout_ms, int64_t *deadline, struct privsep_error *err)
{
	short revents;
	int64_t now;
	int r;

	if (ps->eof)
		return closed_error(err, "receive: broker closed the connection");
	now = now_ms();
	if (*deadline == NO_DEADLINE)
		*deadline = deadline_at(ps, now, timeout_ms);
	/* read_wait returns 0 without waiting, so now is still the time. */
	if (ps->out == NULL && !ps->sock_nonblock && !ps->poll_wait &&
	    (r = read_wait(ps, now, *deadline, err)) != 0)
		return r == -1 ? -1 : 0;
	if (ps->out == NULL && ps->poll_wait && make_wait_set(ps) == 0) {
		r = epoll_input(ps, now, *deadline, err);
		revents = POLLIN;
	} else
		r = wait_fd(ps, POLLIN | (ps->out != NULL ? POLLOUT : 0), now, *deadline, &revents, err);
	if (r == -1)
		return -1;
	if (r == 0)
		return privsep_seterr(err, PRIVSEP_E_TIMEOUT, "timeout", "receive: no message in time");
	if ((revents & POLLOUT) && privsep_flush(ps, err) == -1)
		return -1;
	if (revents & (POLLIN | POLLHUP | POLLERR)) {
		r = privsep_read(ps, err);
		/* On EOF the frames already buffered are still delivered. */
		if (r == -1 && !(ps->eof && !ps->failed))
			return -1;
	}
	return 0;
}

int
privsep_recv(struct privsep *ps, struct privsep_msg **mp, int timeout_ms,
    struct privsep_error *err)
{
	int64_t deadline = NO_DEADLINE;
	int r;

	for (;;) {
		if ((r = privsep_take(ps, mp, err)) != 0)
			return r == 1 ? 0 : -1;
		if (wait_input(ps, timeout_ms, &deadline, err) == -1)
			return -1;
	}
}

int
privsep_wait_reply(struct privsep *ps, int64_t id, struct privsep_msg **mp, int timeout_ms,
    struct privsep_error *err)
{
	int64_t deadline = NO_DEADLINE;
	struct privsep_msg **link, *m;
	struct privsep_error cause;
	int r;

	*mp = NULL;
	for (link = &ps->pending; *link != NULL; link = &(*link)->next) {
		if ((*link)->kind == PRIVSEP_REPLY && (*link)->re == id) {
			*mp = pending_pop(ps, link);
			return 0;
		}
	}
	for (;;) {
		if (ps->npending >= PRIVSEP_PENDING_MAX)
			return privsep_seterr(err, PRIVSEP_E_INTERNAL, "system",
			    "request: %u messages arrived while waiting; receive them first",
			    PRIVSEP_PENDING_MAX);
		if ((r = take_frame(ps, &m, &cause)) == -1) {
			/* A refused message is not ours to report here; the stream goes on. */
			if (!cause.fatal)
				continue;
			if (err != NULL)
				*err = cause;
			return -1;
		}
		if (r == 1) {
			if (m->kind == PRIVSEP_REPLY && m->re == id) {
				*mp = m;
				return 0;
			}
			*ps->pending_tail = m;
			ps->pending_tail = &m->next;
			ps->npending++;
			continue;
		}
		if (wait_input(ps, timeout_ms, &deadline, err) == -1)
			return -1;
	}
}

int
privsep_request(struct privsep *ps, const char *type, json_t *body, const int *fds,
    size_t nfds, struct privsep_msg **mp, int timeout_ms, struct privsep_error *err)
{
	int64_t id;

	*mp = NULL;
	if (privsep_send_request(ps, type, body, fds, nfds, &id, err) == -1)
		return -1;
	return privsep_wait_reply(ps, id, mp, timeout_ms, err);
}

int
privsep_request_pack(struct privsep *ps, const char *type, const int *fds, size_t nfds,
    struct privsep_msg **mp, int timeout_ms, struct privsep_error *err, const char *fmt, ...)
{
	va_list ap;
	int64_t id;
	int r;

	*mp = NULL;
	va_start(ap, fmt);
	r = send_request(ps, type, NULL, fmt, &ap, fds, nfds, &id, err);
	va_end(ap);
	if (r == -1)
		return -1;
	return privsep_wait_reply(ps, id, mp, timeout_ms, err);
}

int
privsep_hello(struct privsep *ps, const char *client, json_t **reply_body,
    struct privsep_error *err)
{
	struct privsep_msg *m;
	json_t *body, *mf, *name;
	int r;

	if (reply_body != NULL)
		*reply_body = NULL;
	body = json_pack("{s:i, s:s}", "protocol", PRIVSEP_PROTOCOL, "client",
	    client != NULL ? client : "libprivsep/" PRIVSEP_LIB_VERSION);
	if (body == NULL)
		return privsep_seterr(err, PRIVSEP_E_INVALID, "argument", "hello: client is not valid UTF-8");
	r = privsep_request(ps, "privsep.hello", body, NULL, 0, &m, -1, err);
	json_decref(body);
	if (r == -1)
		return -1;
	if (privsep_msg_error_code(m) != NULL) {
		privsep_seterr(err, privsep_msg_error_code(m), "error_reply", "hello: %s",
		    privsep_msg_error_message(m));
		privsep_msg_free(m);
		return -1;
	}
	body = privsep_msg_body(m);
	if ((mf = json_object_get(body, "protocol")) != NULL &&
	    (!json_is_integer(mf) || json_integer_value(mf) != PRIVSEP_PROTOCOL)) {
		privsep_msg_free(m);
		return fail(ps, err, PRIVSEP_E_PROTOCOL, "bad_hello",
		    "hello: the broker speaks another protocol than %d", PRIVSEP_PROTOCOL);
	}
	mf = json_object_get(body, "max_frame");
	if (mf != NULL) {
		if (!json_is_integer(mf) || json_integer_value(mf) < PRIVSEP_FRAME_MIN ||
		    json_integer_value(mf) > PRIVSEP_FRAME_LIMIT) {
			privsep_msg_free(m);
			return fail(ps, err, PRIVSEP_E_PROTOCOL, "bad_hello",
			    "hello: max_frame not an integer in %u..%u", PRIVSEP_FRAME_MIN,
			    PRIVSEP_FRAME_LIMIT);
		}
		ps->max_frame = (size_t)json_integer_value(mf);
	}
	name = json_object_get(body, "helper");
	if (json_is_string(name)) {
		char *copy = strdup(json_string_value(name));
		if (copy != NULL) {
			free(ps->helper);
			ps->helper = copy;
		}
	}
	if (reply_body != NULL)
		*reply_body = json_incref(body);
	privsep_msg_free(m);
	return 0;
}
