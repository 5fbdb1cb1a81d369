/*
 * Benchmark (not a test): ping round trips per second through libprivsep
 * (privsep_request) beside a raw C baseline (sprintf, write, exact reads; no
 * JSON parsing) in the same run.
 *   bench [round-trips]           against a forked raw echo peer on a socketpair
 * Started by the broker (PRIVSEP_FD set), it pings the broker itself: hello
 * through the library, then the raw loop and the library loop on the same
 * connection; results go to stderr.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "privsep.h"

static int
read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if ((n = read(fd, buf + got, len - got)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int
write_frame(int fd, const char *json, size_t n)
{
	char buf[512];

	buf[0] = (char)(n >> 24);
	buf[1] = (char)(n >> 16);
	buf[2] = (char)(n >> 8);
	buf[3] = (char)n;
	memcpy(buf + 4, json, n);
	return write(fd, buf, n + 4) == (ssize_t)(n + 4) ? 0 : -1;
}

/* Answers every request {"type":...,"id":N,...} with {"re":N,"body":{"seq":N}}. */
static void
echo_peer(int fd)
{
	char body[512], reply[128], *p;
	unsigned char hdr[4];
	size_t n;
	long id;
	int len;

	for (;;) {
		if (read_exact(fd, (char *)hdr, 4) == -1)
			_exit(0);
		n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
		if (n >= sizeof(body) || read_exact(fd, body, n) == -1)
			_exit(1);
		body[n] = '\0';
		if ((p = strstr(body, "\"id\":")) == NULL)
			continue;
		id = strtol(p + 5, NULL, 10);
		len = snprintf(reply, sizeof(reply), "{\"re\":%ld,\"body\":{\"seq\":%ld}}", id, id);
		if (write_frame(fd, reply, (size_t)len) == -1)
			_exit(1);
	}
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pid_t
start_peer(int sv[2])
{
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		exit(1);
	if ((pid = fork()) == 0) {
		close(sv[0]);
		echo_peer(sv[1]);
	}
	close(sv[1]);
	return pid;
}

/* Raw round trips on fd, ids first..first+rounds-1: the time they took. */
static double
raw_rounds(int fd, long first, long rounds)
{
	char req[128], body[512];
	unsigned char hdr[4];
	double t0;
	size_t n;
	long i;
	int len;

	t0 = now();
	for (i = first; i < first + rounds; i++) {
		len = snprintf(req, sizeof(req), "{\"type\":\"privsep.ping\",\"id\":%ld,\"body\":{\"seq\":%ld}}",
		    i, i);
		if (write_frame(fd, req, (size_t)len) == -1 || read_exact(fd, (char *)hdr, 4) == -1)
			exit(1);
		n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
		if (n >= sizeof(body) || read_exact(fd, body, n) == -1)
			exit(1);
	}
	return now() - t0;
}

/* Library round trips on an open connection: the time they took. */
static double
lib_rounds(struct privsep *ps, long rounds)
{
	struct privsep_error err;
	struct privsep_msg *m;
	json_t *body;
	double t0;
	long i;

	t0 = now();
	for (i = 1; i <= rounds; i++) {
		body = json_pack("{s:I}", "seq", (json_int_t)i);
		if (privsep_request(ps, "privsep.ping", body, NULL, 0, &m, -1, &err) == -1) {
			fprintf(stderr, "bench: %s: %s\n", err.code, err.message);
			exit(1);
		}
		json_decref(body);
		privsep_msg_free(m);
	}
	return now() - t0;
}

/* Under the broker: both loops on the helper's own connection. */
static int
bench_broker(long rounds)
{
	struct privsep_error err;
	struct privsep *ps;
	double raw, lib;
	int fd, flags;

	if (privsep_open_env(&ps, &err) == -1 || privsep_hello(ps, "bench/1", NULL, &err) == -1) {
		fprintf(stderr, "bench: %s: %s\n", err.code, err.message);
		return 1;
	}
	fd = privsep_fd(ps);
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);	/* the raw loop blocks */
	raw = (double)rounds / raw_rounds(fd, 1000000, rounds);
	fcntl(fd, F_SETFL, flags);
	lib = (double)rounds / lib_rounds(ps, rounds);
	fprintf(stderr, "bench: through the broker, %ld round trips each: raw C %.0f/s (%.1f us), "
	    "libprivsep %.0f/s (%.1f us), ratio %.2fx\n", rounds, raw, 1e6 / raw, lib, 1e6 / lib,
	    raw / lib);
	privsep_close(ps);
	return 0;
}

static double
bench_raw(long rounds)
{
	char req[128], body[512];
	unsigned char hdr[4];
	double t0;
	size_t n;
	long i;
	int sv[2], len;
	pid_t pid = start_peer(sv);

	t0 = now();
	for (i = 1; i <= rounds; i++) {
		len = snprintf(req, sizeof(req), "{\"type\":\"privsep.ping\",\"id\":%ld,\"body\":{\"seq\":%ld}}",
		    i, i);
		if (write_frame(sv[0], req, (size_t)len) == -1 || read_exact(sv[0], (char *)hdr, 4) == -1)
			exit(1);
		n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
		if (n >= sizeof(body) || read_exact(sv[0], body, n) == -1)
			exit(1);
	}
	t0 = now() - t0;
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return (double)rounds / t0;
}

static double
bench_lib(long rounds)
{
	struct privsep_error err;
	struct privsep_msg *m;
	struct privsep *ps;
	json_t *body;
	double t0;
	long i;
	int sv[2];
	pid_t pid = start_peer(sv);

	if (privsep_open_fd(&ps, sv[0], "bench", &err) == -1)
		exit(1);
	t0 = now();
	for (i = 1; i <= rounds; i++) {
		body = json_pack("{s:I}", "seq", (json_int_t)i);
		if (privsep_request(ps, "privsep.ping", body, NULL, 0, &m, -1, &err) == -1) {
			fprintf(stderr, "bench: %s: %s\n", err.code, err.message);
			exit(1);
		}
		json_decref(body);
		privsep_msg_free(m);
	}
	t0 = now() - t0;
	privsep_close(ps);
	waitpid(pid, NULL, 0);
	return (double)rounds / t0;
}

int
main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 50000;
	double raw, lib;

	if (getenv("PRIVSEP_FD") != NULL)
		return bench_broker(rounds);
	bench_raw(rounds / 10);	/* warm up */
	raw = bench_raw(rounds);
	lib = bench_lib(rounds);
	printf("ping round trips over a socketpair, %ld each:\n", rounds);
	printf("  raw C baseline   %10.0f /s  %6.2f us\n", raw, 1e6 / raw);
	printf("  libprivsep       %10.0f /s  %6.2f us\n", lib, 1e6 / lib);
	printf("  libprivsep / raw time ratio: %.2fx\n", raw / lib);
	return 0;
}
