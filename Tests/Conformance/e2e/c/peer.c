/*
 * The peer of the end-to-end conformance suite: the other side of every
 * scenario the subject plays (see ../README in docs/conformance.md).
 *
 *   conf.e2e.upper    reply {text: TEXT}
 *   conf.e2e.call_me  reply {}, then send the subject conf.e2e.echo {nonce}; its reply
 *                 is judged here and reported as the event conf.e2e.verdict
 *   conf.e2e.note     (event) remember n, send conf.e2e.notice {n: n + 1}
 *   conf.e2e.seen     reply {notes: [n, ...]}
 *   conf.e2e.fail     error reply conf.e2e.failed, data {why: "asked to"}
 *   conf.e2e.secret   reply {} (the subject may not send it: the broker denies it)
 *   conf.e2e.getfd    reply {text} with a pipe that holds text
 *   conf.e2e.putfd    read the descriptor that came with the request, reply {text}
 *
 * It exits 0 on privsep.shutdown or when the broker closes the connection.
 * Written with libprivsep's blocking interface; every wait is bounded.
 */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <privsep.h>

#define FD_TEXT		"conformance-fd"
#define NOTES_MAX	64
#define READ_WAIT_MS	5000

static json_int_t notes[NOTES_MAX];
static size_t nnotes;
static int64_t echo_id;		/* the conf.e2e.echo in flight, 0 if none */
static char echo_nonce[32];

static void
fail(const char *what, const struct privsep_error *err)
{
	fprintf(stderr, "peer: %s: %s (%s): %s\n", what, err->code, err->reason, err->message);
	exit(1);
}

/* Reads at most cap-1 bytes until end of file, each wait bounded: the text or "" on failure. */
static void
read_text(int fd, char *buf, size_t cap)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < cap - 1) {
		if (poll(&pfd, 1, READ_WAIT_MS) != 1)
			break;
		if ((n = read(fd, buf + got, cap - 1 - got)) <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
}

static int
reply_json(struct privsep *ps, const struct privsep_msg *m, json_t *body, const int *fds,
    size_t nfds, struct privsep_error *err)
{
	int r;

	if (body == NULL) {
		snprintf(err->message, sizeof(err->message), "out of memory");
		return -1;
	}
	r = privsep_reply(ps, m, body, fds, nfds, 0, err);
	json_decref(body);
	return r;
}

static int
upper(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	const char *text = json_string_value(json_object_get(privsep_msg_body(m), "text"));
	char buf[257];
	size_t i;

	if (text == NULL || strlen(text) >= sizeof(buf))
		return privsep_reply_error(ps, m, "privsep.invalid", "text: not a short string", NULL, err);
	for (i = 0; text[i] != '\0'; i++)
		buf[i] = (char)toupper((unsigned char)text[i]);
	buf[i] = '\0';
	return reply_json(ps, m, json_pack("{s:s}", "text", buf), NULL, 0, err);
}

static int
call_me(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	static unsigned counter;
	json_t *body;
	int r;

	if (reply_json(ps, m, json_object(), NULL, 0, err) == -1)
		return -1;
	snprintf(echo_nonce, sizeof(echo_nonce), "nonce-%ld-%u", (long)getpid(), ++counter);
	body = json_pack("{s:s}", "nonce", echo_nonce);
	r = privsep_send_request(ps, "conf.e2e.echo", body, NULL, 0, &echo_id, err);
	json_decref(body);
	return r;
}

static int
verdict(struct privsep *ps, const char *scenario, int ok, const char *detail,
    struct privsep_error *err)
{
	json_t *body = json_pack("{s:s,s:b,s:s}", "scenario", scenario, "ok", ok, "detail", detail);
	int r = privsep_event(ps, "conf.e2e.verdict", body, NULL, 0, err);

	json_decref(body);
	return r;
}

/* The subject's answer to conf.e2e.echo. */
static int
echo_answered(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	const char *nonce = json_string_value(json_object_get(privsep_msg_body(m), "nonce"));
	const char *from = privsep_msg_from(m);
	char detail[200];
	int ok = 0;

	echo_id = 0;
	if (privsep_msg_error_code(m) != NULL)
		snprintf(detail, sizeof(detail), "error reply %s: %s", privsep_msg_error_code(m),
		    privsep_msg_error_message(m));
	else if (nonce == NULL || strcmp(nonce, echo_nonce) != 0)
		snprintf(detail, sizeof(detail), "nonce %s, sent %s", nonce ? nonce : "(none)", echo_nonce);
	else if (from == NULL || strcmp(from, "subject") != 0)
		snprintf(detail, sizeof(detail), "reply from %s", from ? from : "(none)");
	else {
		snprintf(detail, sizeof(detail), "nonce %s echoed", nonce);
		ok = 1;
	}
	return verdict(ps, "serve", ok, detail, err);
}

static int
note(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	json_t *n = json_object_get(privsep_msg_body(m), "n");
	json_t *body;
	int r;

	if (!json_is_integer(n))
		return 0;
	if (nnotes < NOTES_MAX)
		notes[nnotes++] = json_integer_value(n);
	body = json_pack("{s:I}", "n", json_integer_value(n) + 1);
	r = privsep_event(ps, "conf.e2e.notice", body, NULL, 0, err);
	json_decref(body);
	return r;
}

static int
seen(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; list != NULL && i < nnotes; i++)
		json_array_append_new(list, json_integer(notes[i]));
	return reply_json(ps, m, json_pack("{s:o}", "notes", list), NULL, 0, err);
}

static int
getfd(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	int p[2], r;

	if (pipe(p) == -1)
		return privsep_reply_error(ps, m, "privsep.internal", "pipe failed", NULL, err);
	if (write(p[1], FD_TEXT, strlen(FD_TEXT)) != (ssize_t)strlen(FD_TEXT)) {
		close(p[0]);
		close(p[1]);
		return privsep_reply_error(ps, m, "privsep.internal", "write failed", NULL, err);
	}
	close(p[1]);
	r = reply_json(ps, m, json_pack("{s:s}", "text", FD_TEXT), &p[0], 1, err);
	close(p[0]);
	return r;
}

static int
putfd(struct privsep *ps, struct privsep_msg *m, struct privsep_error *err)
{
	char buf[65];
	int fd;

	if ((fd = privsep_msg_take_fd(m, 0)) == -1)
		return privsep_reply_error(ps, m, "privsep.invalid", "no descriptor", NULL, err);
	read_text(fd, buf, sizeof(buf));
	close(fd);
	return reply_json(ps, m, json_pack("{s:s}", "text", buf), NULL, 0, err);
}

static int
serve(struct privsep *ps, struct privsep_msg *m, struct privsep_error *err)
{
	const char *type = privsep_msg_type(m);

	if (strcmp(type, "conf.e2e.upper") == 0)
		return upper(ps, m, err);
	if (strcmp(type, "conf.e2e.call_me") == 0)
		return call_me(ps, m, err);
	if (strcmp(type, "conf.e2e.seen") == 0)
		return seen(ps, m, err);
	if (strcmp(type, "conf.e2e.fail") == 0) {
		json_t *data = json_pack("{s:s}", "why", "asked to");
		int r = privsep_reply_error(ps, m, "conf.e2e.failed", "failed as asked", data, err);

		json_decref(data);
		return r;
	}
	if (strcmp(type, "conf.e2e.secret") == 0)
		return reply_json(ps, m, json_object(), NULL, 0, err);
	if (strcmp(type, "conf.e2e.getfd") == 0)
		return getfd(ps, m, err);
	if (strcmp(type, "conf.e2e.putfd") == 0)
		return putfd(ps, m, err);
	return privsep_reply_error(ps, m, "privsep.unknown_type", "not served here", NULL, err);
}

int
main(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int r;

	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "conformance-peer/1", NULL, &err) == -1)
		fail("hello", &err);
	for (;;) {
		if (privsep_recv(ps, &m, -1, &err) == -1) {
			if (!err.fatal)
				continue;	/* an idle wait ran out, or a refused message */
			if (strcmp(err.code, PRIVSEP_E_UNAVAILABLE) == 0)
				break;
			fail("recv", &err);
		}
		switch (privsep_msg_kind(m)) {
		case PRIVSEP_REQUEST:
			r = serve(ps, m, &err);
			break;
		case PRIVSEP_EVENT:
			if (strcmp(privsep_msg_type(m), "privsep.shutdown") == 0) {
				privsep_msg_free(m);
				privsep_close(ps);
				return 0;
			}
			r = strcmp(privsep_msg_type(m), "conf.e2e.note") == 0 ? note(ps, m, &err) : 0;
			break;
		default:
			r = echo_id != 0 && privsep_msg_re(m) == echo_id ? echo_answered(ps, m, &err) : 0;
			break;
		}
		privsep_msg_free(m);
		if (r == -1)
			fail("send", &err);
	}
	privsep_close(ps);
	return 0;
}
