/*
 * The library's compact JSON writer against jansson itself: for generated
 * values it must produce json_dumpb(JSON_COMPACT)'s bytes, and refuse what
 * jansson cannot write. Deterministic: a fixed seed. (Frames are read with
 * jansson's json_loadb(); tests/unit.c and the conformance vectors check that.)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "privsep_int.h"
#include "testlib.h"

#define ROUNDS	60000

static uint64_t seed = 88172645463325252ULL;

static unsigned
rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (unsigned)seed;
}

static json_t *
gen_number(void)
{
	unsigned char b[8];
	double d;
	size_t i;

	switch (rnd() % 8) {
	case 0: return json_integer(rnd() % 100);
	case 1: return json_integer(-(json_int_t)rnd());
	case 2: return json_integer((json_int_t)((uint64_t)rnd() << 32 | rnd()));
	case 3: return json_integer(rnd() % 2 ? INT64_MIN : INT64_MAX);
	case 4: return json_real((double)(int)rnd() / (1 + rnd() % 1000));
	case 5:
		for (i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rnd();
		memcpy(&d, b, sizeof(d));
		return json_real(isfinite(d) ? d : 0.5);
	case 6: return json_real((double)(rnd() % 100000));
	default:
		d = ldexp(1.0 + (rnd() % 1000) / 1000.0, (int)(rnd() % 2200) - 1100);
		return json_real(isfinite(d) ? d : 1e308);
	}
}

static json_t *
gen_string(void)
{
	char s[16];
	size_t n = rnd() % sizeof(s), i;
	unsigned r;
	json_t *v;

	for (i = 0; i < n; i++) {
		r = rnd() % 10;
		s[i] = r < 2 ? (char)(rnd() % 0x20) : r < 4 ? "\"\\/\x7f"[rnd() % 4] :
		    r < 6 ? (char)(0x80 + rnd() % 128) : (char)('a' + rnd() % 26);
	}
	/* random bytes are often not UTF-8: jansson refuses those */
	return (v = json_stringn(s, n)) != NULL ? v : json_string("x");
}

static json_t *
gen(int depth)
{
	char key[4];
	size_t n, i, j;
	json_t *v;

	switch (rnd() % (depth > 5 ? 6 : 8)) {
	case 0: return json_null();
	case 1: return json_true();
	case 2: return json_false();
	case 3: case 4: return gen_number();
	case 5: return gen_string();
	case 6:
		v = json_array();
		for (n = rnd() % 4, i = 0; i < n; i++)
			json_array_append_new(v, gen(depth + 1));
		return v;
	default:
		v = json_object();
		for (n = rnd() % 4, i = 0; i < n; i++) {
			size_t kl = rnd() % sizeof(key);
			for (j = 0; j < kl; j++)
				key[j] = rnd() % 4 ? (char)('a' + rnd() % 3) : (char)rnd();
			json_object_setn_new(v, key, kl, gen(depth + 1));	/* refused keys: dropped */
		}
		return v;
	}
}

/* The writer's bytes are jansson's, and what jansson cannot write it refuses too. */
static int
t_writer(void)
{
	static char want[1 << 16];
	struct privsep_buf b;
	size_t n, same = 0;
	long i;
	json_t *v;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < ROUNDS; i++) {
		v = gen(0);
		b.len = 0;
		b.status = 0;
		b.limit = sizeof(want);
		privsep_buf_json(&b, v, 1);
		n = json_dumpb(v, want, sizeof(want), JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
		if (n == 0 || n > sizeof(want)) {
			CHECK(b.status != 0);
			continue;
		}
		CHECK(b.status == 0);
		if (b.len != n || memcmp(b.p, want, n) != 0) {
			snprintf(t_why, sizeof(t_why), "jansson %.*s\nprivsep %.*s", (int)n, want,
			    (int)b.len, (char *)b.p);
			free(b.p);
			return 1;
		}
		same++;
	}
	free(b.p);
	CHECK(same > ROUNDS / 2);
	return 0;
}

static int
t_writer_refuses(void)
{
	struct privsep_buf b;
	json_t *a, *inner, *o;
	char want[64];

	/* a loop: jansson refuses it; the writer stops at its depth bound */
	memset(&b, 0, sizeof(b));
	b.limit = 1 << 20;
	a = json_array();
	inner = json_array();
	json_array_append(a, inner);
	json_array_append(inner, a);
	CHECK(json_dumpb(a, want, sizeof(want), JSON_COMPACT) == 0);
	privsep_buf_json(&b, a, 1);
	CHECK(b.status == PRIVSEP_BUF_BAD);
	json_array_clear(inner);
	json_decref(inner);
	json_decref(a);
	/* a string that is not UTF-8, made without jansson's check */
	b.len = 0;
	b.status = 0;
	o = json_pack("{s:o}", "s", json_stringn_nocheck("\xff", 1));
	privsep_buf_json(&b, o, 1);
	CHECK(b.status == PRIVSEP_BUF_BAD);
	json_decref(o);
	/* past the limit: nothing more is stored, the length still counts */
	b.len = 0;
	b.status = 0;
	b.limit = 8;
	o = json_pack("{s:s}", "text", "0123456789");
	privsep_buf_json(&b, o, 1);
	CHECK(b.status == PRIVSEP_BUF_OVER && b.len == strlen("{\"text\":\"0123456789\"}"));
	json_decref(o);
	free(b.p);
	return 0;
}

int
main(void)
{
	static const struct t_case cases[] = {
		{ "writer: jansson's compact bytes (generated values)", t_writer },
		{ "writer: loops, bad UTF-8 refused; the limit counts on", t_writer_refuses },
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]), "c_json");
}
