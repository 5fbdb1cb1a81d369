/*
 * The conformance scenario helper written with libprivsep (clients/c). It plays
 * each scenario against the peer through the broker and prints one line per
 * scenario on stdout, which the broker logs tagged "subject":
 *
 *     RESULT <scenario> pass|fail <detail>
 *
 * The scenarios and their order are the same in every client's subject; see
 * docs/conformance.md. Every wait is bounded (WAIT_MS).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <privsep.h>

#define WAIT_MS		5000
#define FD_TEXT		"conformance-fd"
#define PUT_TEXT	"from-subject"
#define MAX_FRAME	1024	/* the subject's limits.max_frame in the config */

static struct privsep *ps;

static void
result(const char *scenario, int ok, const char *fmt, ...)
{
	char detail[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	printf("RESULT %s %s %s\n", scenario, ok ? "pass" : "fail", detail);
}

/* Whether v is the string s. */
static int
str_is(json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static int
has_string(json_t *array, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(array, i, v)
		if (str_is(v, s))
			return 1;
	return 0;
}

/* A request whose body is json text: the reply, or NULL with the failure reported. */
static struct privsep_msg *
ask(const char *scenario, const char *type, const char *body_text, const int *fds, size_t nfds)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body = json_loads(body_text, 0, NULL);
	int r;

	r = privsep_request(ps, type, body, fds, nfds, &m, WAIT_MS, &err);
	json_decref(body);
	if (r == -1) {
		result(scenario, 0, "%s: %s (%s): %s", type, err.code, err.reason, err.message);
		return NULL;
	}
	return m;
}

/* A request expected to succeed: the reply body (owned), or NULL with the failure reported. */
static json_t *
ask_ok(const char *scenario, const char *type, const char *body_text, const int *fds, size_t nfds)
{
	struct privsep_msg *m = ask(scenario, type, body_text, fds, nfds);
	json_t *body;

	if (m == NULL)
		return NULL;
	if (privsep_msg_error_code(m) != NULL) {
		result(scenario, 0, "%s: error reply %s: %s", type, privsep_msg_error_code(m),
		    privsep_msg_error_message(m));
		privsep_msg_free(m);
		return NULL;
	}
	body = json_incref(privsep_msg_body(m));
	privsep_msg_free(m);
	return body;
}

/* The next message, kept ones first; NULL with the failure reported. */
static struct privsep_msg *
next(const char *scenario)
{
	struct privsep_error err;
	struct privsep_msg *m;

	if (privsep_recv(ps, &m, WAIT_MS, &err) == -1) {
		result(scenario, 0, "waiting: %s (%s): %s", err.code, err.reason, err.message);
		return NULL;
	}
	return m;
}

static int
hello(void)
{
	struct privsep_error err;
	json_t *reply;
	int ok;

	if (privsep_open_env(&ps, &err) == -1 ||
	    privsep_hello(ps, "conformance-c/1", &reply, &err) == -1) {
		result("hello", 0, "%s (%s): %s", err.code, err.reason, err.message);
		return -1;
	}
	ok = str_is(json_object_get(reply, "helper"), "subject") &&
	    json_integer_value(json_object_get(reply, "protocol")) == 1 &&
	    json_integer_value(json_object_get(reply, "max_frame")) == MAX_FRAME &&
	    has_string(json_object_get(reply, "serves"), "conf.e2e.echo") &&
	    has_string(json_object_get(reply, "receives"), "conf.e2e.notice") &&
	    has_string(json_object_get(reply, "may_send"), "conf.e2e.upper");
	result("hello", ok, "helper %s, max_frame %lld",
	    json_string_value(json_object_get(reply, "helper")),
	    (long long)json_integer_value(json_object_get(reply, "max_frame")));
	json_decref(reply);
	return 0;
}

static void
ping(void)
{
	json_t *want = json_loads("{\"seq\":7,\"payload\":\"conformance\"}", 0, NULL);
	json_t *body = ask_ok("ping", "privsep.ping", "{\"seq\":7,\"payload\":\"conformance\"}", NULL, 0);

	if (body != NULL)
		result("ping", json_equal(body, want), "echoed seq %lld",
		    (long long)json_integer_value(json_object_get(body, "seq")));
	json_decref(want);
	json_decref(body);
}

static void
request(void)
{
	struct privsep_msg *m = ask("request", "conf.e2e.upper", "{\"text\":\"conformance\"}", NULL, 0);
	const char *text, *from;

	if (m == NULL)
		return;
	text = json_string_value(json_object_get(privsep_msg_body(m), "text"));
	from = privsep_msg_from(m);
	result("request", privsep_msg_error_code(m) == NULL && text != NULL &&
	    strcmp(text, "CONFORMANCE") == 0 && from != NULL && strcmp(from, "peer") == 0,
	    "text %s from %s", text ? text : "(none)", from ? from : "(none)");
	privsep_msg_free(m);
}

/* conf.e2e.call_me makes the peer send conf.e2e.echo; the peer judges the answer in conf.e2e.verdict. */
static void
serve(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body;
	int served = 0;

	if ((body = ask_ok("serve", "conf.e2e.call_me", "{}", NULL, 0)) == NULL)
		return;
	json_decref(body);
	while ((m = next("serve")) != NULL) {
		const char *type = privsep_msg_type(m);

		if (privsep_msg_kind(m) == PRIVSEP_REQUEST && strcmp(type, "conf.e2e.echo") == 0) {
			if (privsep_reply(ps, m, privsep_msg_body(m), NULL, 0, 0, &err) == -1) {
				result("serve", 0, "reply: %s: %s", err.code, err.message);
				privsep_msg_free(m);
				return;
			}
			served = 1;
		} else if (privsep_msg_kind(m) == PRIVSEP_EVENT && strcmp(type, "conf.e2e.verdict") == 0) {
			body = privsep_msg_body(m);
			result("serve", served && json_is_true(json_object_get(body, "ok")), "peer: %s",
			    json_string_value(json_object_get(body, "detail")));
			privsep_msg_free(m);
			return;
		}
		privsep_msg_free(m);
	}
}

/* conf.e2e.note out; the peer answers it with conf.e2e.notice, and lists it in conf.e2e.seen. */
static void
events(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body = json_pack("{s:i}", "n", 42), *notes;
	int sent;

	sent = privsep_event(ps, "conf.e2e.note", body, NULL, 0, &err) == 0;
	json_decref(body);
	if (!sent)
		result("event-send", 0, "conf.e2e.note: %s: %s", err.code, err.message);
	else if ((body = ask_ok("event-send", "conf.e2e.seen", "{}", NULL, 0)) != NULL) {
		notes = json_object_get(body, "notes");
		result("event-send", json_array_size(notes) == 1 &&
		    json_integer_value(json_array_get(notes, 0)) == 42, "peer saw %zu note(s)",
		    json_array_size(notes));
		json_decref(body);
	}
	while ((m = next("event-recv")) != NULL) {
		if (privsep_msg_kind(m) == PRIVSEP_EVENT && strcmp(privsep_msg_type(m), "conf.e2e.notice") == 0) {
			json_int_t n = json_integer_value(json_object_get(privsep_msg_body(m), "n"));
			const char *from = privsep_msg_from(m);

			result("event-recv", n == 43 && from != NULL && strcmp(from, "peer") == 0,
			    "conf.e2e.notice n=%lld from %s", (long long)n, from ? from : "(none)");
			privsep_msg_free(m);
			return;
		}
		privsep_msg_free(m);
	}
}

static void
error_reply(void)
{
	struct privsep_msg *m = ask("error", "conf.e2e.fail", "{}", NULL, 0);
	const char *code, *why;

	if (m == NULL)
		return;
	code = privsep_msg_error_code(m);
	why = json_string_value(json_object_get(privsep_msg_error_data(m), "why"));
	result("error", code != NULL && strcmp(code, "conf.e2e.failed") == 0 && why != NULL &&
	    strcmp(why, "asked to") == 0, "code %s, data.why %s", code ? code : "(none)",
	    why ? why : "(none)");
	privsep_msg_free(m);
}

static void
denied(void)
{
	struct privsep_msg *m = ask("denied", "conf.e2e.secret", "{}", NULL, 0);
	const char *code;

	if (m == NULL)
		return;
	code = privsep_msg_error_code(m);
	result("denied", code != NULL && strcmp(code, "privsep.denied") == 0, "code %s",
	    code ? code : "(none)");
	privsep_msg_free(m);
}

static void
invalid(void)
{
	struct privsep_msg *m = ask("invalid", "conf.e2e.upper", "{\"text\":5}", NULL, 0);
	json_t *errors, *e;
	const char *code, *where = NULL;
	size_t i;

	if (m == NULL)
		return;
	code = privsep_msg_error_code(m);
	errors = json_object_get(privsep_msg_error_data(m), "errors");
	json_array_foreach(errors, i, e) {
		where = json_string_value(json_object_get(e, "instanceLocation"));
		if (where != NULL && strcmp(where, "/text") == 0)
			break;
	}
	result("invalid", code != NULL && strcmp(code, "privsep.invalid") == 0 && where != NULL &&
	    strcmp(where, "/text") == 0, "code %s at %s", code ? code : "(none)",
	    where ? where : "(none)");
	privsep_msg_free(m);
}

/* A message over the announced max_frame is refused before anything is sent; the connection stays usable. */
static void
too_large(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	char big[2 * MAX_FRAME + 1];
	json_t *body;
	int r;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	body = json_pack("{s:i,s:s}", "seq", 8, "payload", big);
	r = privsep_request(ps, "privsep.ping", body, NULL, 0, &m, WAIT_MS, &err);
	json_decref(body);
	if (r == 0) {
		result("too-large", 0, "a frame over max_frame %zu was sent", privsep_max_frame(ps));
		privsep_msg_free(m);
		return;
	}
	if (strcmp(err.code, PRIVSEP_E_TOO_LARGE) != 0 || err.fatal) {
		result("too-large", 0, "%s (%s), fatal %d", err.code, err.reason, err.fatal);
		return;
	}
	if ((body = ask_ok("too-large", "privsep.ping", "{\"seq\":9}", NULL, 0)) == NULL)
		return;
	result("too-large", json_integer_value(json_object_get(body, "seq")) == 9,
	    "refused locally: %s (%s); the next ping went through", err.code, err.reason);
	json_decref(body);
}

static void
fd_recv(void)
{
	struct privsep_msg *m = ask("fd-recv", "conf.e2e.getfd", "{}", NULL, 0);
	char buf[64];
	ssize_t n = -1;
	int fd;

	if (m == NULL)
		return;
	if (privsep_msg_error_code(m) != NULL || privsep_msg_nfds(m) != 1 ||
	    (fd = privsep_msg_take_fd(m, 0)) == -1) {
		result("fd-recv", 0, "reply with %zu fds, error %s", privsep_msg_nfds(m),
		    privsep_msg_error_code(m) ? privsep_msg_error_code(m) : "none");
		privsep_msg_free(m);
		return;
	}
	privsep_msg_free(m);
	n = read(fd, buf, sizeof(buf) - 1);	/* the peer wrote and closed before replying */
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	result("fd-recv", strcmp(buf, FD_TEXT) == 0, "read \"%s\"", buf);
}

static void
fd_send(void)
{
	json_t *body;
	int p[2];

	if (pipe(p) == -1 || write(p[1], PUT_TEXT, strlen(PUT_TEXT)) != (ssize_t)strlen(PUT_TEXT)) {
		result("fd-send", 0, "pipe failed");
		return;
	}
	close(p[1]);
	body = ask_ok("fd-send", "conf.e2e.putfd", "{}", &p[0], 1);
	close(p[0]);
	if (body == NULL)
		return;
	result("fd-send", str_is(json_object_get(body, "text"), PUT_TEXT),
	    "peer read \"%s\"", json_string_value(json_object_get(body, "text")));
	json_decref(body);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (hello() == -1)
		return 1;
	ping();
	request();
	serve();
	events();
	error_reply();
	denied();
	invalid();
	too_large();
	fd_recv();
	fd_send();
	privsep_close(ps);
	return 0;
}
