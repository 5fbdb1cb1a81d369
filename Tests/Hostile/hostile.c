/*
 * hostile: a helper that attacks the broker that started it, one attack per mode.
 *
 *   hostile MODE        run one attack (see the table at the end)
 *   hostile             read the mode from $HOSTILE_MODE_FILE and unlink it; no file: "idle"
 *
 * It speaks the wire protocol by hand (no client library), so it can send what no library
 * would. Every line it prints on stderr ends up in the broker's log tagged with its name; the
 * suite (Tests/suites/60-hostile.sh) greps those lines and the broker's own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FD 3

static size_t max_frame = 1048576;
/* Events sent by the flood modes; "events N" in the mode file overrides it. */
static long flood_count = 1000000;

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "hostile: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	fflush(stderr);
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Writes everything or reports the errno (the broker may close the socket on us). */
static int
write_all(const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(FD, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
prefix(unsigned char out[4], uint32_t n)
{
	out[0] = n >> 24;
	out[1] = n >> 16;
	out[2] = n >> 8;
	out[3] = n;
}

static int
send_bytes(const void *body, size_t len)
{
	unsigned char p[4];

	prefix(p, (uint32_t)len);
	if (write_all(p, 4) < 0)
		return -1;
	return write_all(body, len);
}

static int
send_json(const char *json)
{
	return send_bytes(json, strlen(json));
}

/* One frame from the broker into a malloc'd, NUL-terminated buffer; NULL at EOF or error. */
static char *
read_frame(void)
{
	unsigned char p[4];
	size_t got = 0, len;
	char *buf;

	while (got < 4) {
		ssize_t n = read(FD, p + got, 4 - got);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return NULL;
		}
		got += (size_t)n;
	}
	len = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
	if ((buf = malloc(len + 1)) == NULL)
		return NULL;
	for (got = 0; got < len;) {
		ssize_t n = read(FD, buf + got, len - got);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			free(buf);
			return NULL;
		}
		got += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* The reply to the request with this id, or NULL at EOF. */
static char *
reply_to(long id)
{
	char needle[32], *f;

	snprintf(needle, sizeof(needle), "\"re\":%ld", id);
	while ((f = read_frame()) != NULL) {
		char *at = strstr(f, needle);
		if (at != NULL && (at[strlen(needle)] == ',' || at[strlen(needle)] == '}'))
			return f;
		free(f);
	}
	return NULL;
}

static void
hello(void)
{
	char *f, *m;

	send_json("{\"type\":\"privsep.hello\",\"id\":1,\"body\":{\"protocol\":1,\"client\":\"hostile/1\"}}");
	if ((f = reply_to(1)) == NULL) {
		say("hello: no reply");
		exit(2);
	}
	if ((m = strstr(f, "\"max_frame\":")) != NULL)
		max_frame = strtoul(m + 12, NULL, 10);
	free(f);
}

/* Waits for the broker to close the connection; says whether it did. */
static int
until_closed(const char *what)
{
	char *f;

	while ((f = read_frame()) != NULL) {
		say("%s: broker sent %.200s", what, f);
		free(f);
	}
	say("%s: connection closed by the broker", what);
	return 0;
}

/* A round trip that shows the connection still works. */
static int
ping(long id)
{
	char req[96], *f;
	int ok;

	snprintf(req, sizeof(req), "{\"type\":\"privsep.ping\",\"id\":%ld,\"body\":{\"seq\":%ld}}", id, id);
	if (send_json(req) < 0 || (f = reply_to(id)) == NULL)
		return -1;
	ok = strstr(f, "\"error\"") == NULL;
	free(f);
	return ok ? 0 : -1;
}

static int
sendmsg_fds(const void *data, size_t len, const int *fds, size_t nfds)
{
	struct iovec iov = { (void *)data, len };
	struct msghdr msg = { 0 };
	size_t space = CMSG_SPACE(nfds * sizeof(int));
	char *control = calloc(1, space);
	struct cmsghdr *c;
	ssize_t n;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = space;
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	n = sendmsg(FD, &msg, MSG_NOSIGNAL);
	free(control);
	return n < 0 ? -1 : 0;
}

/* A framed JSON text with fds attached to the sendmsg that carries its first byte. */
static int
send_with_fds(const char *json, const int *fds, size_t nfds)
{
	size_t len = strlen(json);
	char *buf = malloc(len + 4);
	int r;

	prefix((unsigned char *)buf, (uint32_t)len);
	memcpy(buf + 4, json, len);
	r = sendmsg_fds(buf, len + 4, fds, nfds);
	free(buf);
	return r;
}

/* --- The attacks -------------------------------------------------------- */

static int
m_idle(void)
{
	hello();
	return until_closed("idle");
}

static int
m_prefix(uint32_t n, const char *body, size_t blen)
{
	unsigned char p[4];

	hello();
	prefix(p, n);
	write_all(p, 4);
	if (blen > 0)
		write_all(body, blen);
	return until_closed("bad length");
}

static int m_len0(void) { return m_prefix(0, NULL, 0); }
static int m_len1(void) { return m_prefix(1, "{", 1); }
static int m_lenmax(void) { return m_prefix(0xFFFFFFFFu, NULL, 0); }

static int
m_maxplus1(void)
{
	unsigned char p[4];

	hello();
	say("maxplus1: announcing %zu bytes (max_frame %zu)", max_frame + 1, max_frame);
	prefix(p, (uint32_t)(max_frame + 1));
	write_all(p, 4);
	return until_closed("maxplus1");
}

/* Slowloris: one byte per write, a pause between each; the broker must not wait on us. */
static int
m_slowloris(void)
{
	const char *json = "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"seq\":2}}";
	unsigned char frame[128];
	size_t len = strlen(json), i;
	char *f;

	hello();
	prefix(frame, (uint32_t)len);
	memcpy(frame + 4, json, len);
	for (i = 0; i < len + 4; i++) {
		if (write_all(frame + i, 1) < 0) {
			say("slowloris: write %zu failed: %s", i, strerror(errno));
			return 1;
		}
		nap_ms(i < 4 ? 700 : 40);
	}
	if ((f = reply_to(2)) == NULL) {
		say("slowloris: no reply");
		return 1;
	}
	say("slowloris: reply after %zu one-byte writes: %.200s", len + 4, f);
	free(f);
	return 0;
}

static int
m_truncated(void)
{
	hello();
	write_all("\0\0\0\x64{\"type\":\"p", 14);
	say("truncated: 10 of 100 bytes sent; now silent");
	nap_ms(3000);
	say("truncated: exiting");
	return 0;
}

static int
m_bytes_then_close(const char *what, const char *json)
{
	hello();
	send_json(json);
	return until_closed(what);
}

static int m_badutf8(void) { return m_bytes_then_close("badutf8", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":\"\xff\xfe\"}}"); }
static int m_overlong(void) { return m_bytes_then_close("overlong", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":\"\xc0\xaf\xe0\x80\xaf\"}}"); }
static int m_surrogate(void) { return m_bytes_then_close("surrogate", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":\"\\ud800x\"}}"); }
static int m_rawsurrogate(void) { return m_bytes_then_close("rawsurrogate", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":\"\xed\xa0\x80\"}}"); }
static int m_dupkeys(void) { return m_bytes_then_close("dupkeys", "{\"type\":\"privsep.ping\",\"id\":2,\"id\":3}"); }
static int m_spoof(void) { return m_bytes_then_close("spoof", "{\"type\":\"privsep.ping\",\"id\":2,\"from\":\"witness\"}"); }

/* A body built as head + n copies of unit + tail, sent as one frame. */
static int
m_repeat(const char *what, const char *head, const char *unit, size_t n, const char *mid, const char *unit2, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), ml = strlen(mid), u2 = strlen(unit2), tl = strlen(tail);
	size_t len = hl + n * ul + ml + n * u2 + tl, i;
	char *buf = malloc(len), *p = buf;

	memcpy(p, head, hl), p += hl;
	for (i = 0; i < n; i++)
		memcpy(p, unit, ul), p += ul;
	memcpy(p, mid, ml), p += ml;
	for (i = 0; i < n; i++)
		memcpy(p, unit2, u2), p += u2;
	memcpy(p, tail, tl);
	hello();
	say("%s: sending a %zu-byte frame", what, len);
	send_bytes(buf, len);
	free(buf);
	return until_closed(what);
}

static int m_deep(void) { return m_repeat("deep", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":", "[", 100000, "", "]", "}}"); }
static int m_bigstring(void) { return m_repeat("bigstring", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"payload\":\"", "x", 10 * 1024 * 1024, "", "", "\"}}"); }
static int m_bignumber(void) { return m_repeat("bignumber", "{\"type\":\"privsep.ping\",\"id\":2,\"body\":{\"seq\":1", "0", 1000000, "", "", "}}"); }

/* Unknown top-level members are a refusal: the request is answered and the stream goes on. */
static int
m_unknown(void)
{
	char *f;

	hello();
	send_json("{\"type\":\"privsep.ping\",\"id\":2,\"evil\":true}");
	if ((f = reply_to(2)) == NULL)
		return 1;
	say("unknown: refusal %.200s", f);
	free(f);
	say("unknown: ping afterwards %s", ping(3) == 0 ? "ok" : "FAILED");
	return 0;
}

static int
m_badre(void)
{
	char r[64];
	int i;

	hello();
	for (i = 0; i < 1000; i++) {
		snprintf(r, sizeof(r), "{\"re\":%d,\"body\":{}}", 100000 + i);
		send_json(r);
	}
	say("badre: 1000 replies to ids never issued sent; ping afterwards %s", ping(2) == 0 ? "ok" : "FAILED");
	return 0;
}

static int
m_dupid(void)
{
	hello();
	/* hostile.suite.self is served by this helper, which does not answer: id 7 stays in flight. */
	send_json("{\"type\":\"hostile.suite.self\",\"id\":7,\"body\":{}}");
	send_json("{\"type\":\"hostile.suite.self\",\"id\":7,\"body\":{}}");
	return until_closed("dupid");
}

static int
m_flood(const char *type)
{
	char ev[96];
	struct timespec a, b;
	long i, n = flood_count;

	hello();
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n; i++) {
		snprintf(ev, sizeof(ev), "{\"type\":\"%s\",\"body\":{\"n\":%ld}}", type, i);
		if (send_json(ev) < 0) {
			say("events: send %ld failed: %s", i, strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	say("events: %ld %s events sent in %.2f s; ping afterwards %s", n, type,
	    (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, ping(2) == 0 ? "ok" : "FAILED");
	return 0;
}

/* 10^6 events: to a receiving helper (backpressure) and to none (the broker's cost alone). */
static int m_events(void) { return m_flood("hostile.suite.tick"); }
static int m_eventsvoid(void) { return m_flood("hostile.suite.void"); }

static int
m_fds253(void)
{
	int fds[253], i;

	hello();
	for (i = 0; i < 253; i++)
		fds[i] = open("/dev/null", O_RDONLY);
	if (send_with_fds("{\"type\":\"privsep.ping\",\"id\":2,\"fds\":8}", fds, 253) < 0)
		say("fds253: sendmsg failed: %s", strerror(errno));
	else
		say("fds253: 253 descriptors sent in one message");
	return until_closed("fds253");
}

static int
m_fdsnoframe(void)
{
	int fd = open("/dev/null", O_RDONLY);

	hello();
	send_with_fds("{\"type\":\"privsep.ping\",\"id\":2}", &fd, 1);
	return until_closed("fdsnoframe");
}

static int
m_fdsmissing(void)
{
	hello();
	send_json("{\"type\":\"privsep.ping\",\"id\":2,\"fds\":1}");
	return until_closed("fdsmissing");
}

/* Sends requests forever and never reads a reply: the broker's queue towards us fills. */
static int
m_noread(void)
{
	char req[2200], pad[2049];
	long id;

	hello();
	memset(pad, 'p', 2048);
	pad[2048] = '\0';
	for (id = 2; ; id++) {
		snprintf(req, sizeof(req), "{\"type\":\"privsep.ping\",\"id\":%ld,\"body\":{\"payload\":\"%s\"}}", id, pad);
		if (send_json(req) < 0) {
			say("noread: send failed after %ld requests: %s", id - 2, strerror(errno));
			return 0;
		}
	}
}

static int
m_midframe(void)
{
	char body[600];

	hello();
	memset(body, ' ', sizeof(body));
	write_all("\0\0\x03\xe8", 4);
	write_all(body, sizeof(body));
	say("midframe: closing after 600 of 1000 bytes");
	return 0;
}

/* Forks until the sandbox's process limit stops it, then shows the broker still answers. */
static int
m_forkbomb(void)
{
	long n = 0;
	pid_t pid;

	hello();
	for (;;) {
		pid = fork();
		if (pid == 0) {
			close(FD);
			pause();
			_exit(0);
		}
		if (pid < 0)
			break;
		n++;
		if (n > 100000)
			break;
	}
	say("forkbomb: fork failed after %ld children: %s; ping %s", n, strerror(errno), ping(2) == 0 ? "ok" : "FAILED");
	kill(0, SIGKILL);
	return 0;
}

static int
m_exec(void)
{
	char *outside[] = { "/work/main/.build/debug/privsep", "status", NULL };
	char *inside[] = { "/bin/sh", "-c", "echo \"hostile: exec: /bin/sh runs as uid $(id -u), fd 3 is $(ls -l /proc/self/fd/3 2>&1 | sed 's/.*-> //')\" >&2; su -c id root </dev/null >&2 2>&1; echo \"hostile: exec: su exit $?\" >&2", NULL };

	hello();
	execv(outside[0], outside);
	say("exec: %s outside the sandbox: %s", outside[0], strerror(errno));
	execv(inside[0], inside);
	say("exec: /bin/sh: %s", strerror(errno));
	return 1;
}

/* Every type it may not send: each is refused, until max_violations kills it. */
static int
m_denied(void)
{
	static const char *types[] = {
		"privsep.introspect", "privsep.file.open", "privsep.file.read", "privsep.net.listen",
		"privsep.net.connect", "privsep.dns.resolve", "privsep.user.lookup", "hostile.suite.echo",
		"privsep.control.status", "privsep.control.stop", "privsep.control.restart",
		"privsep.shutdown", "privsep.no_such_type", "hostile.suite.tick",
	};
	char req[128], *f;
	long id = 2;
	size_t i;

	hello();
	for (;;) {
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++, id++) {
			snprintf(req, sizeof(req), "{\"type\":\"%s\",\"id\":%ld,\"body\":{}}", types[i], id);
			if (send_json(req) < 0 || (f = reply_to(id)) == NULL) {
				say("denied: connection closed after %ld requests", id - 2);
				return 0;
			}
			if (id < 2 + (long)(sizeof(types) / sizeof(types[0])))
				say("denied: %s -> %.160s", types[i], f);
			free(f);
		}
	}
}

/* Serves its own request: answers it twice, or with a body off the schema. */
static int
m_server(int twice)
{
	char *f, *at, r[96];
	long bid;

	hello();
	send_json("{\"type\":\"hostile.suite.self\",\"id\":5,\"body\":{}}");
	while ((f = read_frame()) != NULL) {
		if (strstr(f, "\"type\":\"hostile.suite.self\"") != NULL && (at = strstr(f, "\"id\":")) != NULL)
			break;
		free(f);
	}
	if (f == NULL)
		return 1;
	bid = strtol(at + 5, NULL, 10);
	free(f);
	if (twice) {
		snprintf(r, sizeof(r), "{\"re\":%ld,\"body\":{\"ok\":true}}", bid);
		send_json(r);
		send_json(r);
	} else {
		snprintf(r, sizeof(r), "{\"re\":%ld,\"body\":{\"wrong\":1}}", bid);
		send_json(r);
	}
	if ((f = reply_to(5)) == NULL)
		return 1;
	say("%s: the requester got %.200s", twice ? "twice" : "wrongbody", f);
	free(f);
	say("%s: ping afterwards %s", twice ? "twice" : "wrongbody", ping(6) == 0 ? "ok" : "FAILED");
	return 0;
}

static int m_twice(void) { return m_server(1); }
static int m_wrongbody(void) { return m_server(0); }

static int
m_nohello(void)
{
	send_json("{\"type\":\"privsep.ping\",\"id\":9,\"body\":{}}");
	return until_closed("nohello");
}

static const struct {
	const char *name;
	int (*run)(void);
} modes[] = {
	{ "idle", m_idle }, { "len0", m_len0 }, { "len1", m_len1 }, { "lenmax", m_lenmax },
	{ "maxplus1", m_maxplus1 }, { "slowloris", m_slowloris }, { "truncated", m_truncated },
	{ "badutf8", m_badutf8 }, { "overlong", m_overlong }, { "surrogate", m_surrogate },
	{ "rawsurrogate", m_rawsurrogate }, { "deep", m_deep }, { "dupkeys", m_dupkeys },
	{ "bigstring", m_bigstring }, { "bignumber", m_bignumber }, { "unknown", m_unknown },
	{ "spoof", m_spoof }, { "badre", m_badre }, { "dupid", m_dupid }, { "events", m_events },
	{ "eventsvoid", m_eventsvoid },
	{ "fds253", m_fds253 }, { "fdsnoframe", m_fdsnoframe }, { "fdsmissing", m_fdsmissing },
	{ "noread", m_noread }, { "midframe", m_midframe }, { "forkbomb", m_forkbomb },
	{ "exec", m_exec }, { "denied", m_denied }, { "twice", m_twice },
	{ "wrongbody", m_wrongbody }, { "nohello", m_nohello },
};

int
main(int argc, char **argv)
{
	char mode[64] = "idle";
	const char *file = getenv("HOSTILE_MODE_FILE");
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1) {
		snprintf(mode, sizeof(mode), "%s", argv[1]);
	} else if (file != NULL) {
		FILE *f = fopen(file, "r");
		if (f != NULL) {
			if (fgets(mode, sizeof(mode), f) == NULL)
				snprintf(mode, sizeof(mode), "idle");
			mode[strcspn(mode, "\n")] = '\0';
			if (strchr(mode, ' ') != NULL) {
				flood_count = strtol(strchr(mode, ' ') + 1, NULL, 10);
				*strchr(mode, ' ') = '\0';
			}
			fclose(f);
			unlink(file);
		}
	}
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(modes[i].name, mode) == 0) {
			say("mode %s starting", mode);
			return modes[i].run();
		}
	}
	say("unknown mode %s", mode);
	return 2;
}
