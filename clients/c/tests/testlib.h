/*
 * A minimal test harness: each case is a function returning 0 on success;
 * CHECK records the first failing condition. Prints one line per case and the
 * closing "N passed, N failed".
 */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <stdio.h>
#include <string.h>

static char t_why[512] __attribute__((unused));

#define CHECK(cond) do { \
	if (!(cond)) { \
		snprintf(t_why, sizeof(t_why), "%s:%d: %s", __FILE__, __LINE__, #cond); \
		return 1; \
	} \
} while (0)

#define CHECK_CODE(err, want) do { \
	if (strcmp((err).code, (want)) != 0) { \
		snprintf(t_why, sizeof(t_why), "%s:%d: code \"%s\" (%s), want %s", \
		    __FILE__, __LINE__, (err).code, (err).message, (want)); \
		return 1; \
	} \
} while (0)

struct t_case {
	const char *name;
	int (*fn)(void);
};

static int __attribute__((unused))
t_run(const struct t_case *cases, size_t n, const char *suite)
{
	size_t i, passed = 0, failed = 0;

	for (i = 0; i < n; i++) {
		t_why[0] = '\0';
		if (cases[i].fn() == 0) {
			passed++;
			printf("ok   %s: %s\n", suite, cases[i].name);
		} else {
			failed++;
			printf("FAIL %s: %s: %s\n", suite, cases[i].name, t_why);
		}
		fflush(stdout);
	}
	printf("%s: %zu passed, %zu failed\n", suite, passed, failed);
	return failed == 0 ? 0 : 1;
}

#endif
