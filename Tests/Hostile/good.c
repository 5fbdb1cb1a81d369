/*
 * good: the well-behaved helpers of the hostile suite (libprivsep, clients/c).
 *
 *   good witness OUT   a privsep.ping and a routed hostile.suite.echo every 2 ms; one line per round
 *                      trip appended to OUT: "<CLOCK_MONOTONIC ns> <ping|echo> <µs> <ok|code>"
 *   good echo          serves hostile.suite.echo
 *   good sink          receives hostile.suite.tick events and counts them
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <privsep.h>

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
open_conn(struct privsep **ps)
{
	struct privsep_error err;

	if (privsep_open_env(ps, &err) < 0 || privsep_hello(*ps, "good/1", NULL, &err) < 0) {
		fprintf(stderr, "good: cannot start: %s %s\n", err.code, err.message);
		return -1;
	}
	return 0;
}

/* One round trip; writes its line; returns 0 when answered without error. */
static int
round_trip(struct privsep *ps, FILE *out, const char *label, const char *type, json_t *body)
{
	struct privsep_error err;
	struct privsep_msg *reply = NULL;
	long long start = now_ns(), end;
	const char *code;
	int r;

	r = privsep_request(ps, type, body, NULL, 0, &reply, 5000, &err);
	end = now_ns();
	if (r < 0) {
		fprintf(out, "%lld %s %lld %s\n", end, label, (end - start) / 1000, err.code[0] ? err.code : "failed");
		return err.fatal ? -2 : -1;
	}
	code = privsep_msg_error_code(reply);
	fprintf(out, "%lld %s %lld %s\n", end, label, (end - start) / 1000, code ? code : "ok");
	privsep_msg_free(reply);
	return code ? -1 : 0;
}

static int
witness(const char *path)
{
	struct privsep *ps;
	FILE *out = fopen(path, "a");
	struct timespec pause = { 0, 2000000 };
	long seq = 0;

	if (out == NULL) {
		fprintf(stderr, "good: witness: %s: %s\n", path, strerror(errno));
		return 1;
	}
	setvbuf(out, NULL, _IOLBF, 0);
	if (open_conn(&ps) < 0)
		return 1;
	for (;; seq++) {
		if (round_trip(ps, out, "ping", "privsep.ping", json_pack("{s:I}", "seq", (json_int_t)seq)) == -2)
			return 1;
		if (round_trip(ps, out, "echo", "hostile.suite.echo", json_pack("{s:s}", "text", "witness")) == -2)
			return 1;
		nanosleep(&pause, NULL);
	}
}

static int
serve(int sink)
{
	struct privsep *ps;
	struct privsep_error err;
	struct privsep_msg *m;
	long events = 0;

	if (open_conn(&ps) < 0)
		return 1;
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) < 0) {
			if (err.fatal)
				break;
			continue;
		}
		if (sink) {
			if (++events % 100000 == 0)
				fprintf(stderr, "good: sink: %ld events\n", events);
		} else if (privsep_msg_kind(m) == PRIVSEP_REQUEST) {
			json_t *text = json_object_get(privsep_msg_body(m), "text");
			privsep_reply(ps, m, json_pack("{s:O}", "text", text), NULL, 0, 0, &err);
		}
		privsep_msg_free(m);
	}
	fprintf(stderr, "good: connection ended: %s %s\n", err.code, err.message);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "witness") == 0)
		return witness(argv[2]);
	if (argc == 2 && strcmp(argv[1], "echo") == 0)
		return serve(0);
	if (argc == 2 && strcmp(argv[1], "sink") == 0)
		return serve(1);
	fprintf(stderr, "usage: good witness OUT | echo | sink\n");
	return 2;
}
