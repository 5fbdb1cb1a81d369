/*
 * Fuzz target: the C client's decoder (clients/c). The first byte picks the path:
 * even: privsep_decode + privsep_envelope_check on the rest as one frame body;
 * odd:  the rest fed as a byte stream (reads of (byte >> 1) + 1 bytes) through privsep_feed and
 *       privsep_take, then end of stream.
 * Both compare the envelope scanner with the tree it stands in for: a frame the scanner accepts
 * must decode and pass the envelope checks with the same members (even), and a message's
 * accessors must answer the same before and after its tree is built (odd); abort() if not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <privsep.h>
#include <string.h>

#include "privsep_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
same_string(const char *scanned, size_t len, json_t *v)
{
	if (scanned == NULL)
		return v == NULL;
	return json_is_string(v) && json_string_length(v) == len &&
	    memcmp(json_string_value(v), scanned, len) == 0;
}

static int
same_integer(int64_t scanned, json_t *v)
{
	return scanned == 0 ? v == NULL : json_is_integer(v) && json_integer_value(v) == scanned;
}

/* A frame the scanner accepts is one the tree's way accepts, with the same members. */
static void
check_scan(const uint8_t *body, size_t len, int sender_is_helper)
{
	struct envelope_scan scan;
	struct privsep_error err;
	json_t *env;

	if (privsep_scan_envelope(body, len, sender_is_helper, &scan) == -1)
		return;
	if (privsep_decode(body, len, &env, &err) == -1)
		abort();
	if (privsep_envelope_check(env, !sender_is_helper, &err) == -1 ||
	    !same_string(scan.type, scan.typelen, json_object_get(env, "type")) ||
	    !same_string(scan.from, scan.fromlen, json_object_get(env, "from")) ||
	    !same_integer(scan.id, json_object_get(env, "id")) ||
	    !same_integer(scan.re, json_object_get(env, "re")) ||
	    !same_integer(scan.fds, json_object_get(env, "fds")) ||
	    scan.more != json_is_true(json_object_get(env, "more")) ||
	    json_object_get(env, "error") != NULL)
		abort();
	json_decref(env);
}

/* The accessors answer the same from the scanner's copies as from the tree, then frees m. */
static void
check_message(struct privsep_msg *m)
{
	const char *type = privsep_msg_type(m), *from = privsep_msg_from(m);
	int64_t id = privsep_msg_id(m), re = privsep_msg_re(m);
	int more = privsep_msg_more(m);
	json_t *env;

	if ((env = privsep_msg_json(m)) != NULL &&
	    (!same_string(type, type == NULL ? 0 : strlen(type), json_object_get(env, "type")) ||
	    !same_string(from, from == NULL ? 0 : strlen(from), json_object_get(env, "from")) ||
	    id != privsep_msg_id(m) || re != privsep_msg_re(m) || more != privsep_msg_more(m)))
		abort();
	privsep_msg_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	json_t *env = NULL;
	size_t chunk, off;
	int sv[2], r;

	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		check_scan(data + 1, size - 1, 0);
		check_scan(data + 1, size - 1, 1);
		if (privsep_decode(data + 1, size - 1, &env, &err) == 0) {
			privsep_envelope_check(env, 1, &err);
			privsep_envelope_check(env, 0, &err);
			json_decref(env);
		}
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	close(sv[1]);
	if (privsep_open_fd(&ps, sv[0], "fuzz", &err) < 0)
		abort();
	chunk = (size_t)(data[0] >> 1) + 1;
	for (off = 1; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (privsep_feed(ps, data + off, n, NULL, 0, &err) < 0)
			goto done;
		while ((r = privsep_take(ps, &m, &err)) != 0) {
			if (r == 1)
				check_message(m);
			else if (err.fatal)
				goto done;
		}
	}
	if (privsep_feed(ps, NULL, 0, NULL, 0, &err) == 0)
		while ((r = privsep_take(ps, &m, &err)) != 0 && !(r < 0 && err.fatal))
			if (r == 1)
				check_message(m);
done:
	privsep_close(ps);
	return 0;
}
