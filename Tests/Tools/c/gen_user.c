/*
 * A C helper's use of a header from `privsep gen c`: builds bodies with the generated
 * builders and setters, reads them back with the readers, and prints each body (sorted,
 * compact) for the suite to compare and to validate against the schemas.
 * Exits 1 when a builder or reader does not do what the header promises.
 */
#include <stdio.h>
#include <string.h>

#include <privsep.h>		/* the generated header sits beside libprivsep's */
#include "generated.h"

static int failures;

#define EXPECT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		failures++;						\
	}								\
} while (0)

static void
show(const char *type, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);

	EXPECT(text != NULL);
	if (text != NULL)
		printf("%s %s\n", type, text);
	free(text);
}

int
main(void)
{
	json_t *add, *reply, *open, *access, *hello, *bad, *resolve;
	json_int_t n = 0;
	const char *s = NULL;
	json_t *j = NULL;

	/* A request body with required integers; its reply read back. */
	add = demo_add_body(2, 40);
	EXPECT(add != NULL);
	show(DEMO_ADD_TYPE, add);
	EXPECT(demo_add_body_get_a(add, &n) == 0 && n == 2);
	EXPECT(demo_add_body_get_b(add, &n) == 0 && n == 40);
	reply = demo_add_reply(42);
	EXPECT(demo_add_reply_get_sum(reply, &n) == 0 && n == 42);

	/* A reader refuses a member of the wrong JSON type, and an absent one. */
	bad = json_pack("{s:s}", "a", "two");
	EXPECT(demo_add_body_get_a(bad, &n) == -1);
	EXPECT(demo_add_body_get_b(bad, &n) == -1);

	/* A string, a json_t member (borrowed), an optional member set afterwards. */
	access = json_pack("[s]", "read");
	open = privsep_file_open_body("/etc/hostname", access);
	EXPECT(open != NULL);
	EXPECT(privsep_file_open_body_set_mode(open, 420) == 0);
	show(PRIVSEP_FILE_OPEN_TYPE, open);
	EXPECT(privsep_file_open_body_get_path(open, &s) == 0 && strcmp(s, "/etc/hostname") == 0);
	EXPECT(privsep_file_open_body_get_access(open, &j) == 0 && j == access);
	EXPECT(PRIVSEP_FILE_OPEN_REPLY_FDS == 1 && PRIVSEP_FILE_OPEN_FDS == 0);

	/* A constant member is filled in by the builder. */
	hello = privsep_hello_body("gen-user/1");
	show(PRIVSEP_HELLO_TYPE, hello);
	EXPECT(privsep_hello_body_get_protocol(hello, &n) == 0 && n == PRIVSEP_PROTOCOL);

	/* An enum member through its setter; a NULL required string is refused. */
	resolve = privsep_dns_resolve_body("example.org");
	EXPECT(privsep_dns_resolve_body_set_family(resolve, "ipv4") == 0);
	EXPECT(privsep_dns_resolve_body_set_family(resolve, NULL) == -1);
	show(PRIVSEP_DNS_RESOLVE_TYPE, resolve);
	EXPECT(demo_upper_body(NULL) == NULL);

	json_decref(add);
	json_decref(reply);
	json_decref(bad);
	json_decref(open);
	json_decref(access);
	json_decref(hello);
	json_decref(resolve);
	if (failures == 0)
		printf("gen-user: ok\n");
	return failures == 0 ? 0 : 1;
}
