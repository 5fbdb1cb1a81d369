/*
 * A real helper written against a header from `privsep gen c` and libprivsep, run by the
 * broker in suite 60-tools. "server" serves demo.add with the generated readers and reply
 * builder; "client" sends demo.add built with the generated builder, reads the sum with the
 * generated reader, and reports through privsep.log (also a generated builder), then waits for
 * the broker's privsep.shutdown.
 */
#include <stdio.h>
#include <string.h>

#include <privsep.h>
#include "generated.h"

static int
serve(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	json_int_t a, b;
	json_t *reply;
	int r;

	if (strcmp(privsep_msg_type(m), DEMO_ADD_TYPE) != 0)
		return privsep_reply_error(ps, m, "privsep.unknown_type", "not served here", NULL, err);
	if (demo_add_body_get_a(privsep_msg_body(m), &a) != 0 ||
	    demo_add_body_get_b(privsep_msg_body(m), &b) != 0)
		return privsep_reply_error(ps, m, "privsep.invalid", "a and b are required", NULL, err);
	if ((reply = demo_add_reply(a + b)) == NULL)
		return privsep_reply_error(ps, m, "privsep.internal", "out of memory", NULL, err);
	r = privsep_reply(ps, m, reply, NULL, 0, 0, err);
	json_decref(reply);
	return r;
}

/* Asks for 2 + 40 and says what came back, in the broker's log. */
static int
ask(struct privsep *ps, struct privsep_error *err)
{
	struct privsep_msg *reply = NULL;
	json_t *body = demo_add_body(2, 40), *log;
	json_int_t sum = -1;
	char line[128];
	int ok;

	if (body == NULL || privsep_request(ps, DEMO_ADD_TYPE, body, NULL, 0, &reply, 10000, err) == -1) {
		json_decref(body);
		return -1;
	}
	json_decref(body);
	ok = privsep_msg_error_code(reply) == NULL &&
	    demo_add_reply_get_sum(privsep_msg_body(reply), &sum) == 0 && sum == 42;
	privsep_msg_free(reply);
	snprintf(line, sizeof(line), "gen-helper: %s sum=%lld", ok ? "ok" : "FAIL", (long long)sum);
	log = privsep_log_body(line);
	if (log == NULL || privsep_log_body_set_level(log, ok ? "info" : "error") != 0 ||
	    privsep_event(ps, PRIVSEP_LOG_TYPE, log, NULL, 0, err) == -1) {
		json_decref(log);
		return -1;
	}
	json_decref(log);
	return ok ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int client = argc > 1 && strcmp(argv[1], "client") == 0, r;

	memset(&err, 0, sizeof(err));
	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "gen-helper/1", NULL, &err) == -1)
		goto fail;
	if (client && ask(ps, &err) == -1)
		goto fail;
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) == -1) {
			if (!err.fatal)
				continue;
			if (strcmp(err.code, PRIVSEP_E_UNAVAILABLE) == 0)
				break;
			goto fail;
		}
		if (privsep_msg_kind(m) == PRIVSEP_EVENT &&
		    strcmp(privsep_msg_type(m), PRIVSEP_SHUTDOWN_TYPE) == 0) {
			privsep_msg_free(m);
			break;
		}
		r = privsep_msg_kind(m) == PRIVSEP_REQUEST ? serve(ps, m, &err) : 0;
		privsep_msg_free(m);
		if (r == -1)
			goto fail;
	}
	privsep_close(ps);
	return 0;
fail:
	printf("gen-helper: FAIL %s: %s\n", err.code, err.message);
	return 1;
}
