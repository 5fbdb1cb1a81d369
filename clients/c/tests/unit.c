/*
 * Unit tests of libprivsep over real socketpairs. Where the library blocks,
 * a forked child plays the broker with raw system calls (no library code),
 * so both sides of the wire are checked independently.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "privsep.h"
#include "testlib.h"

/* --- the raw peer ---------------------------------------------------------- */

static int
raw_send(int fd, const void *data, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} c;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&c, 0, sizeof(c));
	iov.iov_base = (void *)data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = c.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int
raw_frame(int fd, const char *json, const int *fds, size_t nfds)
{
	size_t n = strlen(json);
	unsigned char *buf = malloc(n + 4);
	int r;

	buf[0] = (unsigned char)(n >> 24);
	buf[1] = (unsigned char)(n >> 16);
	buf[2] = (unsigned char)(n >> 8);
	buf[3] = (unsigned char)n;
	memcpy(buf + 4, json, n);
	r = raw_send(fd, buf, n + 4, fds, nfds);
	free(buf);
	return r;
}

/* Reads exactly len bytes, collecting fds; blocking. */
static int
raw_recv_exact(int fd, unsigned char *buf, size_t len, int *fds, size_t *nfds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} c;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;
	size_t got = 0, k;
	ssize_t n;

	while (got < len) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf + got;
		iov.iov_len = len - got;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = c.buf;
		msg.msg_controllen = sizeof(c.buf);
		if ((n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) <= 0)
			return -1;
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			if (nfds != NULL) {
				memcpy(fds + *nfds, CMSG_DATA(cm), k * sizeof(int));
				*nfds += k;
			}
		}
		got += (size_t)n;
	}
	return 0;
}

/* Reads one frame and parses it; NULL on EOF or bad JSON. */
static json_t *
raw_read(int fd, int *fds, size_t *nfds)
{
	unsigned char hdr[4], *body;
	size_t n;
	json_t *v;

	if (nfds != NULL)
		*nfds = 0;
	if (raw_recv_exact(fd, hdr, 4, fds, nfds) == -1)
		return NULL;
	n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (n > (1u << 24) || (body = malloc(n)) == NULL)
		return NULL;
	if (raw_recv_exact(fd, body, n, fds, nfds) == -1) {
		free(body);
		return NULL;
	}
	v = json_loadb((char *)body, n, JSON_REJECT_DUPLICATES, NULL);
	free(body);
	return v;
}

static int
pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

/* Runs peer(fd) in a child; the parent keeps sv[0] as the library's socket. */
static pid_t
spawn_peer(int sv[2], int (*peer)(int))
{
	pid_t pid = fork();

	if (pid == 0) {
		close(sv[0]);
		_exit(peer(sv[1]));
	}
	close(sv[1]);
	return pid;
}

static int
peer_status(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
id_of(json_t *v)
{
	return (int)json_integer_value(json_object_get(v, "id"));
}

/* --- decoding ------------------------------------------------------------- */

struct dcase {
	const char *json;
	int from_broker;
	int ok;
};

static int
t_decode_rules(void)
{
	static const struct dcase cases[] = {
		{ "{\"type\":\"a.b\"}", 0, 1 },
		{ "{\"type\":\"privsep.ping\",\"id\":1,\"body\":{}}", 0, 1 },
		{ "{\"re\":1,\"body\":{}}", 0, 1 },
		{ "{\"re\":1,\"error\":{\"code\":\"x.y\",\"message\":\"m\",\"data\":[1]}}", 0, 1 },
		{ "{\"re\":1,\"body\":{},\"more\":true}", 0, 1 },
		{ "{\"type\":\"a.b\",\"from\":\"broker\"}", 1, 1 },
		{ "{\"type\":\"a.b\",\"from\":\"broker\"}", 0, 0 },
		{ "{\"type\":\"a.b\",\"x\":1}", 1, 0 },
		{ "{\"type\":\"a\"}", 1, 0 },
		{ "{\"type\":\"A.b\"}", 1, 0 },
		{ "{\"type\":\"a..b\"}", 1, 0 },
		{ "{\"type\":\"a.b.\"}", 1, 0 },
		{ "{\"type\":\"a.1b\"}", 1, 0 },
		{ "{\"type\":\"a_1.b_2.c\"}", 1, 1 },
		{ "{\"type\":\"a.b\",\"id\":0}", 1, 0 },
		{ "{\"type\":\"a.b\",\"id\":9007199254740991}", 1, 1 },
		{ "{\"type\":\"a.b\",\"id\":9007199254740992}", 1, 0 },
		{ "{\"type\":\"a.b\",\"id\":\"1\"}", 1, 0 },
		{ "{\"type\":\"a.b\",\"id\":1.5}", 1, 0 },
		{ "{\"type\":\"a.b\",\"fds\":0}", 1, 0 },
		{ "{\"type\":\"a.b\",\"fds\":9}", 1, 0 },
		{ "{\"type\":\"a.b\",\"body\":[]}", 1, 0 },
		{ "{\"re\":1,\"body\":{},\"more\":false}", 1, 0 },
		{ "{\"re\":1,\"type\":\"a.b\",\"body\":{}}", 1, 0 },
		{ "{\"re\":1,\"body\":{},\"error\":{\"code\":\"a\",\"message\":\"b\"}}", 1, 0 },
		{ "{\"re\":1}", 1, 1 },
		{ "{\"re\":1,\"error\":{\"code\":\"a\"}}", 1, 0 },
		{ "{\"type\":\"a.b\",\"more\":true}", 1, 0 },
		{ "{\"type\":\"a.b\",\"error\":{\"code\":\"a\",\"message\":\"b\"}}", 1, 0 },
		{ "{\"body\":{}}", 1, 0 },
		{ "{\"type\":\"a.b\",\"type\":\"a.c\"}", 1, 0 },
		{ "{\"type\":\"a.b\"} x", 1, 0 },
		{ "{\"type\":\"a.b\",\"body\":{\"n\":NaN}}", 1, 0 },
		{ "{\"type\":\"a.b\",\"body\":{\"s\":\"\\ud800\"}}", 1, 0 },
		{ "{\"type\":\"a.b\",\"body\":{\"s\":\"\\u0000\"}}", 1, 1 },
		{ "[1]", 1, 0 },
		{ "\"a\"", 1, 0 },
	};
	struct privsep_error err;
	json_t *v;
	size_t i;
	int r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = privsep_decode(cases[i].json, strlen(cases[i].json), &v, &err);
		if (r == 0) {
			r = privsep_envelope_check(v, cases[i].from_broker, &err);
			json_decref(v);
		}
		if ((r == 0) != cases[i].ok) {
			snprintf(t_why, sizeof(t_why), "case %zu %s: got %s (%s)", i, cases[i].json,
			    r == 0 ? "ok" : err.code, r == 0 ? "" : err.message);
			return 1;
		}
		if (r != 0)
			CHECK(strcmp(err.code, PRIVSEP_E_PROTOCOL) == 0 ||
			    strcmp(err.code, PRIVSEP_E_INVALID) == 0);
	}
	return 0;
}

static int
t_decode_invalid_utf8(void)
{
	static const char bad[] = "{\"type\":\"a.b\",\"body\":{\"s\":\"\xff\"}}";
	struct privsep_error err;
	json_t *v;

	CHECK(privsep_decode(bad, sizeof(bad) - 1, &v, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	return 0;
}

/* A raw NUL byte is invalid anywhere, also where jansson's lexer would drop it. */
#define NUL_CASE(s)	{ s, sizeof(s) - 1 }
static int
t_decode_nul(void)
{
	static const struct {
		const char *json;
		size_t len;
	} cases[] = {
		NUL_CASE("{\"type\":\"a.b\",\"id\":1\0}"),
		NUL_CASE("{\"type\":\"a.b\",\"body\":{\"t\":true\0}}"),
		NUL_CASE("{\"type\":\"a.b\",\"body\":{\"s\":\"\0\"}}"),
		NUL_CASE("{\"type\":\"a.b\"}\0"),
	};
	struct privsep_error err;
	char buf[64];
	json_t *v;
	size_t i;
	char *nul;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(privsep_decode(cases[i].json, cases[i].len, &v, &err) == -1);
		CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
		CHECK(strcmp(err.reason, "invalid_json") == 0 && err.fatal);
		/* the same frame without the NUL byte is a valid envelope */
		memcpy(buf, cases[i].json, cases[i].len);
		nul = memchr(buf, '\0', cases[i].len);
		CHECK(nul != NULL);
		memmove(nul, nul + 1, cases[i].len - (size_t)(nul - buf) - 1);
		CHECK(privsep_decode(buf, cases[i].len - 1, &v, &err) == 0);
		json_decref(v);
	}
	return 0;
}

/* Builds {"type":"a.b","body":{"d":[[[...]]]}} with the envelope at depth 1. */
static char *
nested(size_t depth)
{
	size_t inner = depth - 2, n = 0;
	char *s = malloc(inner * 2 + 64);

	n += (size_t)sprintf(s, "{\"type\":\"a.b\",\"body\":{\"d\":");
	memset(s + n, '[', inner);
	n += inner;
	memset(s + n, ']', inner);
	n += inner;
	strcpy(s + n, "}}");
	return s;
}

static int
t_decode_depth(void)
{
	struct privsep_error err;
	json_t *v;
	char *s;
	int r;

	s = nested(64);
	r = privsep_decode(s, strlen(s), &v, &err);
	free(s);
	CHECK(r == 0);
	json_decref(v);
	s = nested(65);
	r = privsep_decode(s, strlen(s), &v, &err);
	free(s);
	CHECK(r == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	s = nested(100000);
	r = privsep_decode(s, strlen(s), &v, &err);
	free(s);
	CHECK(r == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	return 0;
}

/* --- framing through privsep_feed ------------------------------------------ */

static struct privsep *
feed_conn(int sv[2])
{
	struct privsep *ps;

	if (pair(sv) == -1 || privsep_open_fd(&ps, sv[0], "t", NULL) == -1)
		return NULL;
	return ps;
}

static int
t_length_limits(void)
{
	static const struct {
		unsigned char prefix[4];
		const char *code, *reason;
	} bad[] = {
		{ { 0, 0, 0, 0 }, PRIVSEP_E_PROTOCOL, "frame_too_short" },
		{ { 0, 0, 0, 1 }, PRIVSEP_E_PROTOCOL, "frame_too_short" },
		{ { 0xff, 0xff, 0xff, 0xff }, PRIVSEP_E_TOO_LARGE, "frame_too_large" },
		{ { 0, 0x10, 0, 1 }, PRIVSEP_E_TOO_LARGE, "frame_too_large" },
	};
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK((ps = feed_conn(sv)) != NULL);
		CHECK(privsep_feed(ps, bad[i].prefix, 4, NULL, 0, &err) == 0);
		CHECK(privsep_take(ps, &m, &err) == -1);
		CHECK_CODE(err, bad[i].code);
		CHECK(strcmp(err.reason, bad[i].reason) == 0 && err.fatal);
		/* the failure is final */
		CHECK(privsep_take(ps, &m, &err) == -1);
		privsep_close(ps);
		close(sv[1]);
	}
	return 0;
}

static int
t_exact_max_frame(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	size_t n = PRIVSEP_FRAME_DEFAULT, head;
	unsigned char *buf;
	int sv[2], r;

	CHECK((ps = feed_conn(sv)) != NULL);
	buf = malloc(n + 4);
	head = (size_t)sprintf((char *)buf + 4, "{\"type\":\"a.b\",\"body\":{\"p\":\"");
	memset(buf + 4 + head, 'x', n - head - 3);
	memcpy(buf + 4 + n - 3, "\"}}", 3);
	buf[0] = 0; buf[1] = 0x10; buf[2] = 0; buf[3] = 0;
	r = privsep_feed(ps, buf, n + 4, NULL, 0, &err);
	free(buf);
	CHECK(r == 0);
	CHECK(privsep_take(ps, &m, &err) == 1);
	CHECK(json_string_length(json_object_get(privsep_msg_body(m), "p")) == n - head - 3);
	privsep_msg_free(m);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_partial_and_batched(void)
{
	static const char stream[] =
	    "\0\0\0\x0e{\"type\":\"a.b\"}\0\0\0\x17{\"re\":3,\"body\":{\"k\":1}}";
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	size_t i, got = 0;
	int sv[2], r;

	CHECK((ps = feed_conn(sv)) != NULL);
	/* one byte at a time */
	for (i = 0; i < sizeof(stream) - 1; i++) {
		CHECK(privsep_feed(ps, stream + i, 1, NULL, 0, &err) == 0);
		while ((r = privsep_take(ps, &m, &err)) == 1) {
			got++;
			if (got == 1)
				CHECK(privsep_msg_kind(m) == PRIVSEP_EVENT);
			else
				CHECK(privsep_msg_re(m) == 3 && privsep_msg_kind(m) == PRIVSEP_REPLY);
			privsep_msg_free(m);
		}
		CHECK(r == 0);
	}
	CHECK(got == 2);
	/* both in one piece */
	CHECK(privsep_feed(ps, stream, sizeof(stream) - 1, NULL, 0, &err) == 0);
	CHECK(privsep_take(ps, &m, &err) == 1);
	privsep_msg_free(m);
	CHECK(privsep_take(ps, &m, &err) == 1);
	privsep_msg_free(m);
	CHECK(privsep_take(ps, &m, &err) == 0);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_fds_declared_but_missing(void)
{
	static const char f[] = "\0\0\0\x16{\"type\":\"a.b\",\"fds\":1}";
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];

	CHECK((ps = feed_conn(sv)) != NULL);
	CHECK(privsep_feed(ps, f, sizeof(f) - 1, NULL, 0, &err) == 0);
	CHECK(privsep_take(ps, &m, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_fd_batch_checks(void)
{
	struct privsep_error err;
	struct privsep *ps;
	int sv[2], fds[PRIVSEP_FDS_MAX + 1];
	size_t i;

	/* fds with no data */
	CHECK((ps = feed_conn(sv)) != NULL);
	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(privsep_feed(ps, "", 0, fds, 1, &err) == -1);
	CHECK(strcmp(err.reason, "fds_unclaimed") == 0 && err.fatal);
	CHECK(fcntl(fds[0], F_GETFD) == -1 && errno == EBADF);
	privsep_close(ps);
	close(sv[1]);
	/* more than a frame may carry in one read */
	CHECK((ps = feed_conn(sv)) != NULL);
	for (i = 0; i < PRIVSEP_FDS_MAX + 1; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(privsep_feed(ps, "\0\0", 2, fds, PRIVSEP_FDS_MAX + 1, &err) == -1);
	CHECK(strcmp(err.reason, "fds_mismatch") == 0);
	for (i = 0; i < PRIVSEP_FDS_MAX + 1; i++)
		CHECK(fcntl(fds[i], F_GETFD) == -1 && errno == EBADF);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_refused_keeps_stream(void)
{
	static const char two[] =
	    "\0\0\0\x1b{\"type\":\"a.b\",\"id\":7,\"x\":1}\0\0\0\x0e{\"type\":\"a.b\"}";
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];

	CHECK((ps = feed_conn(sv)) != NULL);
	CHECK(privsep_feed(ps, two, sizeof(two) - 1, NULL, 0, &err) == 0);
	CHECK(privsep_take(ps, &m, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	CHECK(strcmp(err.reason, "unknown_member") == 0 && !err.fatal && err.id == 7);
	CHECK(privsep_take(ps, &m, &err) == 1);
	CHECK(privsep_msg_kind(m) == PRIVSEP_EVENT);
	privsep_msg_free(m);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

/* --- fds over the socket ---------------------------------------------------- */

static int
t_fd_receive(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2], p[2], fd;
	char buf[8];

	CHECK(pair(sv) == 0 && pipe(p) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(write(p[1], "hi", 2) == 2);
	close(p[1]);
	CHECK(raw_frame(sv[1], "{\"re\":1,\"body\":{},\"fds\":1}", &p[0], 1) == 0);
	close(p[0]);
	CHECK(privsep_recv(ps, &m, 1000, &err) == 0);
	CHECK(privsep_msg_nfds(m) == 1);
	fd = privsep_msg_take_fd(m, 0);
	CHECK(fd >= 0 && privsep_msg_take_fd(m, 0) == -1);
	CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	CHECK(read(fd, buf, sizeof(buf)) == 2 && memcmp(buf, "hi", 2) == 0);
	close(fd);
	privsep_msg_free(m);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_fd_send(void)
{
	struct privsep_error err;
	struct privsep *ps;
	int sv[2], p[2], fds[4];
	size_t nfds;
	json_t *v, *body;
	char buf[8];

	CHECK(pair(sv) == 0 && pipe(p) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	body = json_pack("{s:s}", "name", "p");
	CHECK(privsep_event(ps, "test.put", body, &p[0], 1, &err) == 0);
	json_decref(body);
	close(p[0]);	/* the library sent its own copy */
	CHECK((v = raw_read(sv[1], fds, &nfds)) != NULL);
	CHECK(nfds == 1);
	CHECK(json_integer_value(json_object_get(v, "fds")) == 1);
	CHECK(strcmp(json_string_value(json_object_get(v, "type")), "test.put") == 0);
	json_decref(v);
	CHECK(write(p[1], "yo", 2) == 2);
	CHECK(read(fds[0], buf, sizeof(buf)) == 2 && memcmp(buf, "yo", 2) == 0);
	close(fds[0]);
	close(p[1]);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_unclaimed_fd_closed(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2], p[2];

	CHECK(pair(sv) == 0 && pipe(p) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	/* a frame that declares no fds but carries one */
	CHECK(raw_frame(sv[1], "{\"type\":\"a.b\"}", &p[0], 1) == 0);
	close(p[0]);
	CHECK(privsep_recv(ps, &m, 1000, &err) == -1);
	CHECK(strcmp(err.reason, "fds_unclaimed") == 0 && err.fatal);
	/* no reader is left anywhere: the library closed its copy */
	CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
	close(p[1]);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
t_ctrunc(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2], p[2], fds[PRIVSEP_FDS_MAX + 1];
	size_t i;

	CHECK(pair(sv) == 0 && pipe(p) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	for (i = 0; i < PRIVSEP_FDS_MAX + 1; i++)
		fds[i] = p[0];
	CHECK(raw_frame(sv[1], "{\"type\":\"a.b\",\"fds\":8}", fds, PRIVSEP_FDS_MAX + 1) == 0);
	close(p[0]);
	CHECK(privsep_recv(ps, &m, 1000, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	CHECK(strcmp(err.reason, "control_truncated") == 0);
	CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
	close(p[1]);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

/* --- end of stream ------------------------------------------------------- */

static int
t_eof(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];

	CHECK(pair(sv) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	/* a whole frame, then a clean close: the frame first, then unavailable */
	CHECK(raw_frame(sv[1], "{\"type\":\"a.b\"}", NULL, 0) == 0);
	close(sv[1]);
	CHECK(privsep_recv(ps, &m, 1000, &err) == 0);
	privsep_msg_free(m);
	CHECK(privsep_recv(ps, &m, 1000, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_UNAVAILABLE);
	privsep_close(ps);

	/* a truncated body, then a close */
	CHECK(pair(sv) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(raw_send(sv[1], "\0\0\0\x10{\"ty", 8, NULL, 0) == 0);
	close(sv[1]);
	CHECK(privsep_recv(ps, &m, 1000, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	privsep_close(ps);
	return 0;
}

/* The connection still works after a timeout: a message that comes is taken. Closes both ends. */
static int
still_delivers(struct privsep *ps, int peer)
{
	struct privsep_error err;
	struct privsep_msg *m;

	CHECK(raw_frame(peer, "{\"type\":\"a.b\"}", NULL, 0) == 0);
	CHECK(privsep_recv(ps, &m, 1000, &err) == 0);
	privsep_msg_free(m);
	privsep_close(ps);
	close(peer);
	return 0;
}

static int
t_timeout(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];

	CHECK(pair(sv) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(privsep_recv(ps, &m, 10, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_TIMEOUT);
	/* a timeout is not a failure of the connection */
	return still_delivers(ps, sv[1]);
}

static int64_t
elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
on_alarm(int sig)
{
	(void)sig;
}

/* A connection opened while this process may run on its current CPU only. */
static int
open_one_cpu(struct privsep **psp, int fd)
{
	struct privsep_error err;
	cpu_set_t all, one;
	int r;

	if (sched_getaffinity(0, sizeof(all), &all) == -1)
		return -1;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one) == -1)
		return -1;
	r = privsep_open_fd(psp, fd, "t", &err);
	return sched_setaffinity(0, sizeof(all), &all) == -1 ? -1 : r;
}

/*
 * The waits end at the deadline, not before, whatever the mode, and however
 * often a signal interrupts them: in recvmsg under SO_RCVTIMEO, and in
 * epoll_wait(2) for a connection opened while the process may run on one CPU
 * only.
 */
static int
t_timeout_long(void)
{
	static const int modes[] = { 0, 1, 2 };	/* blocking, non-blocking, O_NONBLOCK set by the app */
	struct itimerval every = { { 0, 3000 }, { 0, 3000 } }, off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa, old;
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	struct timespec t0;
	int64_t took;
	size_t i;
	int sv[2], run, signals, pinned;

	for (run = 0; run < 4; run++) {
		pinned = run / 2;
		signals = run % 2;
		for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
			CHECK(pair(sv) == 0);
			CHECK((pinned ? open_one_cpu(&ps, sv[0]) : privsep_open_fd(&ps, sv[0], "t", &err)) == 0);
			if (modes[i] == 1)
				privsep_set_nonblocking(ps, 1);
			if (modes[i] == 2)
				CHECK(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK) == 0);
			if (signals) {
				memset(&sa, 0, sizeof(sa));
				sa.sa_handler = on_alarm;
				sa.sa_flags = SA_RESTART;
				CHECK(sigaction(SIGALRM, &sa, &old) == 0);
				CHECK(setitimer(ITIMER_REAL, &every, NULL) == 0);
			}
			clock_gettime(CLOCK_MONOTONIC, &t0);
			CHECK(privsep_recv(ps, &m, 250, &err) == -1);
			took = elapsed_ms(&t0);
			if (signals) {
				setitimer(ITIMER_REAL, &off, NULL);
				sigaction(SIGALRM, &old, NULL);
			}
			CHECK_CODE(err, PRIVSEP_E_TIMEOUT);
			/* deadlines count whole milliseconds: 249.x ms reads as 249 */
			CHECK(took >= 249 && took < 5000);
			/* and a message that comes is taken at once */
			if (still_delivers(ps, sv[1]) != 0)
				return 1;
		}
	}
	return 0;
}

/* The lowest fd number free now. */
static int
lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd != -1)
		close(fd);
	return fd;
}

/* The CPU time this process has used, in ms. */
static int64_t
cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* A receive that times out after msec, and how long it took (ms); -1 if it did not time out. */
static int64_t
time_out(struct privsep *ps, int msec)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (privsep_recv(ps, &m, msec, &err) != -1 || strcmp(err.code, PRIVSEP_E_TIMEOUT) != 0)
		return -1;
	return elapsed_ms(&t0);
}

/*
 * One CPU: the wait's timer, set for one deadline, serves the waits after it:
 * a shorter one still ends at its own deadline, and one that finds the timer
 * fired sets it again. Without the fds for the epoll set, waits poll(2) and
 * keep their deadlines. privsep_close closes the set's fds.
 */
static int
t_timeout_one_cpu(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	struct rlimit nofile, none;
	int64_t took, cpu;
	int sv[2], base, lowest;

	base = lowest_free_fd();
	CHECK(pair(sv) == 0);
	lowest = lowest_free_fd();
	CHECK(open_one_cpu(&ps, sv[0]) == 0);
	/* A wait with a far deadline takes a message at once: the timer is set 10 s ahead. */
	CHECK(raw_frame(sv[1], "{\"type\":\"a.b\"}", NULL, 0) == 0);
	CHECK(privsep_recv(ps, &m, 10000, &err) == 0);
	privsep_msg_free(m);
	/* the set holds two fds */
	CHECK(lowest_free_fd() == lowest + 2);
	took = time_out(ps, 50);
	CHECK(took >= 49 && took < 5000);
	/* the timer fired for that deadline: the next wait sets it again, and sleeps */
	cpu = cpu_ms();
	took = time_out(ps, 30);
	CHECK(took >= 29 && took < 5000);
	CHECK(cpu_ms() - cpu < 10);
	/* a deadline already passed still takes what is there */
	CHECK(raw_frame(sv[1], "{\"type\":\"a.b\"}", NULL, 0) == 0);
	CHECK(privsep_recv(ps, &m, 0, &err) == 0);
	privsep_msg_free(m);
	CHECK(still_delivers(ps, sv[1]) == 0);
	CHECK(lowest_free_fd() == base);
	CHECK(fcntl(lowest, F_GETFD) == -1 && fcntl(lowest + 1, F_GETFD) == -1);

	/* No fd left for the set: the wait polls, and still ends at its deadline. */
	CHECK(pair(sv) == 0);
	CHECK(open_one_cpu(&ps, sv[0]) == 0);
	CHECK(getrlimit(RLIMIT_NOFILE, &nofile) == 0);
	none = nofile;
	none.rlim_cur = (rlim_t)lowest_free_fd();
	CHECK(setrlimit(RLIMIT_NOFILE, &none) == 0);
	took = time_out(ps, 50);
	CHECK(setrlimit(RLIMIT_NOFILE, &nofile) == 0);
	CHECK(took >= 49 && took < 5000);
	/* and keeps to poll(2) once the fds are there again */
	lowest = lowest_free_fd();
	took = time_out(ps, 20);
	CHECK(took >= 19 && took < 5000);
	CHECK(lowest_free_fd() == lowest);
	return still_delivers(ps, sv[1]);
}

/* Refuses one system call with EPERM from now on (a seccomp filter, this process only). */
static int
refuse_syscall(int nr)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/*
 * One CPU under a seccomp filter that refuses one call of the epoll wait: the
 * connection polls instead, and its waits still end at their deadlines and
 * take what comes. Each case runs in a child, which the filter cannot outlive.
 */
static int
t_timeout_one_cpu_seccomp(void)
{
	static const int refused[] = { SYS_epoll_create1, SYS_timerfd_create, SYS_timerfd_settime,
	    SYS_epoll_ctl,
#ifdef SYS_epoll_wait
	    SYS_epoll_wait,
#endif
	    SYS_epoll_pwait };
	struct privsep *ps;
	size_t i;
	pid_t pid;
	int sv[2], status;
	int64_t took;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		CHECK(pair(sv) == 0);
		if ((pid = fork()) == 0) {
			if (refuse_syscall(refused[i]) == -1 || open_one_cpu(&ps, sv[0]) != 0)
				_exit(2);
			took = time_out(ps, 30);
			if (!(took >= 29 && took < 5000))
				_exit(3);
			_exit(still_delivers(ps, sv[1]) == 0 ? 0 : 4);
		}
		CHECK(pid != -1);
		close(sv[0]);
		close(sv[1]);
		CHECK(waitpid(pid, &status, 0) == pid);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	return 0;
}

/* --- sending -------------------------------------------------------------- */

static int
t_send_checks(void)
{
	struct privsep_error err;
	struct privsep *ps;
	json_t *env, *body;
	int sv[2], fd = 0;
	char *big;

	CHECK(pair(sv) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	env = json_pack("{s:s, s:s}", "type", "a.b", "from", "me");
	CHECK(privsep_send(ps, env, NULL, 0, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	CHECK(strcmp(err.reason, "from_forbidden") == 0 && !err.fatal);
	json_decref(env);
	env = json_pack("{s:s}", "type", "a.b");
	CHECK(privsep_send(ps, env, &fd, 1, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	json_decref(env);
	CHECK(privsep_event(ps, "Bad", NULL, NULL, 0, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	big = malloc(PRIVSEP_FRAME_DEFAULT + 1);
	memset(big, 'x', PRIVSEP_FRAME_DEFAULT);
	big[PRIVSEP_FRAME_DEFAULT] = '\0';
	body = json_pack("{s:s}", "p", big);
	free(big);
	CHECK(privsep_event(ps, "a.b", body, NULL, 0, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_TOO_LARGE);
	json_decref(body);
	/* nothing reached the wire; the connection still works */
	CHECK(privsep_event(ps, "a.b", NULL, NULL, 0, &err) == 0);
	CHECK((env = raw_read(sv[1], NULL, NULL)) != NULL);
	CHECK(json_object_size(env) == 2 && json_is_object(json_object_get(env, "body")));
	json_decref(env);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

/* A packed request: the frame the broker reads; a refused format sends nothing. */
static int
t_send_pack(void)
{
	struct privsep_error err;
	struct privsep *ps;
	json_t *env, *want;
	int64_t id, id2;
	int sv[2], fds[2], got[8];
	size_t nfds;

	CHECK(pair(sv) == 0);
	CHECK(pipe(fds) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(privsep_send_request_pack(ps, "a.b", NULL, 0, &id, &err, "{s:I,s:[s,b]}", "seq",
	    (json_int_t)7, "l", "x", 1) == 0);
	CHECK((env = raw_read(sv[1], NULL, NULL)) != NULL);
	want = json_pack("{s:s,s:I,s:{s:I,s:[s,b]}}", "type", "a.b", "id", (json_int_t)id, "body", "seq",
	    (json_int_t)7, "l", "x", 1);
	CHECK(json_equal(env, want));
	json_decref(env);
	json_decref(want);
	/* refused before a byte is written; the connection goes on */
	CHECK(privsep_send_request_pack(ps, "a.b", NULL, 0, NULL, &err, "{s:i,s:i}", "k", 1, "k", 2) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	CHECK(!err.fatal && strstr(err.message, "twice") != NULL && strstr(err.message, "offset 5") != NULL);
	CHECK(privsep_send_request_pack(ps, "Bad", NULL, 0, NULL, &err, "{}") == -1);
	CHECK(strcmp(err.reason, "bad_type") == 0);
	CHECK(privsep_send_request_pack(ps, "a.b", NULL, 0, NULL, &err, NULL) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	/* with a descriptor, declared in the envelope */
	CHECK(privsep_send_request_pack(ps, "a.c", &fds[0], 1, &id2, &err, "{s:s}", "k", "v") == 0);
	CHECK(id2 > id);
	CHECK((env = raw_read(sv[1], got, &nfds)) != NULL);
	CHECK(nfds == 1 && json_integer_value(json_object_get(env, "fds")) == 1);
	CHECK(strcmp(json_string_value(json_object_get(json_object_get(env, "body"), "k")), "v") == 0);
	close(got[0]);
	json_decref(env);
	privsep_close(ps);
	close(sv[1]);
	close(fds[0]);
	close(fds[1]);
	return 0;
}

static int
t_nonblocking_flush(void)
{
	struct privsep_error err;
	struct privsep *ps;
	json_t *body, *v;
	int sv[2], sent = 0, got = 0, flags;
	char *chunk;

	CHECK(pair(sv) == 0);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	privsep_set_nonblocking(ps, 1);
	chunk = malloc(100001);
	memset(chunk, 'y', 100000);
	chunk[100000] = '\0';
	body = json_pack("{s:s}", "p", chunk);
	free(chunk);
	while (!privsep_want_write(ps)) {
		CHECK(privsep_event(ps, "a.b", body, NULL, 0, &err) == 0);
		sent++;
		CHECK(sent < 1000);
	}
	/* two more queue up behind the blocked one */
	CHECK(privsep_event(ps, "a.c", body, NULL, 0, &err) == 0);
	CHECK(privsep_event(ps, "a.d", NULL, NULL, 0, &err) == 0);
	sent += 2;
	json_decref(body);
	flags = fcntl(sv[1], F_GETFL);
	while (got < sent) {
		CHECK(privsep_flush(ps, &err) >= 0);
		fcntl(sv[1], F_SETFL, flags);
		CHECK((v = raw_read(sv[1], NULL, NULL)) != NULL);
		got++;
		if (got == sent)
			CHECK(strcmp(json_string_value(json_object_get(v, "type")), "a.d") == 0);
		json_decref(v);
	}
	CHECK(privsep_flush(ps, &err) == 1 && !privsep_want_write(ps));
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
peer_burst(int fd)
{
	char buf[64];
	int i;

	for (i = 1; i <= 500; i++) {
		snprintf(buf, sizeof(buf), "{\"type\":\"t.tick\",\"body\":{\"n\":%d}}", i);
		if (raw_frame(fd, buf, NULL, 0))
			return 10;
	}
	return 0;	/* the child's exit closes the socket */
}

/* The documented event loop: poll, read once, take everything, until the end of the stream. */
static int
t_event_loop(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	struct pollfd pfd;
	int sv[2], rr, r, seen = 0, ended = 0;
	pid_t pid;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_burst);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	privsep_set_nonblocking(ps, 1);
	pfd.fd = privsep_fd(ps);
	while (!ended) {
		pfd.events = POLLIN | (privsep_want_write(ps) ? POLLOUT : 0);
		CHECK(poll(&pfd, 1, 5000) == 1);
		rr = privsep_read(ps, &err);
		while ((r = privsep_take(ps, &m, &err)) != 0) {
			CHECK(r == 1);
			seen++;
			CHECK(json_integer_value(json_object_get(privsep_msg_body(m), "n")) == seen);
			privsep_msg_free(m);
		}
		if (rr == -1) {
			CHECK_CODE(err, PRIVSEP_E_UNAVAILABLE);
			CHECK(err.fatal);
			ended = 1;
		}
	}
	CHECK(seen == 500);
	CHECK(peer_status(pid) == 0);
	privsep_close(ps);
	return 0;
}

/* --- request/reply against a forked peer ------------------------------------ */

static int
peer_hello(int fd)
{
	json_t *v = raw_read(fd, NULL, NULL);
	const char *client;
	char buf[256];

	if (v == NULL || strcmp(json_string_value(json_object_get(v, "type")), "privsep.hello"))
		return 10;
	if (json_integer_value(json_object_get(json_object_get(v, "body"), "protocol")) != 1)
		return 11;
	client = json_string_value(json_object_get(json_object_get(v, "body"), "client"));
	if (client == NULL || strncmp(client, "libprivsep/", 11) != 0)
		return 12;
	snprintf(buf, sizeof(buf), "{\"re\":%d,\"from\":\"broker\",\"body\":{\"helper\":\"svc\","
	    "\"protocol\":1,\"max_frame\":4096,\"may_send\":[],\"serves\":[],\"receives\":[]}}", id_of(v));
	json_decref(v);
	return raw_frame(fd, buf, NULL, 0) == 0 ? 0 : 13;
}

static int
t_hello(void)
{
	struct privsep_error err;
	struct privsep *ps;
	json_t *reply, *body;
	int sv[2];
	pid_t pid;
	char *big;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_hello);
	CHECK(privsep_open_fd(&ps, sv[0], "", &err) == 0);
	CHECK(privsep_hello(ps, NULL, &reply, &err) == 0);
	CHECK(peer_status(pid) == 0);
	CHECK(privsep_max_frame(ps) == 4096);
	CHECK(strcmp(privsep_helper(ps), "svc") == 0);
	CHECK(json_integer_value(json_object_get(reply, "protocol")) == 1);
	json_decref(reply);
	/* the announced max_frame now bounds what we send */
	big = malloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	body = json_pack("{s:s}", "p", big);
	free(big);
	CHECK(privsep_event(ps, "a.b", body, NULL, 0, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_TOO_LARGE);
	json_decref(body);
	privsep_close(ps);
	return 0;
}

static int
peer_interleave(int fd)
{
	json_t *req = raw_read(fd, NULL, NULL), *rep;
	char buf[256];

	if (req == NULL)
		return 10;
	/* while the request waits: an event, a request to the helper, then the reply */
	if (raw_frame(fd, "{\"type\":\"test.notice\",\"from\":\"broker\",\"body\":{\"n\":1}}",
	    NULL, 0) || raw_frame(fd, "{\"type\":\"test.echo\",\"id\":9,\"from\":\"other\","
	    "\"body\":{\"v\":\"x\"}}", NULL, 0))
		return 11;
	snprintf(buf, sizeof(buf), "{\"re\":%d,\"body\":{\"seq\":5}}", id_of(req));
	json_decref(req);
	if (raw_frame(fd, buf, NULL, 0))
		return 12;
	if ((rep = raw_read(fd, NULL, NULL)) == NULL)
		return 13;
	if (json_integer_value(json_object_get(rep, "re")) != 9 ||
	    strcmp(json_string_value(json_object_get(json_object_get(rep, "body"), "v")), "x"))
		return 14;
	json_decref(rep);
	if ((rep = raw_read(fd, NULL, NULL)) == NULL)
		return 15;
	if (json_integer_value(json_object_get(rep, "re")) != 10 ||
	    strcmp(json_string_value(json_object_get(json_object_get(rep, "error"), "code")),
	    "privsep.not_found"))
		return 16;
	json_decref(rep);
	return 0;
}

static int
t_request_keeps_others(void)
{
	struct privsep_error err;
	struct privsep_msg *m, *ev, *rq;
	struct privsep *ps;
	json_t *body;
	int sv[2];
	pid_t pid;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_interleave);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	body = json_pack("{s:i}", "seq", 5);
	CHECK(privsep_request(ps, "privsep.ping", body, NULL, 0, &m, 5000, &err) == 0);
	json_decref(body);
	CHECK(privsep_msg_kind(m) == PRIVSEP_REPLY && privsep_msg_error_code(m) == NULL);
	CHECK(json_integer_value(json_object_get(privsep_msg_body(m), "seq")) == 5);
	privsep_msg_free(m);
	CHECK(privsep_recv(ps, &ev, 1000, &err) == 0);
	CHECK(privsep_msg_kind(ev) == PRIVSEP_EVENT);
	CHECK(strcmp(privsep_msg_type(ev), "test.notice") == 0);
	CHECK(strcmp(privsep_msg_from(ev), "broker") == 0);
	CHECK(privsep_recv(ps, &rq, 1000, &err) == 0);
	CHECK(privsep_msg_kind(rq) == PRIVSEP_REQUEST && privsep_msg_id(rq) == 9);
	CHECK(privsep_reply(ps, rq, privsep_msg_body(rq), NULL, 0, 0, &err) == 0);
	CHECK(privsep_reply(ps, ev, NULL, NULL, 0, 0, &err) == -1);	/* not a request */
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	json_object_set_new(privsep_msg_json(rq), "id", json_integer(10));
	CHECK(privsep_reply_error(ps, rq, "privsep.not_found", "no such thing", NULL, &err) == 0);
	privsep_msg_free(ev);
	privsep_msg_free(rq);
	CHECK(peer_status(pid) == 0);
	privsep_close(ps);
	return 0;
}

static int
peer_error(int fd)
{
	json_t *req = raw_read(fd, NULL, NULL);
	char buf[256];

	if (req == NULL)
		return 10;
	snprintf(buf, sizeof(buf), "{\"re\":%d,\"error\":{\"code\":\"privsep.denied\","
	    "\"message\":\"policy\",\"data\":{\"rule\":2}}}", id_of(req));
	json_decref(req);
	return raw_frame(fd, buf, NULL, 0) ? 11 : 0;
}

static int
t_error_reply(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int sv[2];
	pid_t pid;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_error);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(privsep_request(ps, "privsep.file.read", NULL, NULL, 0, &m, 5000, &err) == 0);
	CHECK(strcmp(privsep_msg_error_code(m), "privsep.denied") == 0);
	CHECK(strcmp(privsep_msg_error_message(m), "policy") == 0);
	CHECK(json_integer_value(json_object_get(privsep_msg_error_data(m), "rule")) == 2);
	privsep_msg_free(m);
	CHECK(peer_status(pid) == 0);
	privsep_close(ps);
	return 0;
}

static int
peer_stream(int fd)
{
	json_t *req = raw_read(fd, NULL, NULL);
	char buf[256];
	int i;

	if (req == NULL)
		return 10;
	/* three replies to one request: two with more, then the final one */
	for (i = 1; i <= 3; i++) {
		snprintf(buf, sizeof(buf), "{\"re\":%d,\"body\":{\"part\":%d}%s}", id_of(req), i,
		    i < 3 ? ",\"more\":true" : "");
		if (raw_frame(fd, buf, NULL, 0))
			return 11;
	}
	json_decref(req);
	return 0;
}

static int
t_streamed_replies(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int64_t id;
	int sv[2], part = 0;
	pid_t pid;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_stream);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(privsep_send_request(ps, "files.list", NULL, NULL, 0, &id, &err) == 0);
	do {
		CHECK(privsep_wait_reply(ps, id, &m, 5000, &err) == 0);
		part++;
		CHECK(json_integer_value(json_object_get(privsep_msg_body(m), "part")) == part);
		CHECK(privsep_msg_more(m) == (part < 3));
		if (!privsep_msg_more(m)) {
			privsep_msg_free(m);
			break;
		}
		privsep_msg_free(m);
	} while (part < 10);
	CHECK(part == 3);
	CHECK(peer_status(pid) == 0);
	privsep_close(ps);
	return 0;
}

static int
peer_hello_refused(int fd)
{
	json_t *req = raw_read(fd, NULL, NULL);
	char buf[256];

	if (req == NULL)
		return 10;
	snprintf(buf, sizeof(buf), "{\"re\":%d,\"error\":{\"code\":\"privsep.protocol\","
	    "\"message\":\"protocol 1 not spoken\"}}", id_of(req));
	json_decref(req);
	return raw_frame(fd, buf, NULL, 0) ? 11 : 0;
}

static int
t_hello_refused(void)
{
	struct privsep_error err;
	struct privsep *ps;
	json_t *reply;
	int sv[2];
	pid_t pid;

	CHECK(pair(sv) == 0);
	pid = spawn_peer(sv, peer_hello_refused);
	CHECK(privsep_open_fd(&ps, sv[0], "t", &err) == 0);
	CHECK(privsep_hello(ps, "t/1", &reply, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	CHECK(reply == NULL);
	CHECK(peer_status(pid) == 0);
	privsep_close(ps);
	return 0;
}

/* --- the environment -------------------------------------------------------- */

static int
t_open_env(void)
{
	struct privsep_error err;
	struct privsep *ps;
	int sv[2];
	char num[16];

	unsetenv("PRIVSEP_FD");
	CHECK(privsep_open_env(&ps, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_INVALID);
	setenv("PRIVSEP_FD", "3x", 1);
	CHECK(privsep_open_env(&ps, &err) == -1);
	setenv("PRIVSEP_FD", "0", 1);	/* not a socket under the test runner */
	if (privsep_open_env(&ps, &err) == 0)
		privsep_close(ps);	/* stdin may be a socket; nothing to assert */
	/* a datagram socket is not the broker's stream */
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
	snprintf(num, sizeof(num), "%d", sv[0]);
	setenv("PRIVSEP_FD", num, 1);
	CHECK(privsep_open_env(&ps, &err) == -1);
	close(sv[0]);
	close(sv[1]);
	CHECK(pair(sv) == 0);
	snprintf(num, sizeof(num), "%d", sv[0]);
	setenv("PRIVSEP_FD", num, 1);
	setenv("PRIVSEP_PROTOCOL", "2", 1);
	CHECK(privsep_open_env(&ps, &err) == -1);
	CHECK_CODE(err, PRIVSEP_E_PROTOCOL);
	setenv("PRIVSEP_PROTOCOL", "1", 1);
	setenv("PRIVSEP_HELPER", "svc", 1);
	CHECK(privsep_open_env(&ps, &err) == 0);
	CHECK(strcmp(privsep_helper(ps), "svc") == 0 && privsep_fd(ps) == sv[0]);
	/* blocking mode leaves the socket blocking; non-blocking mode makes it O_NONBLOCK */
	CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
	privsep_set_nonblocking(ps, 1);
	CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) != 0);
	privsep_set_nonblocking(ps, 0);
	CHECK((fcntl(sv[0], F_GETFL) & O_NONBLOCK) == 0);
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

int
main(void)
{
	static const struct t_case cases[] = {
		{ "decode: envelope rules", t_decode_rules },
		{ "decode: invalid UTF-8", t_decode_invalid_utf8 },
		{ "decode: a raw NUL byte, even between tokens", t_decode_nul },
		{ "decode: depth 64 ok, 65 and 100000 rejected", t_decode_depth },
		{ "frame: length 0, 1, 0xFFFFFFFF, max+1", t_length_limits },
		{ "frame: exactly max_frame", t_exact_max_frame },
		{ "frame: byte by byte and two in one read", t_partial_and_batched },
		{ "frame: fds declared but none received", t_fds_declared_but_missing },
		{ "fds: without data, more than 8: closed", t_fd_batch_checks },
		{ "frame: refused message, stream goes on", t_refused_keeps_stream },
		{ "fds: receive with CLOEXEC", t_fd_receive },
		{ "fds: send", t_fd_send },
		{ "fds: undeclared fd is an error and closed", t_unclaimed_fd_closed },
		{ "fds: MSG_CTRUNC is a protocol error", t_ctrunc },
		{ "stream: EOF after a frame, truncated body", t_eof },
		{ "stream: receive timeout", t_timeout },
		{ "stream: long timeouts end at the deadline in every mode, signals or not", t_timeout_long },
		{ "stream: one CPU: the wait's timer serves shorter deadlines; poll without fds for it", t_timeout_one_cpu },
		{ "stream: one CPU: a seccomp filter refusing the epoll wait's calls: poll, same deadlines", t_timeout_one_cpu_seccomp },
		{ "send: envelope, fds and size checks", t_send_checks },
		{ "send: a packed request's frame; a refused format sends nothing", t_send_pack },
		{ "send: non-blocking queue and flush", t_nonblocking_flush },
		{ "receive: event loop until the end of the stream", t_event_loop },
		{ "hello: max_frame and helper from the reply", t_hello },
		{ "hello: refused", t_hello_refused },
		{ "request: keeps messages that arrive meanwhile", t_request_keeps_others },
		{ "request: error reply", t_error_reply },
		{ "request: streamed replies (more)", t_streamed_replies },
		{ "open: environment", t_open_env },
	};

	signal(SIGPIPE, SIG_IGN);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]), "c_unit");
}
