/*
 * Fuzz target: the C client's decoder (clients/c). The first byte picks the path:
 * even: privsep_decode + privsep_envelope_check on the rest as one frame body;
 * odd:  the rest fed as a byte stream (reads of (byte >> 1) + 1 bytes) through privsep_feed and
 *       privsep_take, then end of stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <privsep.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

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
				privsep_msg_free(m);
			else if (err.fatal)
				goto done;
		}
	}
	if (privsep_feed(ps, NULL, 0, NULL, 0, &err) == 0)
		while ((r = privsep_take(ps, &m, &err)) != 0 && !(r < 0 && err.fatal))
			if (r == 1)
				privsep_msg_free(m);
done:
	privsep_close(ps);
	return 0;
}
