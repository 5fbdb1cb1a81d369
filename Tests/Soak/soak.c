/*
 * soak (C, libprivsep): the C side of the soak test (Tests/Soak/run.py).
 *
 *   soak serve                 answers every request with its body
 *   soak request N WINDOW OUT  sends N requests, alternating soak.c and soak.py, at most WINDOW
 *                              in flight; counts every final reply by its error code ("ok" for
 *                              success) and writes one JSON line of counts to OUT at the end
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <privsep.h>

#define MAXCODES 16

static struct {
	char	code[48];
	long	n;
} codes[MAXCODES];

static void
count(const char *code)
{
	int i;

	for (i = 0; i < MAXCODES && codes[i].code[0]; i++)
		if (strcmp(codes[i].code, code) == 0)
			break;
	if (i == MAXCODES)
		i = MAXCODES - 1;
	snprintf(codes[i].code, sizeof(codes[i].code), "%s", code);
	codes[i].n++;
}

static int
open_conn(struct privsep **ps)
{
	struct privsep_error err;

	if (privsep_open_env(ps, &err) < 0 || privsep_hello(*ps, "soak-c/1", NULL, &err) < 0) {
		fprintf(stderr, "soak: cannot start: %s %s\n", err.code, err.message);
		return -1;
	}
	return 0;
}

static int
serve(void)
{
	struct privsep *ps;
	struct privsep_error err;
	struct privsep_msg *m;

	if (open_conn(&ps) < 0)
		return 1;
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) < 0) {
			if (err.fatal)
				return 0;
			continue;
		}
		if (privsep_msg_kind(m) == PRIVSEP_EVENT &&
		    strcmp(privsep_msg_type(m), "privsep.shutdown") == 0)
			return 0;
		if (privsep_msg_kind(m) == PRIVSEP_REQUEST)
			privsep_reply(ps, m, json_incref(privsep_msg_body(m)), NULL, 0, 0, &err);
		privsep_msg_free(m);
	}
}

static int
request(long total, long window, const char *out)
{
	struct privsep *ps;
	struct privsep_error err;
	struct privsep_msg *m;
	long sent = 0, finals = 0, stray = 0, idle = 0;
	FILE *f;
	int i;

	if (open_conn(&ps) < 0)
		return 1;
	while (finals < total) {
		while (sent < total && sent - finals < window) {
			if (privsep_send_request(ps, sent % 2 ? "soak.echo.py" : "soak.echo.c",
			    json_pack("{s:I}", "n", (json_int_t)sent), NULL, 0, NULL, &err) < 0) {
				fprintf(stderr, "soak: send %ld: %s %s\n", sent, err.code, err.message);
				if (err.fatal)
					goto done;
				break;
			}
			sent++;
		}
		if (privsep_recv(ps, &m, 1000, &err) < 0) {
			if (err.fatal)
				break;
			/* No reply for 1 s; the broker's request timeout is shorter, so 30 is a failure. */
			if (++idle >= 30)
				break;
			continue;
		}
		idle = 0;
		if (privsep_msg_kind(m) != PRIVSEP_REPLY) {
			stray++;
		} else if (!privsep_msg_more(m)) {
			const char *code = privsep_msg_error_code(m);
			count(code ? code : "ok");
			finals++;
		}
		privsep_msg_free(m);
	}
done:
	if ((f = fopen(out, "w")) == NULL) {
		fprintf(stderr, "soak: %s: %s\n", out, strerror(errno));
		return 1;
	}
	fprintf(f, "{\"lang\":\"c\",\"sent\":%ld,\"final\":%ld,\"stray\":%ld,\"codes\":{", sent, finals, stray);
	for (i = 0; i < MAXCODES && codes[i].code[0]; i++)
		fprintf(f, "%s\"%s\":%ld", i ? "," : "", codes[i].code, codes[i].n);
	fprintf(f, "}}\n");
	fclose(f);
	fprintf(stderr, "soak: requester done: sent %ld, final replies %ld\n", sent, finals);
	/* Stay connected (idle) so the broker does not restart us while others finish. */
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) < 0) {
			if (err.fatal)
				return 0;
			continue;
		}
		if (privsep_msg_kind(m) == PRIVSEP_EVENT &&
		    strcmp(privsep_msg_type(m), "privsep.shutdown") == 0)
			return 0;
		privsep_msg_free(m);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "serve") == 0)
		return serve();
	if (argc == 5 && strcmp(argv[1], "request") == 0)
		return request(atol(argv[2]), atol(argv[3]), argv[4]);
	fprintf(stderr, "usage: soak serve | soak request N WINDOW OUT\n");
	return 2;
}
