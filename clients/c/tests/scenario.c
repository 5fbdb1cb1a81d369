/*
 * The scenario helper of clients/python/tests/fakebroker.py written with
 * libprivsep: hello, ping while other traffic arrives, serving a request,
 * events both ways, an error reply, fds both ways, a log line, bye.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <privsep.h>

static int
die(const char *what, const struct privsep_error *err)
{
	fprintf(stderr, "scenario: %s: %s (%s): %s\n", what, err->code, err->reason, err->message);
	exit(1);
}

static int
serve_until_echo(struct privsep *ps)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body;
	int done = 0;

	while (!done) {
		if (privsep_recv(ps, &m, -1, &err) == -1)
			die("recv", &err);
		if (privsep_msg_kind(m) == PRIVSEP_EVENT &&
		    strcmp(privsep_msg_type(m), "test.notice") == 0) {
			body = json_pack("{s:O}", "notice",
			    json_object_get(privsep_msg_body(m), "n"));
			if (privsep_event(ps, "test.seen", body, NULL, 0, &err) == -1)
				die("test.seen", &err);
			json_decref(body);
		} else if (privsep_msg_kind(m) == PRIVSEP_REQUEST &&
		    strcmp(privsep_msg_type(m), "test.echo") == 0) {
			if (privsep_reply(ps, m, privsep_msg_body(m), NULL, 0, 0, &err) == -1)
				die("reply", &err);
			done = 1;
		}
		privsep_msg_free(m);
	}
	return 0;
}

int
main(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	json_t *body;
	char buf[256];
	ssize_t n;
	int fd, p[2];

	if (privsep_open_env(&ps, &err) == -1)
		die("open", &err);
	if (privsep_hello(ps, NULL, NULL, &err) == -1)
		die("hello", &err);

	body = json_pack("{s:i}", "seq", 1);
	if (privsep_request(ps, "privsep.ping", body, NULL, 0, &m, -1, &err) == -1)
		die("ping", &err);
	if (!json_equal(privsep_msg_body(m), body))
		die("ping reply", &err);
	json_decref(body);
	privsep_msg_free(m);

	serve_until_echo(ps);

	if (privsep_request(ps, "test.fail", NULL, NULL, 0, &m, -1, &err) == -1)
		die("test.fail", &err);
	if (privsep_msg_error_code(m) == NULL)
		return 1;
	body = json_pack("{s:s}", "code", privsep_msg_error_code(m));
	privsep_msg_free(m);
	if (privsep_event(ps, "test.error_seen", body, NULL, 0, &err) == -1)
		die("test.error_seen", &err);
	json_decref(body);

	if (privsep_request(ps, "test.getfd", NULL, NULL, 0, &m, -1, &err) == -1)
		die("test.getfd", &err);
	if (privsep_msg_nfds(m) != 1 || (fd = privsep_msg_take_fd(m, 0)) == -1)
		return 1;
	privsep_msg_free(m);
	if ((n = read(fd, buf, sizeof(buf) - 1)) < 0)
		return 1;
	close(fd);
	buf[n] = '\0';
	body = json_pack("{s:s}", "text", buf);
	if (privsep_event(ps, "test.fd_text", body, NULL, 0, &err) == -1)
		die("test.fd_text", &err);
	json_decref(body);

	if (pipe(p) == -1 || write(p[1], "from-helper", 11) != 11)
		return 1;
	close(p[1]);
	if (privsep_request(ps, "test.putfd", NULL, &p[0], 1, &m, -1, &err) == -1)
		die("test.putfd", &err);
	close(p[0]);
	if (strcmp(json_string_value(json_object_get(privsep_msg_body(m), "text")),
	    "from-helper") != 0)
		return 1;
	privsep_msg_free(m);

	if (privsep_log(ps, "info", "scenario done", &err) == -1)
		die("log", &err);
	if (privsep_request(ps, "test.bye", NULL, NULL, 0, &m, -1, &err) == -1)
		die("bye", &err);
	privsep_msg_free(m);
	privsep_close(ps);
	return 0;
}
