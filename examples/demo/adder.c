/*
 * adder: the demo's C helper (libprivsep). Serves demo.add and demo.secret, and says what its
 * sandbox looks like from the inside before it starts serving.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <privsep.h>

/* The value of a "Name:\tvalue" line of /proc/self/status, or "?". */
static void
status_field(const char *name, char *out, size_t size)
{
	char line[256];
	size_t len = strlen(name);
	FILE *f = fopen("/proc/self/status", "r");

	snprintf(out, size, "?");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			snprintf(out, size, "%s", line + len + 2);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

static void
print_sandbox_state(void)
{
	char nnp[16], seccomp[16];
	int fd = open("/written-by-adder", O_WRONLY | O_CREAT, 0600);
	int write_errno = errno;

	if (fd >= 0)
		close(fd);
	status_field("NoNewPrivs", nnp, sizeof(nnp));
	status_field("Seccomp", seccomp, sizeof(seccomp));
	printf("sandbox: uid=%d gid=%d NoNewPrivs=%s Seccomp=%s root=%s\n", (int)getuid(),
	    (int)getgid(), nnp, seccomp, fd >= 0 ? "WRITABLE" : strerror(write_errno));
	fflush(stdout);
}

static int
serve(struct privsep *ps, const struct privsep_msg *m, struct privsep_error *err)
{
	const char *type = privsep_msg_type(m);
	json_t *body = privsep_msg_body(m), *reply;
	int r;

	if (strcmp(type, "demo.add") == 0)
		reply = json_pack("{s:I}", "sum",
		    json_integer_value(json_object_get(body, "a")) +
		    json_integer_value(json_object_get(body, "b")));
	else if (strcmp(type, "demo.secret") == 0)
		reply = json_pack("{s:s}", "secret", "correct horse battery staple");
	else
		return privsep_reply_error(ps, m, "privsep.unknown_type", "not served here", NULL, err);
	if (reply == NULL)
		return privsep_reply_error(ps, m, "privsep.internal", "out of memory", NULL, err);
	r = privsep_reply(ps, m, reply, NULL, 0, 0, err);
	json_decref(reply);
	return r;
}

int
main(void)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	int r;

	print_sandbox_state();
	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, NULL, NULL, &err) == -1)
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
		    strcmp(privsep_msg_type(m), "privsep.shutdown") == 0) {
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
	fprintf(stderr, "adder: %s: %s\n", err.code, err.message);
	return 1;
}
