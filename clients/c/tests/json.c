/*
 * The library's JSON reader and writer against jansson itself: the reader must
 * accept exactly what json_loadb() accepts (with the flags the library used to
 * pass, and its retry with integers as reals), giving equal values; the writer
 * must produce json_dumpb(JSON_COMPACT)'s bytes. Inputs: jansson's own output
 * for generated values, mutated (bytes flipped, cut, dropped, tricky tokens
 * spliced in), and a list of edge cases. Deterministic: a fixed seed.
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

static const char *const tokens[] = {
	"\\u0000", "\\ud800", "\\udc00", "\\ud800\\udc00", "\\uDBFF\\uDFFF", "\\u00e9", "\\x", "\\",
	"\"", "1e400", "-1e400", "1e-400", "99999999999999999999", "-9223372036854775808",
	"9223372036854775808", "-0", "0.0", "1.", "01", "-", "1e", "1E+2", "tru", "truex", "nullx",
	" ", "\t", "\n", "\r", "\xc3\xa9", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80",
	"\xf0\x80\x80\x80", "{", "}", "[", "]", ",", ":", "\"a\":1", "[[[[", "0.1e-2",
	"123456789012345678901234567890", "\xef\xbb\xbf", "\x7f", "1.5e+308", "-0.0", "\"\\u0000\":1",
};

static void
mutate(char *buf, size_t *n, size_t cap)
{
	const char *tk;
	size_t pos = rnd() % (*n + 1), tl;

	switch (rnd() % 5) {
	case 0:
		if (*n > 0)
			buf[rnd() % *n] = (char)rnd();
		break;
	case 1:
		if (*n > 0 && pos < *n) {
			memmove(buf + pos, buf + pos + 1, *n - pos - 1);
			(*n)--;
		}
		break;
	case 2:
		if (*n > 0)
			*n = rnd() % *n;
		break;
	default:
		tk = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
		tl = strlen(tk);
		if (*n + tl <= cap) {
			memmove(buf + pos + tl, buf + pos, *n - pos);
			memcpy(buf + pos, tk, tl);
			*n += tl;
		}
	}
}

/* What the library did before it had its reader. */
static json_t *
jansson_read(const char *buf, size_t n)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY;
	json_error_t e;
	json_t *v = json_loadb(buf, n, flags, &e);

	if (v == NULL && json_error_code(&e) == json_error_numeric_overflow)
		v = json_loadb(buf, n, flags | JSON_DECODE_INT_AS_REAL, &e);
	return v;
}

static size_t
depth_of(json_t *v)
{
	size_t d = 0, c, i;
	const char *k;
	json_t *x;

	if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			if ((c = depth_of(x)) > d)
				d = c;
		return d + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if ((c = depth_of(x)) > d)
				d = c;
		return d + 1;
	}
	return 0;
}

/* One input: both readers agree; a NUL byte between tokens is the one known difference. */
static int
same_reading(const char *buf, size_t n, size_t *accepted)
{
	json_t *want = jansson_read(buf, n), *got;
	const char *why;
	size_t at;
	int ok;

	/* an envelope deeper than the protocol's 64 is refused by both, in two steps before */
	if (want != NULL && json_is_object(want) && depth_of(want) > PRIVSEP_DEPTH_MAX) {
		json_decref(want);
		want = NULL;
	}
	got = privsep_json_read(buf, n, &at, &why);
	if (want != NULL && got == NULL && memchr(buf, '\0', n) != NULL) {
		json_decref(want);
		return 0;
	}
	ok = (want == NULL) == (got == NULL) && (want == NULL || json_equal(want, got));
	if (!ok)
		snprintf(t_why, sizeof(t_why), "jansson %s, privsep %s (%s) on %zu bytes: %.*s",
		    want != NULL ? "accepts" : "refuses", got != NULL ? "accepts" : "refuses",
		    got != NULL ? "" : why, n, (int)(n > 200 ? 200 : n), buf);
	*accepted += got != NULL;
	json_decref(want);
	json_decref(got);
	return ok ? 0 : 1;
}

static int
t_reader(void)
{
	static char buf[1 << 15];
	size_t n, k, accepted = 0;
	long i;
	json_t *v;

	for (i = 0; i < ROUNDS; i++) {
		v = gen(0);
		n = json_dumpb(v, buf, sizeof(buf), JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
		if (n == 0 || n > sizeof(buf))
			continue;
		for (k = rnd() % 4; k > 0; k--)
			mutate(buf, &n, sizeof(buf));
		if (same_reading(buf, n, &accepted) != 0)
			return 1;
	}
	CHECK(accepted > ROUNDS / 5);	/* the mutations leave enough valid input */
	return 0;
}

static int
t_reader_edges(void)
{
	static const char *const cases[] = {
		"", " ", "{}", "[]", "{\"a\":1,\"a\":2}", "{\"a\\u0000b\":1}", "\"\\u0000\"",
		"[1,]", "[,1]", "{\"a\":1,}", "{\"a\"}", "{1:2}", "[1 2]", "[\"a\" \"b\"]",
		"-", "-0", "-0.0", "0e0", "0E-0", "1e+", "1.e1", ".1", "+1", "01", "00", "0x1",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "[1, 99999999999999999999]", "[1e400]", "[1e-400]",
		"[99999999999999999999, 1e400]", "true", "True", "truee", "nul", "NaN", "Infinity",
		"\"\\ud83d\\ude00\"", "\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"", "\"\\u12\"",
		"\"\\U1234\"", "\"a\tb\"", "\"a\x7f\"", "\"\xf0\x9f\x98\x80\"", "\"\xed\xbf\xbf\"",
		"\"\xc0\x80\"", "\"\xf5\x80\x80\x80\"", "\"abc", "[1] x", "{} ", " \r\n\t[]",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	size_t i, accepted = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (same_reading(cases[i], strlen(cases[i]), &accepted) != 0)
			return 1;
	return 0;
}

static int
t_reader_depth(void)
{
	static char buf[3 * 2100];
	const char *why;
	size_t n, d, at;
	json_t *v;

	/* an object 64 deep is read, 65 is not; other values as deep as jansson reads them */
	for (d = 63; d <= 66; d++) {
		n = 0;
		buf[n++] = '{';
		memcpy(buf + n, "\"a\":", 4);
		n += 4;
		memset(buf + n, '[', d - 1);
		n += d - 1;
		memset(buf + n, ']', d - 1);
		n += d - 1;
		buf[n++] = '}';
		v = privsep_json_read(buf, n, &at, &why);
		CHECK((v != NULL) == (d <= PRIVSEP_DEPTH_MAX));
		json_decref(v);
	}
	for (d = 2047; d <= 2050; d++) {
		memset(buf, '[', d);
		memset(buf + d, ']', d);
		v = privsep_json_read(buf, 2 * d, &at, &why);
		CHECK((v != NULL) == (d <= 2048));
		json_decref(v);
	}
	return 0;
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
		{ "reader: accepts what jansson accepts, equal values (generated, mutated)", t_reader },
		{ "reader: edge cases agree with jansson", t_reader_edges },
		{ "reader: envelope depth 64, other values 2048", t_reader_depth },
		{ "writer: jansson's compact bytes (generated values)", t_writer },
		{ "writer: loops, bad UTF-8 refused; the limit counts on", t_writer_refuses },
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]), "c_json");
}
