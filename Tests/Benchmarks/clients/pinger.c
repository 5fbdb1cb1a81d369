/*
 * The C pingers of the client benchmark.
 *
 *   pinger lib   privsep.ping round trips through libprivsep's privsep_request_pack()
 *   pinger raw   the baseline: the same frames with snprintf, write and exact
 *                reads on the helper's socket, no JSON parsing
 *
 * Both take their turns from the coordinator (bench.clients.turn) and report
 * each turn's time (bench.clients.done) through libprivsep.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <privsep.h>

#define TURN_WAIT_MS	600000	/* the others' turns come first */

static void
fail(const char *what, const struct privsep_error *err)
{
	fprintf(stderr, "pinger: %s: %s (%s): %s\n", what, err->code, err->reason, err->message);
	exit(1);
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
read_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if ((n = read(fd, (char *)buf + got, len - got)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* rounds raw round trips; ids start high, clear of the library's own. */
static void
raw_rounds(int fd, long rounds)
{
	static long next_id = 1000000000;
	unsigned char frame[256], reply[512];
	size_t n;
	long i;
	int len;

	for (i = 0; i < rounds; i++, next_id++) {
		len = snprintf((char *)frame + 4, sizeof(frame) - 4,
		    "{\"type\":\"privsep.ping\",\"id\":%ld,\"body\":{\"seq\":%ld}}", next_id, i + 1);
		frame[0] = 0;
		frame[1] = 0;
		frame[2] = (unsigned char)(len >> 8);
		frame[3] = (unsigned char)len;
		if (write(fd, frame, (size_t)len + 4) != len + 4 || read_exact(fd, reply, 4) == -1)
			exit(1);
		n = (size_t)reply[0] << 24 | (size_t)reply[1] << 16 | (size_t)reply[2] << 8 | reply[3];
		if (n > sizeof(reply) || read_exact(fd, reply, n) == -1)
			exit(1);
	}
}

static void
lib_rounds(struct privsep *ps, long rounds)
{
	struct privsep_error err;
	struct privsep_msg *m;
	long i;

	for (i = 0; i < rounds; i++) {
		if (privsep_request_pack(ps, "privsep.ping", NULL, 0, &m, -1, &err, "{s:I}", "seq",
		    (json_int_t)(i + 1)) == -1)
			fail("ping", &err);
		privsep_msg_free(m);
	}
}

int
main(int argc, char **argv)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	const char *mode = argc > 1 ? argv[1] : "lib";
	int raw = strcmp(mode, "raw") == 0;
	json_t *body;
	long rounds;
	int64_t t0, ns;
	int fd;

	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "bench-c/1", NULL, &err) == -1)
		fail("hello", &err);
	fd = privsep_fd(ps);
	for (;;) {
		if (privsep_request(ps, "bench.clients.turn", NULL, NULL, 0, &m, TURN_WAIT_MS, &err) == -1)
			fail("turn", &err);
		if (privsep_msg_error_code(m) != NULL || json_is_true(json_object_get(privsep_msg_body(m), "stop"))) {
			privsep_msg_free(m);
			break;
		}
		rounds = (long)json_integer_value(json_object_get(privsep_msg_body(m), "rounds"));
		privsep_msg_free(m);
		if (raw) {
			/* nothing else is in flight during a turn: the socket is ours alone */
			int flags = fcntl(fd, F_GETFL);

			fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
			t0 = now_ns();
			raw_rounds(fd, rounds);
			ns = now_ns() - t0;
			fcntl(fd, F_SETFL, flags);
		} else {
			t0 = now_ns();
			lib_rounds(ps, rounds);
			ns = now_ns() - t0;
		}
		body = json_pack("{s:s,s:I,s:I}", "client", raw ? "raw" : "c", "rounds", (json_int_t)rounds,
		    "ns", (json_int_t)ns);
		if (privsep_request(ps, "bench.clients.done", body, NULL, 0, &m, -1, &err) == -1)
			fail("done", &err);
		json_decref(body);
		privsep_msg_free(m);
	}
	privsep_close(ps);
	return 0;
}
