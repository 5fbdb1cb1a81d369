/*
 * privsep-httpd: a privilege-separated static web server.
 *
 * This helper has no filesystem and no network of its own: the broker's sandbox gives it a
 * read-only system root, no network namespace, its own uid and seccomp. It asks the broker
 * for its listening socket (privsep.net.listen) and for every file it serves
 * (privsep.file.open, read-only). The broker decides from its `files` and `net` policy, so
 * a path like /../etc/passwd is refused by the broker even though this program passes it on
 * unchecked: containment does not rest on this code being right.
 *
 * usage: privsep-httpd DOCROOT ADDRESS PORT
 *   DOCROOT is the directory as the broker sees it (the helper cannot see it at all).
 *
 * One connection at a time, HTTP/1.1 GET and HEAD, Connection: close. Every wait is bounded:
 * a client has 5 s to send its request head (at most 8 KiB) and to take the response.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <privsep.h>

#define HEAD_MAX	8192	/* bytes of request line and headers */
#define PATH_MAX_LEN	4096
#define IO_TIMEOUT_S	5

static struct privsep *broker;
static const char *docroot;

struct type { const char *suffix, *mime; };

static const struct type types[] = {
	{ ".html", "text/html; charset=utf-8" }, { ".htm", "text/html; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
	{ ".json", "application/json" }, { ".txt", "text/plain; charset=utf-8" },
	{ ".svg", "image/svg+xml" }, { ".png", "image/png" }, { ".jpg", "image/jpeg" },
	{ ".jpeg", "image/jpeg" }, { ".gif", "image/gif" }, { ".ico", "image/x-icon" },
	{ ".webp", "image/webp" }, { ".pdf", "application/pdf" }, { ".wasm", "application/wasm" },
};

static const char *content_type(const char *path)
{
	size_t len = strlen(path), i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = strlen(types[i].suffix);
		if (len >= n && strcasecmp(path + len - n, types[i].suffix) == 0)
			return types[i].mime;
	}
	return "application/octet-stream";
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void respond_status(int client, int status, const char *reason, const char *extra)
{
	char head[512], body[128];
	int blen = snprintf(body, sizeof(body), "<h1>%d %s</h1>\n", status, reason);
	int hlen = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\nServer: privsep-httpd\r\nContent-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %d\r\nConnection: close\r\n%s\r\n", status, reason, blen, extra ? extra : "");
	if (write_all(client, head, (size_t)hlen) == 0)
		write_all(client, body, (size_t)blen);
}

/* Decodes %XX in place; -1 on a bad escape or a decoded NUL. */
static int percent_decode(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s == '%') {
			char hex[3] = { s[1], s[2], 0 };
			char *end;
			long v;
			if (!s[1] || !s[2])
				return -1;
			v = strtol(hex, &end, 16);
			if (*end || v == 0)
				return -1;
			*out++ = (char)v;
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
	return 0;
}

/* Reads the request head (up to the blank line); its length, or -1. */
static ssize_t read_head(int client, char *buf, size_t size)
{
	size_t used = 0;

	while (used < size - 1) {
		ssize_t n = read(client, buf + used, size - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		used += (size_t)n;
		buf[used] = 0;
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			return (ssize_t)used;
	}
	return -1;
}

/* Asks the broker for the file; the descriptor, or -1 with the HTTP status in *status. */
static int open_file(const char *path, int *status)
{
	struct privsep_msg *reply = NULL;
	struct privsep_error err;
	const char *code;
	json_t *body = json_pack("{s:s, s:[s]}", "path", path, "access", "read");
	int fd = -1;

	if (body == NULL || privsep_request(broker, "privsep.file.open", body, NULL, 0, &reply, -1, &err) != 0) {
		json_decref(body);
		fprintf(stderr, "file.open failed: %s\n", err.message);
		*status = 500;
		return -1;
	}
	json_decref(body);
	code = privsep_msg_error_code(reply);
	if (code == NULL) {
		fd = privsep_msg_take_fd(reply, 0);
		*status = fd >= 0 ? 200 : 500;
	} else if (strcmp(code, "privsep.not_found") == 0 || strcmp(code, "privsep.not_directory") == 0) {
		*status = 404;
	} else if (strcmp(code, "privsep.denied") == 0) {
		*status = 403;
	} else if (strcmp(code, "privsep.is_directory") == 0) {
		*status = 301;
	} else {
		*status = 500;
	}
	privsep_msg_free(reply);
	return fd;
}

static int serve_file(int client, int fd, const char *path, int head_only)
{
	struct stat st;
	char head[512], buf[65536];
	int hlen;

	if (fstat(fd, &st) != 0)
		return -1;
	hlen = snprintf(head, sizeof(head),
	    "HTTP/1.1 200 OK\r\nServer: privsep-httpd\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
	    "Connection: close\r\n\r\n", content_type(path), (long long)st.st_size);
	if (write_all(client, head, (size_t)hlen) != 0 || head_only)
		return 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		if (write_all(client, buf, (size_t)n) != 0)
			return -1;
	}
}

static void handle(int client)
{
	char buf[HEAD_MAX], target[PATH_MAX_LEN], path[PATH_MAX_LEN + 512], location[PATH_MAX_LEN + 32];
	char method[16], version[16], *q;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int status = 0, fd, head_only;

	setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (read_head(client, buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%15s %4095s %15s", method, target, version) != 3 ||
	    (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) || target[0] != '/') {
		respond_status(client, 400, "Bad Request", NULL);
		fprintf(stderr, "- 400\n");
		return;
	}
	head_only = strcmp(method, "HEAD") == 0;
	if (!head_only && strcmp(method, "GET") != 0) {
		respond_status(client, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n");
		fprintf(stderr, "%s %s 405\n", method, target);
		return;
	}
	if ((q = strchr(target, '?')) != NULL)
		*q = 0;
	if (percent_decode(target) != 0) {
		respond_status(client, 400, "Bad Request", NULL);
		fprintf(stderr, "%s %s 400\n", method, target);
		return;
	}
	/* No checks of our own on the path: the broker's policy is what contains us. */
	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", docroot, target,
	    target[strlen(target) - 1] == '/' ? "index.html" : "") >= sizeof(path)) {
		respond_status(client, 414, "URI Too Long", NULL);
		fprintf(stderr, "%s - 414\n", method);
		return;
	}
	fd = open_file(path, &status);
	switch (status) {
	case 200:
		serve_file(client, fd, path, head_only);
		close(fd);
		break;
	case 301:
		snprintf(location, sizeof(location), "Location: %s/\r\n", target);
		respond_status(client, 301, "Moved Permanently", location);
		break;
	case 403: respond_status(client, 403, "Forbidden", NULL); break;
	case 404: respond_status(client, 404, "Not Found", NULL); break;
	default: respond_status(client, 500, "Internal Server Error", NULL); break;
	}
	fprintf(stderr, "%s %s %d\n", method, target, status);
}

/* Handles what the broker sends between requests: privsep.shutdown ends the server. */
static int broker_says_stop(void)
{
	struct privsep_msg *msg;
	struct privsep_error err;
	int stop = 0;

	if (privsep_recv(broker, &msg, 0, &err) != 0)
		return strcmp(err.code, PRIVSEP_E_TIMEOUT) != 0;
	if (privsep_msg_type(msg) && strcmp(privsep_msg_type(msg), "privsep.shutdown") == 0)
		stop = 1;
	privsep_msg_free(msg);
	return stop;
}

int main(int argc, char **argv)
{
	struct privsep_error err;
	struct privsep_msg *reply = NULL;
	json_t *body;
	int listener;

	if (argc != 4) {
		fprintf(stderr, "usage: privsep-httpd DOCROOT ADDRESS PORT\n");
		return 2;
	}
	docroot = argv[1];
	signal(SIGPIPE, SIG_IGN);
	if (privsep_open_env(&broker, &err) != 0 || privsep_hello(broker, "privsep-httpd/1", NULL, &err) != 0) {
		fprintf(stderr, "privsep: %s\n", err.message);
		return 1;
	}
	body = json_pack("{s:s, s:i}", "address", argv[2], "port", atoi(argv[3]));
	if (privsep_request(broker, "privsep.net.listen", body, NULL, 0, &reply, -1, &err) != 0) {
		fprintf(stderr, "net.listen: %s\n", err.message);
		return 1;
	}
	json_decref(body);
	if (privsep_msg_error_code(reply) != NULL) {
		fprintf(stderr, "net.listen refused: %s: %s\n", privsep_msg_error_code(reply),
		    privsep_msg_error_message(reply));
		return 1;
	}
	listener = privsep_msg_take_fd(reply, 0);
	privsep_msg_free(reply);
	fprintf(stderr, "listening on %s:%s, serving %s\n", argv[2], argv[3], docroot);

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = listener, .events = POLLIN }, { .fd = privsep_fd(broker), .events = POLLIN },
		};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (fds[1].revents && broker_says_stop())
			break;
		if (fds[0].revents & POLLIN) {
			int client = accept(listener, NULL, NULL);
			if (client >= 0) {
				handle(client);
				close(client);
			}
		}
	}
	privsep_close(broker);
	return 0;
}
