/*
 * Conformance runner: every case of every vector file in Tests/Conformance/vectors
 * file through libprivsep's decoder, twice:
 *   feed    - the case's reads through privsep_feed() (descriptors of /dev/null);
 *   socket  - each read sent with one sendmsg (fds as SCM_RIGHTS) on a real
 *             socketpair and taken with privsep_read(), end of stream by shutdown.
 * Prints one line per case and mode and the closing "N passed, N failed".
 */
#include <sys/socket.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "privsep.h"
#include "testlib.h"

#define SOCKET_CHUNK_MAX 65536	/* larger reads would not be one recvmsg */

struct read_spec {
	size_t	 start, end;
	size_t	 nfds;
};

struct vcase {
	unsigned char	*bytes;
	size_t		 len;
	struct read_spec *reads;
	size_t		 nreads;
	size_t		 max_frame;
	int		 peer_helper;
	json_t		*expect;
};

static char why[512];

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
close_all(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

static int
load_case(json_t *c, struct vcase *vc)
{
	const char *hex = json_string_value(json_object_get(c, "input"));
	json_t *chunks = json_object_get(c, "chunks"), *fds = json_object_get(c, "fds"), *v;
	const char *role = json_string_value(json_object_get(c, "role"));
	size_t i, hl, prev = 0;

	memset(vc, 0, sizeof(*vc));
	if (hex == NULL || (hl = strlen(hex)) % 2 != 0)
		return -1;
	vc->len = hl / 2;
	vc->bytes = malloc(vc->len + 1);
	for (i = 0; i < vc->len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		vc->bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	/* "chunks" are the offsets where a new read begins */
	vc->nreads = json_array_size(chunks) + 1;
	vc->reads = calloc(vc->nreads, sizeof(*vc->reads));
	json_array_foreach(chunks, i, v) {
		size_t at = (size_t)json_integer_value(v);
		if (at < prev || at > vc->len)
			return -1;
		vc->reads[i].start = prev;
		vc->reads[i].end = at;
		prev = at;
	}
	vc->reads[vc->nreads - 1].start = prev;
	vc->reads[vc->nreads - 1].end = vc->len;
	json_array_foreach(fds, i, v) {
		size_t k = (size_t)json_integer_value(json_object_get(v, "chunk"));
		if (k >= vc->nreads)
			return -1;
		vc->reads[k].nfds += (size_t)json_integer_value(json_object_get(v, "count"));
	}
	v = json_object_get(c, "max_frame");
	vc->max_frame = v != NULL ? (size_t)json_integer_value(v) : PRIVSEP_FRAME_DEFAULT;
	/* role names who wrote the bytes; a helper's bytes are decoded as the broker does */
	vc->peer_helper = role == NULL || strcmp(role, "helper") == 0;
	vc->expect = json_object_get(c, "expect");
	return 0;
}

static void
free_case(struct vcase *vc)
{
	free(vc->bytes);
	free(vc->reads);
}

/* JSON equality where 1 and 1.0 are the same number. */
static int
json_same(json_t *a, json_t *b)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (json_typeof(a) != json_typeof(b))
		return 0;
	if (json_is_object(a)) {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach(a, key, v)
			if (json_object_get(b, key) == NULL || !json_same(v, json_object_get(b, key)))
				return 0;
		return 1;
	}
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach(a, i, v)
			if (!json_same(v, json_array_get(b, i)))
				return 0;
		return 1;
	}
	return json_equal(a, b);
}

/* Collects outcomes into an array shaped like "expect": {"messages": [...], "error": ...}. */
struct outcome {
	json_t	*messages;
	json_t	*error;
	int	 leaked;	/* a handed-over fd was not open */
};

/* Takes every complete frame; returns 1 once a fatal error ended the stream. */
static int
drain(struct privsep *ps, struct outcome *o)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *env;
	size_t i;
	int r, fd;

	while (o->error == NULL) {
		r = privsep_take(ps, &m, &err);
		if (r == 0)
			return 0;
		if (r == -1 && err.fatal) {
			o->error = json_pack("{s:s, s:s}", "code", err.code, "reason", err.reason);
			return 1;
		}
		if (r == -1) {
			json_array_append_new(o->messages, json_pack("{s:{s:s, s:s, s:o}}", "refused",
			    "code", err.code, "reason", err.reason, "reply_to",
			    err.id != 0 ? json_integer(err.id) : json_null()));
			continue;
		}
		env = privsep_msg_json(m);
		if (privsep_msg_error_code(m) == NULL)
			(void)privsep_msg_body(m);	/* the default {} */
		for (i = 0; i < privsep_msg_nfds(m); i++) {
			fd = privsep_msg_take_fd(m, i);
			if (fd < 0 || fcntl(fd, F_GETFD) == -1 || !(fcntl(fd, F_GETFD) & FD_CLOEXEC))
				o->leaked = 1;
			close(fd);
		}
		json_array_append_new(o->messages, json_pack("{s:O, s:i}", "envelope", env, "fds",
		    (int)privsep_msg_nfds(m)));
		privsep_msg_free(m);
	}
	return 1;
}

static int
open_conn(const struct vcase *vc, struct privsep **ps, int sv[2])
{
	char buf[128];
	int n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -1;
	if (privsep_open_fd(ps, sv[0], "vectors", NULL) == -1) {
		close(sv[1]);
		return -1;
	}
	privsep_set_peer_helper(*ps, vc->peer_helper);
	if (vc->max_frame == PRIVSEP_FRAME_DEFAULT)
		return 0;
	/* max_frame comes from the hello reply: queue one, then say hello */
	n = snprintf(buf + 4, sizeof(buf) - 4, "{\"re\":1,\"body\":{\"max_frame\":%zu}}",
	    vc->max_frame);
	buf[0] = buf[1] = buf[2] = 0;
	buf[3] = (char)n;
	if (write(sv[1], buf, (size_t)n + 4) != n + 4 ||
	    privsep_hello(*ps, "vectors/1", NULL, NULL) == -1 ||
	    privsep_max_frame(*ps) != vc->max_frame)
		return -1;
	/* discard the hello request the library sent */
	while (recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	return 0;
}

static int *
devnull_fds(size_t n)
{
	int *fds = calloc(n + 1, sizeof(int));
	size_t i;

	for (i = 0; i < n; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return fds;
}

static int
send_read(int fd, const unsigned char *data, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} c;
	struct msghdr msg;
	struct iovec iov;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&c, 0, sizeof(c));
	iov.iov_base = (void *)data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = c.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Records a fatal error from a read or a feed. */
static int
read_failed(const struct privsep_error *err, struct outcome *o)
{
	/* the end of the stream is not an error of the case */
	if (!err->fatal || strcmp(err->reason, "connection_closed") == 0)
		return 0;
	o->error = json_pack("{s:s, s:s}", "code", err->code, "reason", err->reason);
	return 1;
}

/* Runs the case; mode 0 feeds, mode 1 uses the socket. */
static int
run_case(const struct vcase *vc, int mode, struct outcome *o)
{
	struct privsep_error err;
	struct privsep *ps;
	size_t i;
	int sv[2], *fds, done = 0, r;

	o->messages = json_array();
	o->error = NULL;
	o->leaked = 0;
	if (open_conn(vc, &ps, sv) == -1) {
		snprintf(why, sizeof(why), "cannot set up the connection");
		return -1;
	}
	for (i = 0; i < vc->nreads && !done; i++) {
		const struct read_spec *rd = &vc->reads[i];
		fds = devnull_fds(rd->nfds);
		if (mode == 0) {
			if (privsep_feed(ps, vc->bytes + rd->start, rd->end - rd->start, fds,
			    rd->nfds, &err) == -1)
				done = read_failed(&err, o);
			if (!done)
				done = drain(ps, o);
		} else {
			r = send_read(sv[1], vc->bytes + rd->start, rd->end - rd->start, fds,
			    rd->nfds);
			close_all(fds, rd->nfds);
			if (r == -1) {
				snprintf(why, sizeof(why), "sendmsg: %s", strerror(errno));
				free(fds);
				privsep_close(ps);
				close(sv[1]);
				return -1;
			}
			/* frames are always drained before a read, so 0 means nothing is left */
			while (!done) {
				r = privsep_read(ps, &err);
				if (r == -1) {
					done = read_failed(&err, o);
					break;
				}
				done = drain(ps, o);
				if (r == 0)
					break;
			}
		}
		free(fds);
	}
	if (!done) {
		if (mode == 0)
			privsep_feed(ps, NULL, 0, NULL, 0, &err);
		else {
			shutdown(sv[1], SHUT_WR);
			while ((r = privsep_read(ps, &err)) == 1)
				if ((done = drain(ps, o)) != 0)
					break;
			if (r == -1 && !done)
				done = read_failed(&err, o);
		}
		if (!done)
			drain(ps, o);
	}
	privsep_close(ps);
	close(sv[1]);
	return 0;
}

static int
socket_ok(const struct vcase *vc)
{
	size_t i;

	for (i = 0; i < vc->nreads; i++)
		if (vc->reads[i].end - vc->reads[i].start > SOCKET_CHUNK_MAX ||
		    (vc->reads[i].end == vc->reads[i].start && vc->reads[i].nfds > 0))
			return 0;
	return 1;
}

static int
compare(json_t *expect, const struct outcome *o)
{
	json_t *want = json_object_get(expect, "messages"), *werr = json_object_get(expect, "error");
	json_t *w, *g;
	size_t i;
	char *a, *b;

	if (o->leaked) {
		snprintf(why, sizeof(why), "a handed-over fd was not open with FD_CLOEXEC");
		return -1;
	}
	if (json_array_size(want) != json_array_size(o->messages))
		goto differ;
	json_array_foreach(want, i, w) {
		g = json_array_get(o->messages, i);
		if (!json_same(w, g))
			goto differ;
	}
	if (json_is_null(werr) || werr == NULL) {
		if (o->error != NULL)
			goto differ;
	} else if (o->error == NULL || !json_same(werr, o->error))
		goto differ;
	return 0;
differ:
	a = json_dumps(expect, JSON_COMPACT);
	w = json_pack("{s:O, s:O}", "messages", o->messages, "error",
	    o->error != NULL ? o->error : json_null());
	b = json_dumps(w, JSON_COMPACT);
	snprintf(why, sizeof(why), "want %.200s got %.200s", a, b);
	free(a);
	free(b);
	json_decref(w);
	return -1;
}

static int
count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n++;
	closedir(d);
	return n;
}

static int
name_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
json_file(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return n > 5 && strcmp(e->d_name + n - 5, ".json") == 0;
}

int
main(int argc, char **argv)
{
	static const char *modes[] = { "feed", "socket" };
	const char *dir = argc > 1 ? argv[1] : "Tests/Conformance/vectors";
	struct dirent **names;
	size_t passed = 0, failed = 0, skipped = 0, i;
	char path[4096];
	int nfiles, f, mode, before;

	if ((nfiles = scandir(dir, &names, json_file, name_order)) <= 0) {
		printf("c_vectors: no vector files in %s\n", dir);
		return 1;
	}
	for (f = 0; f < nfiles; f++) {
		json_t *doc, *cases, *c;
		json_error_t jerr;

		snprintf(path, sizeof(path), "%s/%s", dir, names[f]->d_name);
		if ((doc = json_load_file(path, 0, &jerr)) == NULL) {
			printf("FAIL c_vectors: %s: %s\n", path, jerr.text);
			failed++;
			free(names[f]);
			continue;
		}
		cases = json_object_get(doc, "cases");
		json_array_foreach(cases, i, c) {
			const char *name = json_string_value(json_object_get(c, "name"));
			struct vcase vc;
			struct outcome o;

			if (load_case(c, &vc) == -1) {
				printf("FAIL c_vectors: %s/%s: cannot read the case\n",
				    names[f]->d_name, name);
				failed++;
				free_case(&vc);
				continue;
			}
			for (mode = 0; mode < 2; mode++) {
				if (mode == 1 && !socket_ok(&vc)) {
					printf("n/a  c_vectors: %s/%s [socket]: a read over %d bytes\n",
					    names[f]->d_name, name, SOCKET_CHUNK_MAX);
					skipped++;
					continue;
				}
				why[0] = '\0';
				before = count_open_fds();
				if (run_case(&vc, mode, &o) == 0 && compare(vc.expect, &o) == 0 &&
				    count_open_fds() == before) {
					printf("ok   c_vectors: %s/%s [%s]\n", names[f]->d_name, name,
					    modes[mode]);
					passed++;
				} else {
					if (why[0] == '\0')
						snprintf(why, sizeof(why), "descriptors leaked");
					printf("FAIL c_vectors: %s/%s [%s]: %s\n", names[f]->d_name, name,
					    modes[mode], why);
					failed++;
				}
				json_decref(o.messages);
				json_decref(o.error);
			}
			free_case(&vc);
		}
		json_decref(doc);
		free(names[f]);
	}
	free(names);
	printf("c_vectors: %zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
	return failed == 0 ? 0 : 1;
}
