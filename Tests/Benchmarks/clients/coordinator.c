/*
 * The coordinator of the client benchmark: it grants turns (bench.clients.turn)
 * one at a time, first come first served, so that exactly one pinger pings the
 * broker at any moment, and prints each report (bench.clients.done) on stdout:
 *
 *     BENCH <client> <rounds> <ns>
 *
 *   coordinator REPS NAME=ROUNDS...
 *
 * Every pinger gets REPS turns, then "stop". After the last report it prints
 * "BENCH END". It exits on privsep.shutdown or when the broker closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <privsep.h>

#define PINGERS_MAX	8

struct pinger {
	const char		*name;		/* the helper's name in the config */
	long			 rounds;
	long			 done;		/* turns reported */
	struct privsep_msg	*waiting;	/* its turn request, until granted */
	long			 asked;		/* when it asked (for first come, first served) */
};

static struct pinger pingers[PINGERS_MAX];
static size_t npingers;
static long reps, clock_ticks;
/*
 * The pinger whose turn it is, until it asks for its next one: not when it
 * reports. Between the two a pinger is still at work (the shell pinger runs jq
 * and date and starts a dd), and a turn granted then had its first pings
 * share the CPU with that.
 */
static struct pinger *holder;

static void
fail(const char *what, const struct privsep_error *err)
{
	fprintf(stderr, "coordinator: %s: %s (%s): %s\n", what, err->code, err->reason, err->message);
	exit(1);
}

static struct pinger *
find(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < npingers; i++)
		if (strcmp(pingers[i].name, name) == 0)
			return &pingers[i];
	return NULL;
}

static void
answer_turn(struct privsep *ps, struct pinger *p, long rounds, int stop)
{
	struct privsep_error err;
	json_t *body = json_pack("{s:i,s:b}", "rounds", (int)rounds, "stop", stop);

	if (privsep_reply(ps, p->waiting, body, NULL, 0, 0, &err) == -1)
		fail("reply", &err);
	json_decref(body);
	privsep_msg_free(p->waiting);
	p->waiting = NULL;
}

/* The longest-waiting pinger gets the turn, if nobody has it. */
static void
grant(struct privsep *ps)
{
	struct pinger *next = NULL;
	size_t i;

	if (holder != NULL)
		return;
	for (i = 0; i < npingers; i++)
		if (pingers[i].waiting != NULL && (next == NULL || pingers[i].asked < next->asked))
			next = &pingers[i];
	if (next != NULL) {
		holder = next;
		answer_turn(ps, next, next->rounds, 0);
	}
}

static int
all_done(void)
{
	size_t i;

	for (i = 0; i < npingers; i++)
		if (pingers[i].done < reps)
			return 0;
	return 1;
}

static void
handle(struct privsep *ps, struct privsep_msg *m)
{
	struct privsep_error err;
	struct pinger *p = find(privsep_msg_from(m));
	json_t *body = privsep_msg_body(m), *empty;

	if (p == NULL) {
		if (privsep_reply_error(ps, m, "privsep.denied", "not a pinger of this run", NULL, &err) == -1)
			fail("reply", &err);
		privsep_msg_free(m);
		return;
	}
	if (strcmp(privsep_msg_type(m), "bench.clients.turn") == 0 && p->waiting == NULL) {
		p->waiting = m;
		p->asked = ++clock_ticks;
		if (p == holder)
			holder = NULL;	/* waiting again: its turn is over */
		if (p->done >= reps)
			answer_turn(ps, p, 0, 1);
		grant(ps);
		return;
	}
	if (strcmp(privsep_msg_type(m), "bench.clients.done") == 0) {
		printf("BENCH %s %lld %lld\n", json_string_value(json_object_get(body, "client")),
		    (long long)json_integer_value(json_object_get(body, "rounds")),
		    (long long)json_integer_value(json_object_get(body, "ns")));
		p->done++;
		empty = json_object();
		if (privsep_reply(ps, m, empty, NULL, 0, 0, &err) == -1)
			fail("reply", &err);
		json_decref(empty);
		if (all_done())
			printf("BENCH END\n");
	} else if (privsep_reply_error(ps, m, "privsep.invalid", "a turn is already waiting", NULL, &err) == -1)
		fail("reply", &err);
	privsep_msg_free(m);
}

int
main(int argc, char **argv)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	char *eq;
	int i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3 || (reps = atol(argv[1])) < 1 || argc - 2 > PINGERS_MAX) {
		fprintf(stderr, "usage: coordinator REPS NAME=ROUNDS...\n");
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL)
			return 2;
		*eq = '\0';
		pingers[npingers].name = argv[i];
		pingers[npingers++].rounds = atol(eq + 1);
	}
	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "bench-coordinator/1", NULL, &err) == -1)
		fail("hello", &err);
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) == -1) {
			if (!err.fatal)
				continue;
			if (strcmp(err.code, PRIVSEP_E_UNAVAILABLE) == 0)
				break;
			fail("recv", &err);
		}
		if (privsep_msg_kind(m) == PRIVSEP_REQUEST) {
			handle(ps, m);
			continue;
		}
		if (privsep_msg_kind(m) == PRIVSEP_EVENT && strcmp(privsep_msg_type(m), "privsep.shutdown") == 0) {
			privsep_msg_free(m);
			break;
		}
		privsep_msg_free(m);
	}
	for (i = 0; i < (int)npingers; i++)
		privsep_msg_free(pingers[i].waiting);
	privsep_close(ps);
	return 0;
}
